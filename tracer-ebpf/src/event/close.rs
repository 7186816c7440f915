//! Close events: one per connection, emitted by the state hook when it reaches CLOSE (the
//! moment the connection really ends: after the last FIN is acked or a reset), so the
//! socket's byte counts are final. With per-call counting the application may still read
//! what arrived before CLOSE, so the event waits for the socket's destruction instead
//! (`destroy`, called by the bytes hook's destroy programs), when no call can touch it any more.

use tracer_common::{
    close::{
        CloseEvent, BYTES_FROM_CALLS, BYTES_FROM_SOCKET, CLOSED_BY_LOCAL, CLOSED_BY_REMOTE,
        CLOSED_BY_UNKNOWN,
    },
    counters::Counter,
    event::EventKind,
};

use crate::{
    emit::count,
    globals::config,
    maps::EVENTS,
    sock::{self, Access},
    socks::SockInfo,
};

use tracer_common::kernel::{
    TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK,
};
// errno values a reset from the peer leaves on the socket (tcp_reset()).
use tracer_common::kernel::{ECONNRESET, EPIPE};

/// The state hook saw `sk` reach CLOSE from `old`. Returns true when the entry must stay
/// for `destroy` to emit the event.
#[inline(always)]
pub(crate) fn on_close_state<A: Access>(sk: u64, info: &mut SockInfo, old: i32, now: u64) -> bool {
    info.closed_by = closed_by::<A>(sk, old);
    info.ending.old_state = old as u8;
    // Our FIN was acknowledged (`bytes_acked` counts it; see sock::byte_counts): FIN_WAIT2
    // is entered on that ack; CLOSING and LAST_ACK are left on it, unless a reset or a
    // timeout ended them first, and those leave their error on the socket (tcp_reset(),
    // tcp_write_err(), tcp_abort()) before the CLOSE this runs in.
    info.fin_acked = u8::from(match old {
        TCP_FIN_WAIT2 => true,
        TCP_CLOSING | TCP_LAST_ACK => sock::err::<A>(sk) == Ok(0),
        _ => false,
    });
    // Which figure: by default the socket's own counters (exact, free, and they see
    // sendfile/splice too); with per-call counting, the sum of what tcp_sendmsg accepted
    // and tcp_recvmsg returned, for sockets tcptrace saw from their start, and for every
    // socket in the live view, whose open rows showed the sums since it started.
    let config = config();
    if config.count_calls != 0 && (info.established_ns != 0 || config.live != 0) {
        info.closed_ns = now;
        // tcp_disconnect() (an abortive close, connect(AF_UNSPEC)) clears the remote end,
        // the RTT and the retransmit count right after this CLOSE: kept for `destroy`.
        if config.live != 0 {
            // Until its destruction the live view shows it: not if the filters drop it.
            if !crate::socks::live_ends_wanted::<A>(sk, info) {
                return true;
            }
        } else if sock::endpoints_into::<A>(sk, &mut info.endpoints).is_err() {
            info.endpoints.family = 0; // read again at destroy
        }
        let tp = sock::tcp_sock::<A>(sk);
        info.total_retrans = tp.and_then(sock::total_retrans::<A>).unwrap_or(0);
        info.srtt_us = tp.and_then(sock::srtt_us::<A>).unwrap_or(0);
        capture_ending::<A>(sk, info);
        return true;
    }
    // Only when close events are wanted: the ending's reads cost every connection.
    if crate::globals::wants(EventKind::Close) {
        capture_ending::<A>(sk, info);
        emit::<A>(sk, info, now, false);
    }
    false
}

/// How the connection ended, read now (at CLOSE: see `tracer_common::close::Ending`) into
/// its entry, for the close event to copy. Not inlined: its reads get a frame of their own
/// beside the event's, not under it.
#[inline(never)]
fn capture_ending<A: Access>(sk: u64, info: &mut SockInfo) {
    match sock::tcp_sock::<A>(sk) {
        Ok(tp) => sock::ending_into::<A>(sk, tp, info.fin_acked, &mut info.ending),
        // Not a TCP socket to the kernel: the close event's own reads fail, and count it.
        Err(_) => info.ending.flags = 0,
    }
}

/// The socket is being destroyed (`tcp_v4_destroy_sock`, also for IPv6): its entry goes,
/// and a close event waiting in it (per-call counting) is sent.
#[inline(always)]
pub(crate) fn destroy(sk: u64) {
    if !crate::globals::armed() {
        return;
    }
    send_waiting(sk, true);
}

