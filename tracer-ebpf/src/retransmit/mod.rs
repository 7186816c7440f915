//! Retransmit events: one per retransmitted segment (or TSO batch), with the owner looked
//! up in `SOCKS`: retransmissions run in softirq or timer context, never the owner's.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::{counters::Counter, event::EventKind, retransmit::RetransmitEvent};

use crate::{
    emit::{count, header_if_wanted, send},
    sock::{self, Access, Probe},
    socks,
};

/// `sk` retransmitted; `tail_loss_probe` when that was a tail loss probe.
#[inline(always)]
pub(crate) fn on_retransmit<A: Access>(sk: u64, tail_loss_probe: bool) {
    if !crate::globals::wants(EventKind::Retransmit) || !crate::globals::armed() {
        return;
    }
    let Ok(endpoints) = sock::endpoints::<A>(sk) else {
        count(Counter::ReadError);
        return;
    };
    let Some(owner) = socks::owner(sk) else {
        count(Counter::Filtered);
        return;
    };
    if let Some(header) =
        header_if_wanted::<A>(EventKind::Retransmit, &owner, &endpoints, crate::emit::now_ns(), sk)
    {
        let state = sock::state::<A>(sk).unwrap_or(0);
        let total_retrans = sock::tcp_sock::<A>(sk).and_then(sock::total_retrans::<A>).unwrap_or(0);
        // SAFETY: `e` points at a reserved RetransmitEvent; every field is written.
        send(|e: *mut RetransmitEvent| unsafe {
            (*e).header = header;
            (*e).endpoints = endpoints;
            (*e).state = state;
            (*e).tail_loss_probe = u8::from(tail_loss_probe);
            (*e)._pad = [0; 2];
            (*e).total_retrans = total_retrans;
        });
    }
}

/// A listener resent the SYN-ACK of its half-open connection `req` (a request socket: the
/// client's ACK did not come in time, or the client sent its SYN again). Such a
/// connection has no socket, hence no owner, until its handshake ends and it is accepted:
/// the event goes out owner-less (so owner filters drop it), in state SYN_RECV, with the
/// SYN-ACKs resent so far, this one included (what the connection's `total_retrans`
/// starts from once its handshake ends).
#[inline(always)]
pub(crate) fn on_synack_retransmit<A: Access>(req: u64) {
    if !crate::globals::wants(EventKind::Retransmit) || !crate::globals::armed() {
        return;
    }
    let mut endpoints = tracer_common::addr::Endpoints::default();
    if sock::request_endpoints_into::<A>(req, &mut endpoints).is_err() {
        count(Counter::ReadError);
        return;
    }
    if let Some(header) = header_if_wanted::<A>(
        EventKind::Retransmit,
        &socks::UNKNOWN_TASK,
        &endpoints,
        crate::emit::now_ns(),
        req,
    ) {
        let resent_before = sock::request_retransmits::<A>(req).unwrap_or(0);
        // SAFETY: `e` points at a reserved RetransmitEvent; every field is written.
        send(|e: *mut RetransmitEvent| unsafe {
            (*e).header = header;
            (*e).endpoints = endpoints;
            (*e).state = tracer_common::kernel::TCP_SYN_RECV as u8;
            (*e).tail_loss_probe = 0;
            (*e)._pad = [0; 2];
            (*e).total_retrans = u32::from(resent_before) + 1;
        });
    }
}

/// Tail loss probes for the fentry and kprobe families: `tcp_send_loss_probe` sends the
/// probe through `__tcp_retransmit_skb`, which compilers inline into `tcp_retransmit_skb`
/// (Debian's 6.1 does), so no probe on a retransmit function sees it. Instead the probe
/// function's entry notes the socket's retransmit count and its exit reports a probe when
/// the count grew (the probe may also send new data, or nothing: not retransmissions).
#[inline(always)]
pub(crate) fn loss_probe_entry(sk: u64) {
    if let Ok(count) = sock::tcp_sock::<Probe>(sk).and_then(sock::total_retrans::<Probe>) {
        let _ = crate::maps::LOSS_PROBES.insert(&sk, &count, 0);
    }
}

#[inline(always)]
pub(crate) fn loss_probe_exit(sk: u64) {
    let Some(before) = crate::maps::LOSS_PROBES.get_ptr(&sk) else { return };
    // SAFETY: a u32 map value, copied before the delete.
    let before = unsafe { *before };
    let _ = crate::maps::LOSS_PROBES.remove(&sk);
    if sock::tcp_sock::<Probe>(sk)
        .and_then(sock::total_retrans::<Probe>)
        .is_ok_and(|after| after != before)
    {
        on_retransmit::<Probe>(sk, true);
    }
}
