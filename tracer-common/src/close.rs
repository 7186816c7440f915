//! The close event: one per connection, when it reaches CLOSE.

use crate::{addr::Endpoints, event::EventHeader};

/// `direction` values.
pub const DIRECTION_UNKNOWN: u8 = 0;
/// We saw it connect (active open).
pub const DIRECTION_ACTIVE: u8 = 1;
/// We saw it accepted, or established from SYN_RECV (passive open).
pub const DIRECTION_PASSIVE: u8 = 2;

/// `closed_by` values: which side started the close.
pub const CLOSED_BY_UNKNOWN: u8 = 0;
/// ESTABLISHED -> FIN_WAIT1, or a reset we sent.
pub const CLOSED_BY_LOCAL: u8 = 1;
/// ESTABLISHED -> CLOSE_WAIT, or a reset we received.
pub const CLOSED_BY_REMOTE: u8 = 2;

/// `bytes_source` values: where the byte counts come from.
/// From the socket: `bytes_acked` less our SYN and FIN, `bytes_received` less the peer's FIN.
pub const BYTES_FROM_SOCKET: u8 = 1;
/// Summed over `tcp_sendmsg`/`tcp_recvmsg` return values (or the sock_*_length tracepoints).
pub const BYTES_FROM_CALLS: u8 = 2;

/// `Ending::flags` bits.
/// The socket's sequence numbers were read: `unacked_bytes` and `unread_bytes` hold.
pub const ENDING_READ: u8 = 1;
/// `SO_LINGER` was on with a zero time: close() aborts with a reset.
pub const ENDING_LINGER_ZERO: u8 = 2;
/// The peer's window was zero (`snd_wnd == 0`): probes, not keepalives, were running.
pub const ENDING_ZERO_WINDOW: u8 = 4;

/// How the connection ended, as the socket showed it at the moment it reached CLOSE: raw
/// values, classified in user space (`tracer::end`) into fin, reset sent or received,
/// timeout or error. Read at CLOSE because what comes after (`tcp_disconnect()` for an
/// abortive close) resets the sequence numbers and clears the error.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ending {
    /// `sk_err` at CLOSE: a positive errno (ECONNRESET left by a received reset, ETIMEDOUT
    /// by retries that ran out), 0 for none.
    pub err: i32,
    /// Bytes the application wrote that the peer never acknowledged: `write_seq -
    /// snd_una`, less our FIN while it is unacknowledged.
    pub unacked_bytes: u32,
    /// Bytes that arrived in order that the application never read: `rcv_nxt -
    /// copied_seq`, less the peer's FIN while it is unread.
    pub unread_bytes: u32,
    /// The `TCP_*` state the socket left for CLOSE.
    pub old_state: u8,
    /// `icsk_retransmits`: retransmission timeouts in a row (the retries that ran out).
    pub retransmits: u8,
    /// `icsk_probes_out`: unanswered keepalive or zero-window probes.
    pub probes_out: u8,
    /// `ENDING_*` bits.
    pub flags: u8,
    /// The kernel's reason (`enum sk_rst_reason`, Linux 6.10+) for the reset the socket sent
    /// before its CLOSE (a keepalive timeout, `tcp_abort()`), plus one; 0 when none was seen.
    /// The reset of an abortive close comes after the CLOSE: user space joins that one.
    pub reset_reason: u32,
}

const _: () = assert!(core::mem::size_of::<Ending>() == 20);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseEvent {
    /// Owner: who connected or accepted (pid 0 when tcptrace did not see either).
    pub header: EventHeader,
    pub endpoints: Endpoints,
    /// ESTABLISHED to CLOSE; 0 when the connection was established before tcptrace ran.
    pub lifetime_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// `tcp_sock.total_retrans`: the kernel's own count (what TCP_INFO reports).
    pub total_retrans: u32,
    /// `tcp_sock.srtt_us >> 3`: smoothed RTT in µs.
    pub srtt_us: u32,
    pub ending: Ending,
    pub direction: u8,
    pub closed_by: u8,
    pub bytes_source: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<CloseEvent>() == 152);
