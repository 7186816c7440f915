//! What the kernel keeps per connection (the `SOCKS` map's value). Shared so that
//! userspace can inspect the map (e.g. to report how many connections are still tracked).

use crate::event::COMM_LEN;

/// A task's identity, captured in its own (process) context. `pid == 0`: unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// Keeps `comm` 8-byte aligned without hidden padding.
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

impl Task {
    pub const UNKNOWN: Self = Self { pid: 0, tid: 0, uid: 0, _pad: 0, comm: [0; COMM_LEN] };
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockInfo {
    /// Who connected or accepted; pid 0 while unknown.
    pub task: Task,
    /// Active opens: when the SYN went out (CLOSE -> SYN_SENT); 0 otherwise.
    pub syn_sent_ns: u64,
    /// When it became ESTABLISHED; 0 when that was before tcptrace started.
    pub established_ns: u64,
    /// When the current state began; 0 when not seen.
    pub state_since_ns: u64,
    /// When it reached CLOSE, while the close event waits for the socket's destruction
    /// (per-call counting: the application may still read after CLOSE); 0 before.
    pub closed_ns: u64,
    /// Per-call byte counts (only with `Config::count_calls`).
    pub sent_bytes: u64,
    pub received_bytes: u64,
    /// `close::DIRECTION_*`.
    pub direction: u8,
    /// `close::CLOSED_BY_*`.
    pub closed_by: u8,
    /// The `TCP_*` state tcptrace last saw it enter; 0 when none yet.
    pub last_state: u8,
    /// 1 once the peer acknowledged our FIN (FIN_WAIT1 -> FIN_WAIT2, CLOSING or LAST_ACK
    /// -> CLOSE): `bytes_acked` then counts it as one byte.
    pub fin_acked: u8,
    /// 1 when the owner failed the filters: the entry stays, so that every later event of
    /// the socket is dropped too (a removed one would come back owner-less and pass).
    pub filtered_out: u8,
    /// SYNs of an active open this host dropped on their way out (while drop events are
    /// wanted: `ConnectEvent::syns_dropped`), saturating.
    pub syns_dropped: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: [u8; 2],
    /// Live view only (`Config::live`): both ends, filled at the first send or receive,
    /// and the socket's retransmit count and smoothed RTT as of the last one.
    pub endpoints: crate::addr::Endpoints,
    pub total_retrans: u32,
    pub srtt_us: u32,
    /// How it ended, read at CLOSE, while the close event waits for the socket's
    /// destruction (per-call counting).
    pub ending: crate::close::Ending,
    /// The drop reason of the last of `syns_dropped`, plus one (`ConnectEvent::syn_drop_reason`).
    pub syn_drop_reason: u32,
}

impl SockInfo {
    #[must_use]
    pub const fn unknown(direction: u8, state_since_ns: u64) -> Self {
        Self {
            task: Task::UNKNOWN,
            syn_sent_ns: 0,
            established_ns: 0,
            state_since_ns,
            closed_ns: 0,
            sent_bytes: 0,
            received_bytes: 0,
            direction,
            closed_by: 0,
            last_state: 0,
            fin_acked: 0,
            filtered_out: 0,
            syns_dropped: 0,
            _pad: [0; 2],
            endpoints: crate::addr::Endpoints {
                saddr: [0; 16],
                daddr: [0; 16],
                sport: 0,
                dport: 0,
                family: 0,
                _pad: 0,
            },
            total_retrans: 0,
            srtt_us: 0,
            ending: crate::close::Ending {
                err: 0,
                unacked_bytes: 0,
                unread_bytes: 0,
                old_state: 0,
                retransmits: 0,
                probes_out: 0,
                flags: 0,
                reset_reason: 0,
            },
            syn_drop_reason: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<SockInfo>() == 160);
