//! Reset events: every RST this host sends or receives, the logic shared by every hook
//! family. Resets go out in softirq (an answer to a segment), from timers, or from the
//! task that closes the socket, and arrive in softirq: the owner is always the
//! connection's, looked up in `SOCKS`, never the current task.
//!
//! A reset sent either answers a segment (`tcp_v{4,6}_send_reset`: the socket it reached,
//! which may be none, a time-wait or a request socket) or is the socket's own doing
//! (`tcp_send_active_reset`: a close with data unread, SO_LINGER zero, a keepalive
//! timeout). An answer takes its ends from that segment's headers, turned round, so that
//! a segment which reached no socket is reported too; the others take the socket's.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{
    addr::Endpoints,
    counters::Counter,
    event::EventKind,
    offsets::OFFSET_ABSENT,
    reset::{
        ResetCount, ResetEvent, ResetKey, EVENTS_PER_CPU_SECOND, REASON_NONE, RESET_RECEIVED,
        RESET_SENT,
    },
};

use crate::{
    emit::{count, header, header_if_wanted, send},
    globals::reset_off,
    maps::RESETS,
    sock::{self, Probe, ReadError},
    socks,
};

/// A reset sent for `sk` (0: no socket), answering segment `skb` (0: the socket's own
/// reset), for the kernel's `reason` (`REASON_NONE` without one).
#[inline(always)]
pub(crate) fn on_sent(sk: u64, skb: u64, reason: u32) {
    on_reset(sk, skb, RESET_SENT, reason);
}

/// A reset received by `sk` (`tcp_reset()`: always a full socket).
#[inline(always)]
pub(crate) fn on_received(sk: u64) {
    on_reset(sk, 0, RESET_RECEIVED, REASON_NONE);
}

/// The reason argument of a hook that has one where the kernel has it (`index`: its
/// position), read through `arg`: a frozen constant to the verifier, so on a kernel
/// without it the read is dead code.
#[inline(always)]
pub(crate) fn reason(arg: impl FnOnce() -> u32) -> u32 {
    if reset_off::reason_arg() == OFFSET_ABSENT {
        REASON_NONE
    } else {
        arg()
    }
}

/// Every read goes through `bpf_probe_read_kernel`: the socket may be a time-wait or
/// request socket, or none, and resets are rare enough for the helper's cost.
#[inline(never)]
fn on_reset(sk: u64, skb: u64, direction: u8, reason: u32) {
    if !crate::globals::armed() {
        return;
    }
    let wanted = crate::globals::wants(EventKind::Reset);
    // The kernel's reason for a socket's own reset, for its close event (see
    // `Config::close_reasons`): noted in the entry when the CLOSE is still to come, else
    // (the CLOSE just went) sent as an event for user space to join to the close.
    let mut for_close = false;
    if direction == RESET_SENT
        && sk != 0
        && reason != REASON_NONE
        && crate::globals::config().close_reasons != 0
    {
        for_close = !socks::note_reset_reason(sk, reason);
    }
    if !wanted && !for_close {
        return;
    }
    let mut endpoints = Endpoints::default();
    let read = if skb != 0 {
        answer_endpoints_into(skb, &mut endpoints)
    } else if sk != 0 {
        sock::endpoints_into::<Probe>(sk, &mut endpoints)
    } else {
        Err(ReadError)
    };
    if read.is_err() {
        count(Counter::ReadError);
        return;
    }
    // A socket's own reset comes right after its CLOSE, its entry just gone.
    let owner = if sk == 0 { Some(socks::UNKNOWN_TASK) } else { socks::owner_even_closed(sk) };
    let Some(owner) = owner else {
        if wanted {
            count(Counter::Filtered); // its owner failed the filters
        }
        return;
    };
    let now = crate::emit::now_ns();
    let header = if wanted {
        header_if_wanted::<Probe>(EventKind::Reset, &owner, &endpoints, now, sk)
    } else if owner.pid != 0 {
        // Only for the join: its close passed the filters, and had an owner tcptrace saw.
        Some(header::<Probe>(EventKind::Reset, &owner, now, sk))
    } else {
        None
    };
    let Some(header) = header else {
        return;
    };
    if !within_budget(now) {
        // A storm: counted in `RESETS` instead, if asked for; a reset only for the join is
        // left out, and its close keeps the reason told from the socket.
        if wanted {
            count_in_storm(sk, &endpoints, direction, reason, &owner);
        }
        return;
    }
    let state = if sk == 0 { 0 } else { sock::state::<Probe>(sk).unwrap_or(0) };
    // SAFETY: `e` points at a reserved ResetEvent; every field is written.
    send(|e: *mut ResetEvent| unsafe {
        (*e).header = header;
        (*e).endpoints = endpoints;
        (*e).reason = reason;
        (*e).direction = direction;
        (*e).state = state;
        (*e).has_socket = u8::from(sk != 0);
        (*e)._pad = 0;
    });
}

