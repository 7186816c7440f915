//! Per-connection state kept in `SOCKS`, and the helpers every event uses to find a
//! connection's owner.

use tracer_common::{
    close::{DIRECTION_PASSIVE, DIRECTION_UNKNOWN},
    event::COMM_LEN,
};

use crate::{emit::Task, maps::SOCKS};

#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct SockInfo {
    /// Who connected or accepted; pid 0 while unknown.
    pub(crate) task: Task,
    /// Active opens: when the SYN went out (CLOSE -> SYN_SENT); 0 otherwise.
    pub(crate) syn_sent_ns: u64,
    /// When it became ESTABLISHED; 0 when that was before tcptrace started.
    pub(crate) established_ns: u64,
    /// When the current state began; 0 when not seen.
    pub(crate) state_since_ns: u64,
    /// When it reached CLOSE, while the close event waits for the socket's destruction
    /// (per-call counting: the application may still read after CLOSE); 0 before.
    pub(crate) closed_ns: u64,
    /// Per-call byte counts (only with `Config::count_calls`).
    pub(crate) sent_bytes: u64,
    pub(crate) received_bytes: u64,
    /// `tracer_common::close::DIRECTION_*`.
    pub(crate) direction: u8,
    /// `tracer_common::close::CLOSED_BY_*`.
    pub(crate) closed_by: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub(crate) _pad: [u8; 6],
}

pub(crate) const UNKNOWN_TASK: Task = Task { pid: 0, tid: 0, uid: 0, _pad: 0, comm: [0; COMM_LEN] };

impl SockInfo {
    pub(crate) const fn unknown(direction: u8, state_since_ns: u64) -> Self {
        Self {
            task: UNKNOWN_TASK,
            syn_sent_ns: 0,
            established_ns: 0,
            state_since_ns,
            closed_ns: 0,
            sent_bytes: 0,
            received_bytes: 0,
            direction,
            closed_by: 0,
            _pad: [0; 6],
        }
    }
}

/// The entry for `sk`, creating an owner-less one when there is none. `None` only if the
/// map refused the insert (then the caller works from a stack copy).
#[inline(always)]
pub(crate) fn get_or_track(sk: u64, old: i32, now: u64) -> Option<*mut SockInfo> {
    if let Some(p) = SOCKS.get_ptr_mut(&sk) {
        return Some(p);
    }
    // A child socket born from a listener: we see its life from the start.
    let (direction, since) = if old == crate::state::TCP_LISTEN || old == crate::state::TCP_SYN_RECV {
        (DIRECTION_PASSIVE, if old == crate::state::TCP_LISTEN { now } else { 0 })
    } else {
        (DIRECTION_UNKNOWN, 0)
    };
    SOCKS.insert(&sk, &SockInfo::unknown(direction, since), 0).ok()?;
    SOCKS.get_ptr_mut(&sk)
}

/// The owner of `sk`, or the unknown task.
#[inline(always)]
pub(crate) fn owner(sk: u64) -> Task {
    match SOCKS.get_ptr(&sk) {
        // SAFETY: a plain struct in a map value.
        Some(p) => unsafe { (*p).task },
        None => UNKNOWN_TASK,
    }
}
