//! Per-connection state kept in `SOCKS`, and the helpers every event uses to find a
//! connection's owner.

pub(crate) use tracer_common::conn::SockInfo;
use tracer_common::{
    addr::Endpoints,
    close::{DIRECTION_PASSIVE, DIRECTION_UNKNOWN},
    conn::Task,
    counters::Counter,
};

use crate::{
    emit::count,
    maps::{EndsKey, SOCKS},
};

pub(crate) const UNKNOWN_TASK: Task = Task::UNKNOWN;

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;

/// Inserts a fresh entry for `sk` built by `init` in per-CPU scratch space, and returns
/// a pointer to the map's entry for `sk`. An entry that another CPU inserted meanwhile is
/// kept, not overwritten (a passive socket can be accepted on one CPU while its handshake
/// completes on another, and each may be first to insert), and the pointer is to that
/// one. `None` if the map refused.
#[inline(always)]
pub(crate) fn insert_new(
    sk: u64,
    direction: u8,
    state_since_ns: u64,
    init: impl FnOnce(&mut SockInfo),
) -> Option<*mut SockInfo> {
    insert_fresh(sk, direction, state_since_ns, init)?;
    // Ours, or when the insert failed, someone else's (or none, if the map refused).
    SOCKS.get_ptr_mut(&sk)
}

/// Puts a fresh entry for `sk` built by `init` (in per-CPU scratch space) in `SOCKS` if
/// the key is new: whether it went in, or `None` when no scratch slot was free.
#[inline(always)]
fn insert_fresh(
    sk: u64,
    direction: u8,
    state_since_ns: u64,
    init: impl FnOnce(&mut SockInfo),
) -> Option<bool> {
    // SAFETY: the scratch slot is this program's alone until `with_scratch` returns.
    with_scratch(|scratch| unsafe {
        fresh(scratch, direction, state_since_ns);
        init(&mut *scratch);
        insert_if_new(sk, &*scratch)
    })
}

/// Stores a fresh entry for `sk` built by `init`, replacing any: for callers that do not
/// need the entry afterwards (one map lookup fewer than `insert_new`). False if the map
/// refused.
#[inline(always)]
pub(crate) fn put(
    sk: u64,
    direction: u8,
    state_since_ns: u64,
    init: impl FnOnce(&mut SockInfo),
) -> bool {
    // SAFETY: the scratch slot is this program's alone until `with_scratch` returns.
    with_scratch(|scratch| unsafe {
        fresh(scratch, direction, state_since_ns);
        init(&mut *scratch);
        if insert_if_new(sk, &*scratch) {
            return true;
        }
        // A key still there is replaced (it is not a new entry: the insert is not counted),
        // and what it still owed is counted lost (see `owed_an_event`).
        if SOCKS.get_ptr(&sk).is_some_and(|old| owed_an_event(&*old)) {
            count(Counter::StateGap);
        }
        SOCKS.insert(&sk, &*scratch, 0).is_ok()
    })
    .unwrap_or(false)
}

/// Whether a stale entry, found where a new connection starts, owed an event that is now
/// lost. A socket's entry goes at its CLOSE (or, per-call counting, at its destruction or
/// next connect), so one found under the address of a new socket, or of one connecting
/// anew, is a freed socket's whose CLOSE tcptrace never saw: a hook run the kernel skipped
/// (kprobes share one recursion guard, and Linux before 6.7 does not count those skips),
/// and the kernel gave its address to the new socket. It owed its close, or its connect's
/// outcome, unless its owner was filtered out or it was a listener's child that never
/// finished its handshake nor was accepted (never a connection: see `state::on_change`).
#[inline(always)]
fn owed_an_event(old: &SockInfo) -> bool {
    old.filtered_out == 0
        && (old.direction != DIRECTION_PASSIVE || old.established_ns != 0 || old.task.pid != 0)
}

/// Puts `value` in `SOCKS` under `sk` if the key is new, counted (see `Counter::Tracked`):
/// every insert of a new key goes through here. False if the key was there or the map
/// refused.
#[inline(always)]
fn insert_if_new(sk: u64, value: &SockInfo) -> bool {
    let inserted = SOCKS.insert(&sk, value, BPF_NOEXIST).is_ok();
    if inserted {
        count(Counter::Tracked);
    }
    inserted
}

/// Forgets `sk` as it reaches CLOSE; when reset events are wanted, or the kernel's reset
/// reasons for close events, keeps its owner on this CPU for the reset the socket may
/// send next (see `maps::LAST_CLOSED`).
#[inline(always)]
pub(crate) fn forget_closed(sk: u64, info: &SockInfo) {
    if crate::globals::wants(tracer_common::event::EventKind::Reset)
        || crate::globals::config().close_reasons != 0
    {
        if let Some(slot) = crate::maps::LAST_CLOSED.get_ptr_mut(closed_slot(sk)) {
            // SAFETY: this CPU's slot of a per-CPU array.
            unsafe {
                (*slot).sk = sk;
                (*slot).task = info.task;
                (*slot).filtered_out = u64::from(info.filtered_out);
            }
        }
    }
    forget(sk);
}

