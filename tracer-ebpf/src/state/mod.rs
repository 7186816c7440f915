//! TCP state transitions: the logic shared by every hook family. Everything about a
//! connection's life hangs off here: the start and end of a connect, the ESTABLISHED time,
//! who closed first, state events, and the close event.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{
    close::{DIRECTION_ACTIVE, DIRECTION_PASSIVE},
    counters::Counter,
    event::EventKind,
    state::{StateEvent, STATE_SLOTS},
};

use crate::{
    emit::{count, now_ns},
    event::{close, connect},
    maps::{STATE_BUSY, STATE_COUNTS},
    sock::{self, Access},
    socks,
};

use tracer_common::kernel::{TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT};

/// The body of the two state programs of a pair: `owner_side` is true for the one that
/// takes changes made with the socket owned by a task (process context: connect, close,
/// backlog processing), false for the one that takes the others (softirq: packets, timers).
///
/// Why two: the kernel skips a program that is already running on the same CPU (the
/// per-program recursion guard of raw tracepoints and trampolines), and a softirq that
/// changes a socket's state can interrupt the program while it handles a change in process
/// context. With one program per context, the interrupted one is not the one needed:
/// softirqs do not nest, and tracepoint programs run with preemption off. (An fentry
/// program only has migration off: on a fully preemptible kernel, `preempt=full`, a task
/// preempted inside the owner side makes the kernel skip another task's change on that
/// CPU, and that skip is not told apart from the expected ones; the default voluntary
/// preemption of distribution kernels has no such window.) Whether the socket is
/// owned (`sk->sk_lock.owned`) cannot change during the transition (it is made under the
/// socket's lock), so exactly one of the two takes each event, in whatever order the
/// kernel runs them. One window is left: the softirq side also runs (and returns at once)
/// for process-context changes; while it does, it marks itself busy on this CPU and the
/// owner side takes a softirq change for it. Only an interrupt between the kernel's guard
/// and that mark can lose an event, and the kernel counts that skip, which tcptrace
/// reports. Kprobes and classic tracepoints have one guard for all BPF programs, so there
/// a single program handles everything and misses are counted the same way.
///
/// `handle` reads what else it needs (protocol, old state) and calls `on_change`: only the
/// program that takes the change pays for those reads.
#[inline(always)]
pub(crate) fn pair<A: Access>(sk: u64, owner_side: bool, handle: impl FnOnce()) {
    if owner_side {
        // Unreadable: the owner side takes it, so it is never dropped.
        let owned = sock::owned::<A>(sk).unwrap_or(true);
        // SAFETY: this CPU's slot of a per-CPU array.
        let softirq_side_busy = STATE_BUSY.get_ptr(0).is_some_and(|b| unsafe { *b } != 0);
        if owned || softirq_side_busy {
            handle();
        }
    } else if sock::owned::<A>(sk) == Ok(false) {
        handle();
    }
}

/// Marks the softirq side of the pair busy on this CPU for as long as `body` runs: the
/// first and last thing its programs do.
#[inline(always)]
pub(crate) fn softirq_side(body: impl FnOnce()) {
    let busy = STATE_BUSY.get_ptr_mut(0);
    if let Some(b) = busy {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *b = 1 };
    }
    body();
    if let Some(b) = busy {
        // SAFETY: as above.
        unsafe { *b = 0 };
    }
}

/// Whether every change is followed: state events are wanted, or counted in the kernel.
#[inline(always)]
fn every_change() -> bool {
    crate::globals::wants(EventKind::State) || crate::globals::config().count_states != 0
}

/// The part of `has_work` that needs only the new state: for hooks that learn the old one
/// from a read of the socket (fentry, kprobe).
#[inline(always)]
pub(crate) fn new_state_may_have_work(new: i32) -> bool {
    every_change() || matches!(new, TCP_SYN_SENT | TCP_ESTABLISHED | TCP_CLOSE)
}

