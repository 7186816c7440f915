//! TCP state transitions: the logic shared by every hook family. Everything about a
//! connection's life hangs off here: the start and end of a connect, the ESTABLISHED time,
//! who closed first, state events, and the close event.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{
    close::{CLOSED_BY_LOCAL, CLOSED_BY_REMOTE, CLOSED_BY_UNKNOWN},
    counters::Counter,
    event::EventKind,
    state::StateEvent,
};

use crate::{
    close, connect,
    emit::{count, header_if_wanted, now_ns, send},
    maps::{SOCKS, STATE_GUARD},
    sock,
    socks,
};

// `TCP_*` states, include/net/tcp_states.h (a stable ABI: also shown by `ss`).
pub(crate) const TCP_ESTABLISHED: i32 = 1;
pub(crate) const TCP_SYN_SENT: i32 = 2;
pub(crate) const TCP_SYN_RECV: i32 = 3;
pub(crate) const TCP_FIN_WAIT1: i32 = 4;
pub(crate) const TCP_FIN_WAIT2: i32 = 5;
pub(crate) const TCP_CLOSE: i32 = 7;
pub(crate) const TCP_CLOSE_WAIT: i32 = 8;
pub(crate) const TCP_LAST_ACK: i32 = 9;
pub(crate) const TCP_CLOSING: i32 = 11;
pub(crate) const TCP_LISTEN: i32 = 10;

/// The event the primary state program last took on this CPU: how the backup tells
/// whether the primary ran for the event in hand.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Guard {
    sk: u64,
    old: i32,
    new: i32,
}

/// The primary state program's body. The kernel skips a program that is already running
/// on this CPU (per-program recursion guard of raw tracepoints and trampolines), which
/// happens when a softirq changes another socket's state while the primary handles a
/// change in process context (connect, close). A second, identical program attached after
/// it (the backup) catches exactly those events: the primary notes each event it takes
/// (again at its end, so a nested run on a kernel without the guard cannot confuse the
/// outer one), and the backup takes any event that is not the one noted.
/// Kprobes and classic tracepoints have one guard for all BPF programs, so there the pair
/// cannot help; what is missed there is still counted (`Counter::StateGap`, and the
/// kernel's own miss counts that userspace reports).
#[inline(always)]
pub(crate) fn primary(sk: u64, old: i32, new: i32) {
    let this = Guard { sk, old, new };
    let slot = STATE_GUARD.get_ptr_mut(0);
    if let Some(slot) = slot {
        // SAFETY: this CPU's slot, written only by the primary.
        unsafe { *slot = this };
    }
    on_change(sk, old, new);
    if let Some(slot) = slot {
        // SAFETY: as above.
        unsafe { *slot = this };
    }
}

/// The backup state program's body: takes the event only if the primary did not.
#[inline(always)]
pub(crate) fn backup(sk: u64, old: i32, new: i32) {
    let Some(slot) = STATE_GUARD.get_ptr(0) else {
        return;
    };
    // SAFETY: this CPU's slot, a plain struct.
    let last = unsafe { *slot };
    if last.sk == sk && last.old == old && last.new == new {
        return;
    }
    // A primary that ran nested inside this backup's own start may have overwritten the
    // note: an event whose effect is already recorded is such a duplicate.
    match SOCKS.get_ptr(&sk) {
        // SAFETY: a plain struct in a map value.
        Some(info) if i32::from(unsafe { (*info).last_state }) == new => return,
        None if new == TCP_CLOSE => return, // removed at CLOSE by the primary: done
        _ => {}
    }
    count(Counter::Covered);
    on_change(sk, old, new);
}

/// One transition of `sk` from `old` to `new`. Not inlined: a BPF-to-BPF call keeps each
/// entry point small and gives the event builders below their own stack frames.
#[inline(never)]
pub(crate) fn on_change(sk: u64, old: i32, new: i32) {
    // Listening sockets are not connections.
    if old == new || new == TCP_LISTEN || (old == TCP_LISTEN && new == TCP_CLOSE) {
        return;
    }
    let now = now_ns();
    if old == TCP_CLOSE && new == TCP_SYN_SENT {
        let _ = SOCKS.remove(&sk); // an address reused before its CLOSE was seen
        connect::start(sk, now);
        state_event(sk, &socks::owner(sk), old, new, 0);
        return;
    }
    let Some(info) = socks::get_or_track(sk, old, now) else {
        count(Counter::MapError);
        return;
    };
    // SAFETY: `info` points into the map value for `sk`; programs on other CPUs touching
    // the same socket hold its lock (state changes run under it), so there is no race here.
    let info = unsafe { &mut *info };
    if info.last_state != 0 && i32::from(info.last_state) != old {
        count(Counter::StateGap);
    }
    info.last_state = new as u8;

    let mut keep_for_exit_hook = false;
    match (old, new) {
        (TCP_SYN_SENT, TCP_ESTABLISHED) => {
            connect::finish(sk, info, false, now);
        }
        (TCP_SYN_SENT, TCP_CLOSE) => keep_for_exit_hook = !connect::finish(sk, info, true, now),
        (TCP_ESTABLISHED, TCP_FIN_WAIT1) if info.closed_by == CLOSED_BY_UNKNOWN => info.closed_by = CLOSED_BY_LOCAL,
        (TCP_ESTABLISHED, TCP_CLOSE_WAIT) if info.closed_by == CLOSED_BY_UNKNOWN => info.closed_by = CLOSED_BY_REMOTE,
        // Our FIN was acknowledged (`bytes_acked` counts it; see sock::byte_counts).
        (TCP_FIN_WAIT1, TCP_FIN_WAIT2) | (TCP_CLOSING | TCP_LAST_ACK, TCP_CLOSE) => info.fin_acked = 1,
        _ => {}
    }
    if new == TCP_ESTABLISHED {
        info.established_ns = now;
    }
    let in_old = if info.state_since_ns == 0 { 0 } else { now.saturating_sub(info.state_since_ns) };
    state_event(sk, &info.task, old, new, in_old);
    info.state_since_ns = now;

    if new == TCP_CLOSE {
        // A connect that never got through is a connect event, not a closed connection.
        if old != TCP_SYN_SENT && old != TCP_SYN_RECV && close::on_close_state(sk, info, old, now) {
            return; // the close event waits for the socket's destruction
        }
        if !keep_for_exit_hook {
            let _ = SOCKS.remove(&sk);
        }
    }
}

#[inline(never)]
fn state_event(sk: u64, owner: &tracer_common::conn::Task, old: i32, new: i32, in_old_state_ns: u64) {
    if !crate::globals::wants(EventKind::State) {
        return;
    }
    let Ok(endpoints) = sock::endpoints(sk) else {
        count(Counter::ReadError);
        return;
    };
    if let Some(header) = header_if_wanted(EventKind::State, owner, &endpoints) {
        // SAFETY: `e` points at a reserved StateEvent; every field is written.
        send(|e: *mut StateEvent| unsafe {
            (*e).header = header;
            (*e).endpoints = endpoints;
            (*e).in_old_state_ns = in_old_state_ns;
            (*e).old_state = old as u32;
            (*e).new_state = new as u32;
        });
    }
}
