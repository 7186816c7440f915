//! Dropped TCP segments, the logic shared by every hook family: each one freed as a drop
//! (`kfree_skb` with a reason, not `consume_skb`) is counted in `DROPS` under its
//! connection, direction and reason; no event goes through the ring buffer. User space
//! reads the counts once a second and reports what grew (tracer/src/drops.rs), so a storm
//! costs one map update a segment and one line a key a second, and the counts are exact.
//!
//! Drops run in any context (softirq above all): the owner is the socket's, from
//! `SOCKS` through `skb->sk`, never the current task.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{
    counters::Counter,
    drop::{DropCount, DropKey, REASON_NONE},
    event::EventKind,
    kernel::TCP_SYN_SENT,
    offsets::OFFSET_ABSENT,
};

use crate::{
    emit::count,
    globals::reset_off,
    maps::DROPS,
    sock::{self, Probe},
    socks,
};

/// The reason argument where the kernel has one (a frozen constant to the verifier: on a
/// kernel without it the read is dead code).
#[inline(always)]
pub(crate) fn reason(arg: impl FnOnce() -> u32) -> u32 {
    if reset_off::drop_reason_arg() == OFFSET_ABSENT {
        REASON_NONE
    } else {
        arg()
    }
}

/// `skb` is being freed as a drop, for `reason`, at `location` (0 where unknown).
#[inline(never)]
pub(crate) fn on_drop(skb: u64, reason: u32, location: u64) {
    if !crate::globals::wants(EventKind::Drop) || !crate::globals::armed() {
        return;
    }
    let mut key = DropKey {
        endpoints: tracer_common::addr::Endpoints::default(),
        reason,
        outgoing: 0,
        _pad: [0; 3],
    };
    if crate::skb::segment_into(skb, &mut key.endpoints).is_err() {
        return; // not TCP (or not readable as such): not ours, and not counted
    }
    let mut sk = crate::skb::sock(skb);
    // Sent when it goes to the socket's remote port (kept in every kind of socket, and
    // after CLOSE, where the local one is released); else received: our end is where it
    // was going.
    let remote_port = if sk == 0 { Err(sock::ReadError) } else { sock::remote_port::<Probe>(sk) };
    if remote_port == Ok(key.endpoints.dport) && key.endpoints.sport != key.endpoints.dport {
        key.outgoing = 1;
    } else {
        crate::skb::turn_round(&mut key.endpoints);
    }
    if key.outgoing != 0 && sock::state::<Probe>(sk) == Ok(TCP_SYN_SENT as u8) {
        socks::note_syn_drop(sk, reason); // for the connect event
    }
    if sk == 0 {
        // Dropped before its socket was looked up: an established connection's, found by
        // its ends in the namespace of the device it came in on.
        sk = socks::by_ends(&key.endpoints, crate::skb::netns(skb));
    }
    let Some(owner) = (if sk == 0 { Some(socks::UNKNOWN_TASK) } else { socks::owner(sk) }) else {
        count(Counter::Filtered); // its owner failed the filters
        return;
    };
    let filter = crate::globals::filter();
    if !filter.owner_matches(owner.pid, owner.uid, &owner.comm)
        || !crate::emit::socket_matches::<Probe>(sk, &key.endpoints)
    {
        count(Counter::Filtered);
        return;
    }
    let now = crate::emit::now_ns();
    if let Some(counted) = DROPS.get_ptr_mut(&key) {
        add(counted, now, location);
        return;
    }
    let fresh = DropCount {
        count: 1,
        last_ns: now,
        location,
        task: owner,
        netns: if sk == 0 { 0 } else { sock::netns::<Probe>(sk) },
        state: if sk == 0 { 0 } else { sock::state::<Probe>(sk).unwrap_or(0) },
        has_socket: u8::from(sk != 0),
        _pad: [0; 2],
    };
    // BPF_NOEXIST: another CPU may have made the key meanwhile; then add to its count.
    if DROPS.insert(&key, &fresh, 1).is_err() {
        match DROPS.get_ptr_mut(&key) {
            Some(counted) => add(counted, now, location),
            None => count(Counter::MapError), // the table is full: this drop is lost
        }
    }
}

/// One more drop on a counted key.
#[inline(always)]
fn add(counted: *mut DropCount, now: u64, location: u64) {
    // SAFETY: a map value; `count` is a valid, aligned u64 added to atomically (BPF_ATOMIC
    // | BPF_ADD, as `emit::count`); the other fields are the last drop's, and a race
    // between two CPUs leaves one of them, either right.
    unsafe {
        let slot = &raw mut (*counted).count;
        core::arch::asm!("lock *(u64 *)({slot} + 0) += {one}", slot = in(reg) slot, one = in(reg) 1u64, options(nostack));
        (*counted).last_ns = now;
        (*counted).location = location;
    }
}
