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
    pub direction: u8,
    pub closed_by: u8,
    pub bytes_source: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: [u8; 5],
}

const _: () = assert!(core::mem::size_of::<CloseEvent>() == 136);