/// Notes in `sk`'s entry the kernel's `reason` for a reset it sends, for its close event
/// (the first one: a socket that goes on sending resets is already ending). False when
/// `sk` has no entry: its CLOSE went before, or it was never tracked.
#[inline(always)]
pub(crate) fn note_reset_reason(sk: u64, reason: u32) -> bool {
    let Some(info) = SOCKS.get_ptr_mut(&sk) else {
        return false;
    };
    // SAFETY: a map value; a race with another writer of the same field leaves either
    // reason, each the kernel's.
    unsafe {
        if (*info).ending.reset_reason == 0 {
            (*info).ending.reset_reason = reason.saturating_add(1);
        }
    }
    true
}

/// The owner of `sk` (see `owner`), also just after its entry went at CLOSE: taken from
/// this CPU's `LAST_CLOSED` slot when `sk` is the one kept there, and the slot emptied (a
/// socket sends one reset of its own, and a later socket at the same address must not
/// inherit the owner).
#[inline(always)]
pub(crate) fn owner_even_closed(sk: u64) -> Option<Task> {
    if SOCKS.get_ptr(&sk).is_some() {
        return owner(sk);
    }
    let Some(slot) = crate::maps::LAST_CLOSED.get_ptr_mut(closed_slot(sk)) else {
        return Some(UNKNOWN_TASK);
    };
    // SAFETY: this CPU's slot of a per-CPU array.
    unsafe {
        if (*slot).sk != sk {
            return Some(UNKNOWN_TASK);
        }
        (*slot).sk = 0;
        ((*slot).filtered_out == 0).then_some((*slot).task)
    }
}

/// `LAST_CLOSED`'s slot for `sk`: 0 while a task holds it, 1 otherwise.
#[inline(always)]
fn closed_slot(sk: u64) -> u32 {
    u32::from(crate::sock::owned::<crate::sock::Probe>(sk) != Ok(true))
}

/// Puts established `sk` in `ENDS` under its ends, for drops without a socket (only while
/// drop events are wanted).
#[inline(always)]
pub(crate) fn index_ends<A: crate::sock::Access>(sk: u64) {
    let mut key = EndsKey { endpoints: Endpoints::default(), netns: 0, _pad: 0 };
    if crate::sock::endpoints_into::<A>(sk, &mut key.endpoints).is_ok() {
        key.netns = crate::sock::netns::<A>(sk);
        if crate::maps::ENDS.insert(&key, &sk, 0).is_err() {
            count(Counter::MapError);
        }
    }
}

/// Takes closing `sk` out of `ENDS` (see `index_ends`).
#[inline(always)]
pub(crate) fn unindex_ends<A: crate::sock::Access>(sk: u64) {
    let mut key = EndsKey { endpoints: Endpoints::default(), netns: 0, _pad: 0 };
    if crate::sock::endpoints_into::<A>(sk, &mut key.endpoints).is_ok() {
        key.netns = crate::sock::netns::<A>(sk);
        let _gone = crate::maps::ENDS.remove(&key);
    }
}

/// The socket that has `endpoints` (`saddr` local) in network namespace `netns`, checked
/// against the socket itself: an entry left by a socket whose CLOSE was missed, its
/// memory since given to another, is not taken for it. 0 when none.
#[inline(always)]
pub(crate) fn by_ends(endpoints: &Endpoints, netns: u32) -> u64 {
    let key = EndsKey { endpoints: *endpoints, netns, _pad: 0 };
    let Some(entry) = crate::maps::ENDS.get_ptr(&key) else {
        return 0;
    };
    // SAFETY: a map value, read once; a concurrent update leaves either socket, and the
    // check below holds it to its ends.
    let sk = unsafe { *entry };
    let mut now = Endpoints::default();
    let same = crate::sock::endpoints_into::<crate::sock::Probe>(sk, &mut now).is_ok()
        && now.family == endpoints.family
        && now.saddr == endpoints.saddr
        && now.daddr == endpoints.daddr
        && now.sport == endpoints.sport
        && now.dport == endpoints.dport
        && crate::sock::netns::<crate::sock::Probe>(sk) == netns;
    if same {
        sk
    } else {
        0
    }
}

/// Counts a SYN of `sk` this host dropped on its way out, for its connect event, with the
/// kernel's `reason` (`REASON_NONE` without one). Under the socket's lock, as its state
/// changes: the SYN is sent, and resent, holding it.
#[inline(always)]
pub(crate) fn note_syn_drop(sk: u64, reason: u32) {
    let Some(info) = SOCKS.get_ptr_mut(&sk) else {
        return;
    };
    // SAFETY: a map value, written under the socket's lock (see above).
    unsafe {
        (*info).syns_dropped = (*info).syns_dropped.saturating_add(1);
        (*info).syn_drop_reason =
            if reason == tracer_common::drop::REASON_NONE { 0 } else { reason.saturating_add(1) };
    }
}