/// The ends of the connection a reset answering `skb` belongs to: the segment's
/// destination is our end, its source the remote one.
#[inline(always)]
fn answer_endpoints_into(skb: u64, out: &mut Endpoints) -> Result<(), ReadError> {
    crate::skb::segment_into(skb, out)?;
    crate::skb::turn_round(out);
    Ok(())
}

/// Whether this CPU may send one more reset event in the current second; counts it if so.
/// Per-CPU, so plain loads and stores: a program that interrupts this one between the two
/// can only make the budget a reset looser, and every reset is counted either way.
#[inline(always)]
fn within_budget(now: u64) -> bool {
    let Some(budget) = crate::maps::RESET_BUDGET.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: this CPU's slot of a per-CPU array.
    unsafe {
        if now.wrapping_sub((*budget).second_began_ns) >= 1_000_000_000 {
            (*budget).second_began_ns = now;
            (*budget).sent = 0;
        }
        if (*budget).sent >= EVENTS_PER_CPU_SECOND {
            return false;
        }
        (*budget).sent += 1;
    }
    true
}

/// Counts a reset past the budget in `RESETS` under its key, keeping what it showed.
/// Not inlined: its key and value get a frame of their own (and its own clock read: a BPF
/// call takes at most five arguments).
#[inline(never)]
fn count_in_storm(
    sk: u64,
    endpoints: &Endpoints,
    direction: u8,
    reason: u32,
    owner: &tracer_common::conn::Task,
) {
    let key = ResetKey {
        local: endpoints.saddr,
        remote: endpoints.daddr,
        reason,
        family: endpoints.family,
        direction,
        has_socket: u8::from(sk != 0),
    };
    // This reset, as the key's first or its latest.
    let this = ResetCount {
        count: 1,
        last_ns: crate::emit::now_ns(),
        task: *owner,
        netns: if sk == 0 { 0 } else { sock::netns::<Probe>(sk) },
        local_port: endpoints.sport,
        remote_port: endpoints.dport,
        state: if sk == 0 { 0 } else { sock::state::<Probe>(sk).unwrap_or(0) },
        _pad: [0; 7],
    };
    if let Some(counted) = RESETS.get_ptr_mut(&key) {
        add(counted, &this);
        return;
    }
    // BPF_NOEXIST: another CPU may have made the key meanwhile; then add to its count.
    if RESETS.insert(&key, &this, 1).is_err() {
        match RESETS.get_ptr_mut(&key) {
            Some(counted) => add(counted, &this),
            None => count(Counter::MapError), // the table is full: this reset is lost
        }
    }
}

/// One more reset on a counted key: `this` becomes its latest.
#[inline(always)]
fn add(counted: *mut ResetCount, this: &ResetCount) {
    // SAFETY: a map value; `count` is a valid, aligned u64 added to atomically (BPF_ATOMIC
    // | BPF_ADD, as `emit::count`); the other fields are the latest reset's, and a race
    // between two CPUs can mix two resets' fields, each the kernel's.
    unsafe {
        let slot = &raw mut (*counted).count;
        core::arch::asm!("lock *(u64 *)({slot} + 0) += {one}", slot = in(reg) slot, one = in(reg) 1u64, options(nostack));
        (*counted).last_ns = this.last_ns;
        (*counted).task = this.task;
        (*counted).netns = this.netns;
        (*counted).local_port = this.local_port;
        (*counted).remote_port = this.remote_port;
        (*counted).state = this.state;
    }
}
