//! TCP state transitions: the logic shared by every hook family. Everything about a
//! connection's life hangs off here: the start and end of a connect, the ESTABLISHED time,
//! who closed first, state events, and the close event.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{
    close::{CLOSED_BY_LOCAL, CLOSED_BY_REMOTE, CLOSED_BY_UNKNOWN, DIRECTION_UNKNOWN},
    counters::Counter,
    event::EventKind,
    state::StateEvent,
};

use crate::{
    close, connect,
    emit::{count, header_if_wanted, now_ns, send},
    maps::SOCKS,
    sock,
    socks::{self, SockInfo},
};

// `TCP_*` states, include/net/tcp_states.h (a stable ABI: also shown by `ss`).
pub(crate) const TCP_ESTABLISHED: i32 = 1;
pub(crate) const TCP_SYN_SENT: i32 = 2;
pub(crate) const TCP_SYN_RECV: i32 = 3;
pub(crate) const TCP_FIN_WAIT1: i32 = 4;
pub(crate) const TCP_CLOSE: i32 = 7;
pub(crate) const TCP_CLOSE_WAIT: i32 = 8;
pub(crate) const TCP_LISTEN: i32 = 10;

/// One transition of `sk` from `old` to `new`.
#[inline(always)]
pub(crate) fn on_change(sk: u64, old: i32, new: i32) {
    // Listening sockets are not connections.
    if old == new || new == TCP_LISTEN || (old == TCP_LISTEN && new == TCP_CLOSE) {
        return;
    }
    let now = now_ns();
    if old == TCP_CLOSE && new == TCP_SYN_SENT {
        connect::start(sk, now);
        state_event(sk, &socks_copy(sk), old, new, 0);
        return;
    }
    let Some(info) = socks::get_or_track(sk, old, now) else {
        return;
    };
    // SAFETY: `info` points into the map value for `sk`; programs on other CPUs touching
    // the same socket hold its lock (state changes run under it), so there is no race here.
    let info = unsafe { &mut *info };

    let mut keep_for_exit_hook = false;
    match (old, new) {
        (TCP_SYN_SENT, TCP_ESTABLISHED) => {
            connect::finish(sk, info, false, now);
        }
        (TCP_SYN_SENT, TCP_CLOSE) => keep_for_exit_hook = !connect::finish(sk, info, true, now),
        (TCP_ESTABLISHED, TCP_FIN_WAIT1) if info.closed_by == CLOSED_BY_UNKNOWN => info.closed_by = CLOSED_BY_LOCAL,
        (TCP_ESTABLISHED, TCP_CLOSE_WAIT) if info.closed_by == CLOSED_BY_UNKNOWN => info.closed_by = CLOSED_BY_REMOTE,
        _ => {}
    }
    if new == TCP_ESTABLISHED {
        info.established_ns = now;
    }
    let in_old = if info.state_since_ns == 0 { 0 } else { now.saturating_sub(info.state_since_ns) };
    state_event(sk, info, old, new, in_old);
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

/// A copy of the entry for `sk`, or an owner-less one.
#[inline(always)]
fn socks_copy(sk: u64) -> SockInfo {
    match SOCKS.get_ptr(&sk) {
        // SAFETY: a plain struct in a map value.
        Some(p) => unsafe { *p },
        None => SockInfo::unknown(DIRECTION_UNKNOWN, 0),
    }
}

#[inline(always)]
fn state_event(sk: u64, info: &SockInfo, old: i32, new: i32, in_old_state_ns: u64) {
    if !crate::globals::wants(EventKind::State) {
        return;
    }
    let Ok(endpoints) = sock::endpoints(sk) else {
        count(Counter::ReadError);
        return;
    };
    if let Some(header) = header_if_wanted(EventKind::State, &info.task, &endpoints) {
        send(&StateEvent { header, endpoints, in_old_state_ns, old_state: old as u32, new_state: new as u32 });
    }
}