/// Takes `sk` out of `SOCKS`, counted (see `Counter::Untracked`). Every removal goes
/// through here.
#[inline(always)]
pub(crate) fn forget(sk: u64) {
    if SOCKS.remove(&sk).is_ok() {
        count(Counter::Untracked);
    }
}

/// Runs `build` on this CPU's `NEW_SOCK` slot for the current nesting level. A program
/// that interrupts this one (a softirq over a process-context program) runs to its end
/// before this one goes on, so it sees the level raised and takes the other slot; raised
/// after it is read and before the slot is used, the level needs no atomics. `None` if a
/// third level is ever reached.
#[inline(always)]
fn with_scratch<R>(build: impl FnOnce(*mut SockInfo) -> R) -> Option<R> {
    let depth = crate::maps::NEW_SOCK_DEPTH.get_ptr_mut(0)?;
    // SAFETY: this CPU's counter; see above for why plain loads and stores suffice.
    let level = unsafe { *depth };
    let scratch = crate::maps::NEW_SOCK.get_ptr_mut(level)?;
    // SAFETY: as above.
    unsafe { *depth = level + 1 };
    let result = build(scratch);
    // SAFETY: as above.
    unsafe { *depth = level };
    Some(result)
}

/// Writes `SockInfo::unknown(direction, state_since_ns)` into `*dst` (per-CPU scratch)
/// without building it on the stack and copying it through `memset` (see `mem`).
///
/// # Safety
/// `dst` must point at a `SockInfo` this program alone writes.
#[inline(always)]
unsafe fn fresh(dst: *mut SockInfo, direction: u8, state_since_ns: u64) {
    // SAFETY: as the caller promises.
    unsafe {
        crate::mem::zero(dst);
        (*dst).direction = direction;
        (*dst).state_since_ns = state_since_ns;
    }
}

/// Clears in place a stale entry (see `owed_an_event`) that a listener's child found
/// under its address, counting what it owed; the key stays, so the insert and removal
/// counts are untouched.
#[inline(always)]
pub(crate) fn reclaim_for_child(info: &mut SockInfo, state_since_ns: u64) {
    if owed_an_event(info) {
        count(Counter::StateGap);
    }
    // SAFETY: a map value the caller holds exclusively (under the socket's lock).
    unsafe { fresh(info, DIRECTION_PASSIVE, state_since_ns) };
}

/// The entry for `sk`, creating an owner-less one when there is none. `None` only if the
/// map refused the insert (then the caller works from a stack copy).
#[inline(always)]
pub(crate) fn get_or_track(sk: u64, old: i32, now: u64) -> Option<*mut SockInfo> {
    if let Some(p) = SOCKS.get_ptr_mut(&sk) {
        return Some(p);
    }
    // A child socket born from a listener: we see its life from the start.
    let (direction, since) =
        if old == tracer_common::kernel::TCP_LISTEN || old == tracer_common::kernel::TCP_SYN_RECV {
            (DIRECTION_PASSIVE, if old == tracer_common::kernel::TCP_LISTEN { now } else { 0 })
        } else {
            (DIRECTION_UNKNOWN, 0)
        };
    insert_new(sk, direction, since, |_| {})
}

/// Inserts an entry for `sk`, a listener's child that reached ESTABLISHED at `now`, unless
/// it has one: true if inserted. What `get_or_track` and `state::on_change` make of a child
/// they have not seen, in one map operation instead of three.
#[inline(always)]
pub(crate) fn track_established_child(sk: u64, now: u64) -> bool {
    insert_fresh(sk, DIRECTION_PASSIVE, 0, |info| info.established_ns = now).unwrap_or(false)
}

/// The owner of `sk` (the unknown task when not tracked), or `None` when its owner failed
/// the filters: then no event of it is wanted.
#[inline(always)]
pub(crate) fn owner(sk: u64) -> Option<Task> {
    match SOCKS.get_ptr(&sk) {
        // SAFETY: a plain struct in a map value.
        Some(p) => unsafe { ((*p).filtered_out == 0).then_some((*p).task) },
        None => Some(UNKNOWN_TASK),
    }
}

/// The live view (`Config::live`, `tcptrace top`) shows every entry with known ends: reads
/// the ends of `sk` into its entry, and when the socket filters drop it, marks the entry
/// filtered out (no row, no later event) and returns false. A failed read leaves the ends
/// unknown (family 0), to be read again.
#[inline(always)]
pub(crate) fn live_ends_wanted<A: crate::sock::Access>(sk: u64, info: &mut SockInfo) -> bool {
    if crate::sock::endpoints_into::<A>(sk, &mut info.endpoints).is_err() {
        info.endpoints.family = 0;
        return true;
    }
    if crate::emit::socket_matches::<A>(sk, &info.endpoints) {
        return true;
    }
    info.filtered_out = 1;
    count(Counter::Filtered);
    false
}
