//! Connect events at the end of a handshake, sent by the state hook (any family):
//! - `start`: CLOSE -> SYN_SENT, called from `tcp_v{4,6}_connect` in the connecting task's
//!   own context, so pid/comm/uid taken here are the caller's.
//! - `finish`: SYN_SENT -> ESTABLISHED (softirq: the current task is *not* the owner, so
//!   the owner comes from `SOCKS`) or SYN_SENT -> CLOSE (refused, timed out, ...).
//!
//! A `connect()` that fails before any SYN is the connect hook's own (`crate::connect`).

use tracer_common::{
    close::DIRECTION_ACTIVE,
    connect::{ConnectEvent, CONNECT_FAILED, CONNECT_OK},
    counters::Counter,
    event::EventKind,
};

use crate::{
    emit::{count, current_task, current_tid, task_wanted},
    globals::filter,
    maps::CONNECT_ARGS,
    sock,
    socks::SockInfo,
};

/// CLOSE -> SYN_SENT, in the caller's context: the connection's owner is the current task.
#[inline(always)]
pub(crate) fn start(sk: u64, now: u64) {
    let task = current_task();
    // Either way an entry left from an earlier connection on the same socket address is
    // replaced (and if its CLOSE was never seen, counted: see `socks::put`); a close event
    // still waiting in it goes first.
    if crate::globals::config().count_calls != 0 {
        super::close::send_waiting(sk, false);
    }
    let wanted = task_wanted(&task);
    if !wanted {
        // Marked rather than left out: every later event of the socket is dropped too.
        count(Counter::Filtered);
    }
    let stored = crate::socks::put(sk, DIRECTION_ACTIVE, now, |info| {
        info.task = task;
        info.filtered_out = u8::from(!wanted);
        if wanted {
            info.syn_sent_ns = now;
        }
        info.last_state = tracer_common::kernel::TCP_SYN_SENT as u8;
    });
    if !stored {
        crate::socks::forget(sk);
        count(Counter::MapError);
    }
}

/// SYN_SENT -> ESTABLISHED (`failed == false`) or SYN_SENT -> CLOSE. Returns false when a
/// failure is left for the exit hook to report (it knows the real errno).
#[inline(never)]
pub(crate) fn finish<A: sock::Access>(sk: u64, info: &SockInfo, failed: bool, now: u64) -> bool {
    if info.syn_sent_ns == 0 {
        return true; // not started under tcptrace, or filtered out at start
    }
    let errno = if failed {
        let err = sock::err::<A>(sk).unwrap_or(0);
        // No error on the socket and the connect call still running on this thread: the
        // failure is connect()'s own (e.g. no free local port); the exit hook reports it
        // with the real return value.
        if err == 0 && CONNECT_ARGS.get_ptr(&current_tid()).is_some() {
            return false;
        }
        err as u32
    } else {
        0
    };
    if !crate::globals::wants(EventKind::Connect) {
        return true;
    }
    let latency_ns = now.saturating_sub(info.syn_sent_ns);
    let filter = filter();
    if !filter.connect_matches(failed, latency_ns)
        || !filter.owner_matches(info.task.pid, info.task.uid, &info.task.comm)
    {
        count(Counter::Filtered);
        return true;
    }
    // Written straight into the ring buffer: this runs below `on_change`, and a copy of
    // the event on the stack would not fit the 512 bytes older verifiers allow a chain.
    let Some(mut entry) = crate::maps::EVENTS.reserve::<ConnectEvent>(0) else {
        count(Counter::RingbufFull);
        return true;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at the reserved ConnectEvent; every field is written below before
    // submit, or the entry is discarded.
    unsafe {
        if !crate::emit::endpoints_wanted::<A>(sk, &mut (*e).endpoints) {
            entry.discard(0);
            return true;
        }
        crate::emit::fill_header::<A>(&mut (*e).header, EventKind::Connect, &info.task, now, sk);
        (*e).latency_ns = latency_ns;
        (*e).result = if failed { CONNECT_FAILED } else { CONNECT_OK };
        (*e).errno = errno;
        // Every SYN resent counts in `total_retrans`, and nothing else can have been yet
        // (tcp_done() and the handshake's end leave it as it is).
        let resent = sock::tcp_sock::<A>(sk).and_then(sock::total_retrans::<A>).unwrap_or(0);
        (*e).syns_sent = resent.saturating_add(1);
        (*e).syns_dropped = if crate::globals::wants(EventKind::Drop) {
            u32::from(info.syns_dropped)
        } else {
            tracer_common::connect::SYNS_DROPPED_UNKNOWN
        };
        (*e).syn_drop_reason = info.syn_drop_reason;
        (*e)._pad = 0;
    }
    entry.submit(0);
    true
}