/// Whether `old -> new` has work for the events asked for, from the two states alone: the
/// state programs ask this first, before any read of the socket.
///
/// Listening sockets are not connections. Unless state changes are sent or counted, only
/// the ends of a connection's life matter: the SYN going out, the handshake's end, and
/// CLOSE (from the state left, the close event learns who closed first and whether our FIN
/// was acked; see `close::on_close_state`). So the middle of a close (ESTABLISHED ->
/// FIN_WAIT1 -> FIN_WAIT2, ESTABLISHED -> CLOSE_WAIT -> LAST_ACK) and a child's LISTEN ->
/// SYN_RECV cost nothing but the call: half the changes of a short connection. A
/// simultaneous open (a socket connected to itself, or two connecting to each other) goes
/// SYN_SENT -> SYN_RECV -> ESTABLISHED: its handshake ends from SYN_RECV.
#[inline(always)]
pub(crate) fn has_work(old: i32, new: i32) -> bool {
    if old == new || new == TCP_LISTEN || (old == TCP_LISTEN && new == TCP_CLOSE) {
        return false;
    }
    if every_change() {
        return true;
    }
    match new {
        TCP_SYN_SENT => old == TCP_CLOSE,
        TCP_ESTABLISHED => old == TCP_SYN_SENT || old == TCP_SYN_RECV,
        // From SYN_RECV too: a simultaneous open that fails, or a Fast Open child accepted
        // before its handshake ended (children rarely die there).
        TCP_CLOSE => true,
        _ => false,
    }
}

/// One transition of `sk` from `old` to `new`. Not inlined: a BPF-to-BPF call keeps each
/// entry point small and gives the event builders below their own stack frames.
#[inline(never)]
pub(crate) fn on_change<A: Access>(sk: u64, old: i32, new: i32) {
    if !has_work(old, new) || !crate::globals::armed() {
        return;
    }
    if crate::globals::wants(tracer_common::event::EventKind::Drop) {
        // Drops without a socket find their connection by its ends (see `maps::ENDS`).
        match new {
            TCP_ESTABLISHED => socks::index_ends::<A>(sk),
            TCP_CLOSE => socks::unindex_ends::<A>(sk),
            _ => {}
        }
    }
    let with_states = every_change();
    let now = now_ns();
    if old == TCP_CLOSE && new == TCP_SYN_SENT {
        connect::start(sk, now); // replaces an entry whose CLOSE was not seen
        if with_states {
            match socks::owner(sk) {
                Some(owner) => state_event::<A>(sk, &owner, Change { old, new }, 0, now),
                None => count(Counter::Filtered),
            }
        }
        return;
    }
    if old == TCP_SYN_RECV
        && new == TCP_ESTABLISHED
        && !with_states
        && socks::track_established_child(sk, now)
    {
        // A listener's child that ends its handshake before it is accepted (the usual
        // order), new to tcptrace: all its entry needs is the time, so one insert stands
        // for the failed lookup, insert and lookup of the way below. When an entry is
        // there (accepted first, a simultaneous open, a freed socket's), the way below.
        return;
    }
    let Some(info) = socks::get_or_track(sk, old, now) else {
        count(Counter::MapError);
        return;
    };
    // SAFETY: `info` points into the map value for `sk`; programs on other CPUs touching
    // the same socket hold its lock (state changes run under it), so there is no race here.
    let info = unsafe { &mut *info };
    let child = old == TCP_SYN_RECV || old == TCP_LISTEN;
    let not_this_childs = info.direction != DIRECTION_PASSIVE || info.established_ns != 0;
    if child && not_this_childs && sock::has_socket::<A>(sk) == Ok(false) {
        // A listener's child (no socket until it is accepted) starting or ending its
        // handshake on an entry it did not make: a freed socket's, whose CLOSE tcptrace
        // never saw (see `socks::owed_an_event`). An active one, taken as the child's own,
        // made a connect event with the old owner; a passive one that was established
        // already, a previous child's, hid its lost close (counted nowhere, nor left
        // tracked). A simultaneous open, the other way an active entry reaches SYN_RECV,
        // always has its socket.
        socks::reclaim_for_child(info, if old == TCP_LISTEN { now } else { 0 });
    }
    if info.filtered_out != 0 {
        // Its owner failed the filters: nothing to report, ever; forgotten at CLOSE.
        if new == TCP_CLOSE {
            crate::socks::forget_closed(sk, info);
        }
        return;
    }
    // Only when every change comes here (`has_work`) can a missing one be seen.
    if with_states {
        if info.last_state != 0 && i32::from(info.last_state) != old {
            count(Counter::StateGap);
        }
        info.last_state = new as u8;
    }

    let mut keep_for_exit_hook = false;
    // A connect still under way: SYN_SENT, or SYN_RECV after a simultaneous open.
    let connecting =
        old == TCP_SYN_SENT || (old == TCP_SYN_RECV && info.direction == DIRECTION_ACTIVE);
    if connecting {
        match new {
            TCP_ESTABLISHED => {
                connect::finish::<A>(sk, info, false, now);
            }
            TCP_CLOSE => keep_for_exit_hook = !connect::finish::<A>(sk, info, true, now),
            _ => {}
        }
    }
    if new == TCP_ESTABLISHED {
        info.established_ns = now;
    }
    if with_states {
        let in_old =
            if info.state_since_ns == 0 { 0 } else { now.saturating_sub(info.state_since_ns) };
        state_event::<A>(sk, &info.task, Change { old, new }, in_old, now);
        info.state_since_ns = now;
    }

    if new == TCP_CLOSE {
        // A connect that never got through is a connect event, not a closed connection;
        // a child that died in SYN_RECV unaccepted was never a connection at all.
        let never_open = connecting || (old == TCP_SYN_RECV && info.task.pid == 0);
        if !never_open && close::on_close_state::<A>(sk, info, old, now) {
            return; // the close event waits for the socket's destruction
        }
        if !keep_for_exit_hook {
            crate::socks::forget_closed(sk, info);
        }
    }
}

