//! The state event: one per TCP state transition (opt-in, as tcpstates).

use crate::{addr::Endpoints, event::EventHeader};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateEvent {
    /// Owner of the socket (pid 0 when unknown), not the task the transition ran on.
    pub header: EventHeader,
    pub endpoints: Endpoints,
    /// Time spent in `old_state`; 0 when tcptrace did not see it begin.
    pub in_old_state_ns: u64,
    /// `TCP_*` values from include/net/tcp_states.h.
    pub old_state: u32,
    pub new_state: u32,
}

const _: () = assert!(core::mem::size_of::<StateEvent>() == 112);

/// `TCP_*` states are below this (12 on every kernel so far; room to spare).
pub const STATE_SLOTS: usize = 16;

/// State changes counted in the kernel (`Config::count_states`): `by_change[old][new]`,
/// one copy per CPU in the `STATE_COUNTS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateCounts {
    pub by_change: [[u64; STATE_SLOTS]; STATE_SLOTS],
}
