//! Getting events to userspace: the common header, ring buffer reservation, and the
//! per-CPU counters that make every loss visible.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid};
use tracer_common::{
    counters::Counter,
    event::{EventHeader, EventKind, COMM_LEN},
};

use crate::{
    maps::{COUNTERS, EVENTS},
    sock::Access,
};

pub(crate) use tracer_common::conn::Task;

/// Adds one to a counter slot on this CPU. Atomically: a softirq's program can interrupt
/// a process-context one between the load and the store of a plain `+= 1` on the same
/// slot, and one of the two counts would be lost (`SOCKS`'s insert and remove counts must
/// balance exactly).
#[inline(always)]
pub(crate) fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a valid, aligned u64 in this CPU's slot of the map; BPF_ATOMIC | BPF_ADD
        // (any kernel with BPF: the old BPF_XADD), without fetch.
        unsafe {
            core::arch::asm!("lock *(u64 *)({slot} + 0) += {one}", slot = in(reg) slot, one = in(reg) 1u64, options(nostack))
        };
    }
}

#[inline(always)]
pub(crate) fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
pub(crate) fn current_task() -> Task {
    let pid_tgid = bpf_get_current_pid_tgid();
    Task {
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        _pad: 0,
        comm: current_comm(),
    }
}

/// The current task's name. aya's wrapper zeroes its buffer first, through `memset` (see
/// `mem`); the kernel's helper writes every byte itself, zeros included when it fails.
#[inline(always)]
fn current_comm() -> [u8; COMM_LEN] {
    let mut comm = core::mem::MaybeUninit::<[u8; COMM_LEN]>::uninit();
    // SAFETY: the helper fills all COMM_LEN bytes of the buffer (zeroed on failure).
    unsafe {
        aya_ebpf::helpers::generated::bpf_get_current_comm(
            comm.as_mut_ptr().cast(),
            COMM_LEN as u32,
        );
        comm.assume_init()
    }
}

/// Writes a header in place (into a ring buffer reservation). `at_ns` is the event's
/// time: the caller's own clock reading where it has one (a clock read costs about as
/// much as a map lookup here).
#[inline(always)]
pub(crate) fn fill_header<A: Access>(
    out: &mut EventHeader,
    kind: EventKind,
    task: &Task,
    at_ns: u64,
    sk: u64,
) {
    *out = header::<A>(kind, task, at_ns, sk);
}

#[inline(always)]
pub(crate) fn header<A: Access>(kind: EventKind, task: &Task, at_ns: u64, sk: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        pid: task.pid,
        tid: task.tid,
        uid: task.uid,
        ts_ns: at_ns,
        sock: sk,
        comm: task.comm,
        netns: crate::sock::netns::<A>(sk),
        _pad: 0,
    }
}

/// Sends one event, written field by field straight into the ring buffer by `fill` (a
/// whole event built on the stack first would not fit the 512-byte BPF stack of the
/// deepest call chains on older verifiers). `fill` must write every field, padding
/// included. A full ring buffer is counted, never silent.
#[inline(always)]
pub(crate) fn send<T: 'static>(fill: impl FnOnce(*mut T)) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            fill(entry.as_mut_ptr());
            entry.submit(0);
        }
        None => count(Counter::RingbufFull),
    }
}

/// The header for an event about a connection owned by `owner`, or `None` when the user
/// did not ask for this kind or a filter drops it (counted as filtered).
#[inline(always)]
pub(crate) fn header_if_wanted<A: Access>(
    kind: EventKind,
    owner: &Task,
    endpoints: &tracer_common::addr::Endpoints,
    at_ns: u64,
    sk: u64,
) -> Option<EventHeader> {
    if !crate::globals::wants(kind) {
        return None;
    }
    let filter = crate::globals::filter();
    if !filter.owner_matches(owner.pid, owner.uid, &owner.comm)
        || !socket_matches::<A>(sk, endpoints)
    {
        count(Counter::Filtered);
        return None;
    }
    Some(header::<A>(kind, owner, at_ns, sk))
}

/// The socket filters: family and ports from `endpoints` (the ends of `sk`), and the
/// network namespace, read only when that filter is set.
#[inline(always)]
pub(crate) fn socket_matches<A: Access>(
    sk: u64,
    endpoints: &tracer_common::addr::Endpoints,
) -> bool {
    let filter = crate::globals::filter();
    filter.endpoints_match(endpoints.family, endpoints.sport, endpoints.dport)
        && (filter.netns == 0 || filter.netns_matches(crate::sock::netns::<A>(sk)))
}

/// Reads the endpoints of `sk` into a reserved event's `out` and applies the socket
/// filters: false (the read error or the drop counted) when the event must be discarded.
#[inline(always)]
pub(crate) fn endpoints_wanted<A: crate::sock::Access>(
    sk: u64,
    out: &mut tracer_common::addr::Endpoints,
) -> bool {
    if crate::sock::endpoints_into::<A>(sk, out).is_err() {
        count(Counter::ReadError);
        return false;
    }
    if !socket_matches::<A>(sk, out) {
        count(Counter::Filtered);
        return false;
    }
    true
}

/// The current task passes the owner filters, its cgroup included: checked where a
/// connection gets its owner (connect, accept), the only place the cgroup is known.
#[inline(always)]
pub(crate) fn task_wanted(task: &Task) -> bool {
    let filter = crate::globals::filter();
    // SAFETY: no preconditions.
    filter.owner_matches(task.pid, task.uid, &task.comm)
        && (filter.cgroup_id == 0
            || filter.cgroup_matches(unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() }))
}

/// Nanoseconds of CLOCK_MONOTONIC.
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}