/// Sends a close event waiting in `sk`'s entry for the socket's destruction (per-call
/// counting), and forgets the entry: when `destroyed`, or when the socket connects again
/// (after `connect(AF_UNSPEC)`; then no call can add to the old connection's counts any
/// more, and an entry without a waiting close is left for the new connection to replace).
/// Not inlined: it runs below `on_change` (from `connect::start`), so the event is sent
/// from the entry in place, before the delete: a copy of the entry on the stack would
/// take that chain past the 512 bytes the verifier allows.
#[inline(never)]
pub(crate) fn send_waiting(sk: u64, destroyed: bool) {
    let Some(info) = crate::maps::SOCKS.get_ptr(&sk) else {
        return;
    };
    // SAFETY: a map value, valid until the delete below; nothing else writes it meanwhile
    // (state changes and the socket's destruction run under its lock).
    let info = unsafe { &*info };
    let closed_ns = info.closed_ns;
    if closed_ns != 0 {
        emit::<sock::Probe>(sk, info, closed_ns, true);
    }
    if destroyed || closed_ns != 0 {
        crate::socks::forget(sk);
    }
}

/// Which side started the close, from the state the socket leaves for CLOSE: a local
/// close passes through FIN_WAIT1 (then FIN_WAIT2 or CLOSING), a remote one through
/// CLOSE_WAIT (then LAST_ACK). Read here rather than tracked along the way, so the states
/// in between need no work when nobody asked for state events.
#[inline(always)]
fn closed_by<A: Access>(sk: u64, old: i32) -> u8 {
    match old {
        TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSING => CLOSED_BY_LOCAL,
        TCP_CLOSE_WAIT | TCP_LAST_ACK => CLOSED_BY_REMOTE,
        // Straight from ESTABLISHED to CLOSE is a reset: received if the kernel left the
        // peer's reset error on the socket, sent by us otherwise.
        TCP_ESTABLISHED => match sock::err::<A>(sk) {
            Ok(ECONNRESET | EPIPE) => CLOSED_BY_REMOTE,
            _ => CLOSED_BY_LOCAL,
        },
        _ => CLOSED_BY_UNKNOWN,
    }
}

/// Writes the close event straight into the ring buffer: this runs at the end of the
/// deepest call chain (state hook -> `on_change` -> here), so it keeps its stack small.
#[inline(never)]
fn emit<A: Access>(sk: u64, info: &SockInfo, closed_ns: u64, by_calls: bool) {
    if !crate::globals::wants(EventKind::Close) {
        return;
    }
    let filter = crate::globals::filter();
    if !filter.owner_matches(info.task.pid, info.task.uid, &info.task.comm) {
        count(Counter::Filtered);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<CloseEvent>(0) else {
        count(Counter::RingbufFull);
        return;
    };
    let e = entry.as_mut_ptr();
    let tp = sock::tcp_sock::<A>(sk);
    // SAFETY: `e` points at the reserved CloseEvent; every field is written below before
    // submit, or the entry is discarded.
    unsafe {
        // Delayed to destroy: the socket as it was at CLOSE (see `on_close_state`).
        let kept = by_calls && info.endpoints.family != 0;
        if kept {
            (*e).endpoints = info.endpoints;
            if !crate::emit::socket_matches::<A>(sk, &info.endpoints) {
                entry.discard(0);
                count(Counter::Filtered);
                return;
            }
        } else if !crate::emit::endpoints_wanted::<A>(sk, &mut (*e).endpoints) {
            entry.discard(0);
            return;
        }
        // Which figure: by default the socket's own counters (exact, free, and they see
        // sendfile/splice too); with per-call counting, the sum of what tcp_sendmsg
        // accepted and tcp_recvmsg returned, for sockets tcptrace saw from their start.
        if by_calls {
            (*e).bytes_sent = info.sent_bytes;
            (*e).bytes_received = info.received_bytes;
            (*e).bytes_source = BYTES_FROM_CALLS;
        } else if let Ok((sent, received)) =
            tp.and_then(|tp| sock::byte_counts::<A>(sk, tp, info.direction, info.fin_acked))
        {
            (*e).bytes_sent = sent;
            (*e).bytes_received = received;
            (*e).bytes_source = BYTES_FROM_SOCKET;
        } else {
            entry.discard(0);
            count(Counter::ReadError);
            return;
        }
        // The moment of CLOSE, except for a close event delayed to the socket's destruction.
        let at_ns = if by_calls { crate::emit::now_ns() } else { closed_ns };
        crate::emit::fill_header::<A>(&mut (*e).header, EventKind::Close, &info.task, at_ns, sk);
        (*e).lifetime_ns = if info.established_ns == 0 {
            0
        } else {
            closed_ns.saturating_sub(info.established_ns)
        };
        if kept {
            (*e).total_retrans = info.total_retrans;
            (*e).srtt_us = info.srtt_us;
        } else {
            (*e).total_retrans = tp.and_then(sock::total_retrans::<A>).unwrap_or(0);
            (*e).srtt_us = tp.and_then(sock::srtt_us::<A>).unwrap_or(0);
        }
        // How it ended, as read at CLOSE (`capture_ending`).
        (*e).ending = info.ending;
        (*e).direction = info.direction;
        (*e).closed_by = info.closed_by;
        crate::mem::zero(&raw mut (*e)._pad);
    }
    entry.submit(0);
}
