//! Retransmit events: one per retransmitted segment (or TSO batch), with the owner looked
//! up in `SOCKS`: retransmissions run in softirq or timer context, never the owner's.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{counters::Counter, event::EventKind, retransmit::RetransmitEvent};

use crate::{
    emit::{count, header_if_wanted, send},
    sock, socks,
};

#[inline(always)]
pub(crate) fn on_retransmit(sk: u64) {
    if !crate::globals::wants(EventKind::Retransmit) {
        return;
    }
    let Ok(endpoints) = sock::endpoints(sk) else {
        count(Counter::ReadError);
        return;
    };
    let owner = socks::owner(sk);
    if let Some(header) = header_if_wanted(EventKind::Retransmit, &owner, &endpoints) {
        let state = u32::from(sock::state(sk).unwrap_or(0));
        let total_retrans = sock::total_retrans(sk).unwrap_or(0);
        // SAFETY: `e` points at a reserved RetransmitEvent; every field is written.
        send(|e: *mut RetransmitEvent| unsafe {
            (*e).header = header;
            (*e).endpoints = endpoints;
            (*e).state = state;
            (*e).total_retrans = total_retrans;
        });
    }
}