/// A transition, as one argument: a BPF-to-BPF call takes at most five.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Change {
    old: i32,
    new: i32,
}

#[inline(never)]
fn state_event<A: Access>(
    sk: u64,
    owner: &tracer_common::conn::Task,
    change: Change,
    in_old_state_ns: u64,
    now: u64,
) {
    let send_it = crate::globals::wants(EventKind::State);
    let count_it = crate::globals::config().count_states != 0;
    if !send_it && !count_it {
        return;
    }
    let filter = crate::globals::filter();
    if !filter.owner_matches(owner.pid, owner.uid, &owner.comm) {
        count(Counter::Filtered);
        return;
    }
    if count_it && endpoints_pass::<A>(sk, filter) {
        count_change(change.old, change.new);
    }
    if send_it {
        send_state::<A>(sk, owner, change, in_old_state_ns, now);
    }
}

/// Whether the socket filters (family, ports, netns) let a change of `sk` through. The
/// endpoints are read only when such a filter is set.
#[inline(always)]
fn endpoints_pass<A: Access>(sk: u64, filter: &tracer_common::filter::Filter) -> bool {
    if !filter.has_endpoint_rules() {
        return true;
    }
    match sock::endpoints::<A>(sk) {
        Ok(ep) if crate::emit::socket_matches::<A>(sk, &ep) => true,
        Ok(_) => {
            count(Counter::Filtered);
            false
        }
        Err(_) => {
            count(Counter::ReadError);
            false
        }
    }
}

/// The state event, written straight into the ring buffer (this is the deepest call chain:
/// a copy on the stack would not fit the 512 bytes older verifiers allow it).
#[inline(always)]
fn send_state<A: Access>(
    sk: u64,
    owner: &tracer_common::conn::Task,
    change: Change,
    in_old_state_ns: u64,
    now: u64,
) {
    let Some(mut entry) = crate::maps::EVENTS.reserve::<StateEvent>(0) else {
        count(Counter::RingbufFull);
        return;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at the reserved StateEvent; every field is written below before
    // submit, or the entry is discarded.
    unsafe {
        if !crate::emit::endpoints_wanted::<A>(sk, &mut (*e).endpoints) {
            entry.discard(0);
            return;
        }
        crate::emit::fill_header::<A>(&mut (*e).header, EventKind::State, owner, now, sk);
        (*e).in_old_state_ns = in_old_state_ns;
        (*e).old_state = change.old as u32;
        (*e).new_state = change.new as u32;
    }
    entry.submit(0);
}

/// One more `old -> new` in this CPU's `STATE_COUNTS`.
#[inline(always)]
fn count_change(old: i32, new: i32) {
    let Some(counts) = STATE_COUNTS.get_ptr_mut(0) else { return };
    // Masks rather than range checks: LLVM merges two checks into one the verifier cannot
    // follow, and a mask bounds the index in a way it can. States stay below 16 (13 on
    // every kernel so far), so a mask changes nothing.
    const MASK: usize = STATE_SLOTS - 1;
    let index = (old as usize & MASK) * STATE_SLOTS + (new as usize & MASK);
    // SAFETY: this CPU's copy; `index` < STATE_SLOTS * STATE_SLOTS.
    unsafe { *counts.cast::<u64>().add(index) += 1 };
}
