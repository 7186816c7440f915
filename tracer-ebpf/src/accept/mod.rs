//! Accept events: passive opens, reported in the accepting task's own context, which is
//! also when a passive connection gets its owner.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{
    accept::AcceptEvent,
    close::{DIRECTION_ACTIVE, DIRECTION_PASSIVE},
    counters::Counter,
    event::EventKind,
};

use crate::{
    emit::{count, current_task, header_if_wanted, send, task_wanted},
    maps::SOCKS,
    sock,
};

const IPPROTO_TCP: u16 = tracer_common::kernel::IPPROTO_TCP as u16;
const TCP_CLOSE: u8 = tracer_common::kernel::TCP_CLOSE as u8;

/// `sk` was just accepted by the current task.
#[inline(always)]
pub(crate) fn on_accept(sk: u64) {
    if !crate::globals::armed() {
        return;
    }
    if sk == 0 || sock::protocol::<sock::Probe>(sk) != Ok(IPPROTO_TCP) {
        // A failed accept (fexit), or not TCP: inet_csk_accept also serves DCCP, and
        // security_sock_graft (kprobe) every family's accept.
        return;
    }
    let task = current_task();
    let keep = task_wanted(&task);
    // The handshake may complete on another CPU at the same time (the child is queued for
    // accept before its ESTABLISHED transition): whoever inserts first, the owner lands in
    // the one entry. A child reset while it waited in the queue is already CLOSE (its
    // entry gone with it): a new entry would never be removed.
    // (A match, not Option combinators: their nested Option made LLVM store an undefined
    // register, which the verifier refuses.)
    let entry = match SOCKS.get_ptr_mut(&sk) {
        // SAFETY: map value of `sk`.
        Some(found)
            if unsafe {
                (*found).direction == DIRECTION_ACTIVE
                    || ((*found).direction == DIRECTION_PASSIVE && (*found).task.pid != 0)
            } =>
        {
            // An active socket's entry on a child, or one with an owner already (a
            // previous accepted child's): a freed socket's, whose CLOSE was never seen (see
            // `state::on_change`, which finds the same when the handshake ends first).
            // Cleared, and what it owed counted, before the owner goes in.
            // SAFETY: as above.
            crate::socks::reclaim_for_child(unsafe { &mut *found }, 0);
            Some(found)
        }
        Some(found) => Some(found),
        None if sock::state::<sock::Probe>(sk) != Ok(TCP_CLOSE) => {
            crate::socks::insert_new(sk, DIRECTION_PASSIVE, 0, |_| {})
        }
        None => None,
    };
    if let Some(info) = entry {
        // SAFETY: map value of `sk`; the acceptor owns the socket now.
        unsafe {
            (*info).task = task;
            (*info).direction = DIRECTION_PASSIVE;
            // An acceptor the filters drop (its cgroup included) drops the whole connection.
            (*info).filtered_out = u8::from(!keep);
        }
    }
    if !keep {
        count(Counter::Filtered);
        return;
    }
    let Ok(endpoints) = sock::endpoints::<sock::Probe>(sk) else {
        count(Counter::ReadError);
        return;
    };
    if let Some(header) = header_if_wanted::<sock::Probe>(
        EventKind::Accept,
        &task,
        &endpoints,
        crate::emit::now_ns(),
        sk,
    ) {
        // SAFETY: `e` points at a reserved AcceptEvent; every field is written.
        send(|e: *mut AcceptEvent| unsafe {
            (*e).header = header;
            (*e).endpoints = endpoints;
        });
    }
}
