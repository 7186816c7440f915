//! Carrying a kprobe'd function's `struct sock *` argument to its kretprobe.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id};

use tracer_common::counters::Counter;

use crate::{
    emit::count,
    maps::{CALL_ARGS, SOCKS},
};

/// Which function's call: each has its own entry per thread, because one can run inside
/// another on the same thread (a retransmit timer's softirq interrupting `tcp_sendmsg`
/// runs as the interrupted thread; `release_sock` runs deferred timer work inside the
/// call), and a shared entry would be overwritten, then taken by the wrong return.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    Send = 1,
    Recv = 2,
    Retransmit = 3,
    LossProbe = 4,
    /// `tcp_rtx_synack`: its argument is a request socket, never in `SOCKS`.
    SynAck = 5,
}

/// The thread's id; in the idle task (tid 0 on every CPU, softirq work) the CPU instead,
/// which cannot change under a softirq. The call's kind in bits 48-55.
#[inline(always)]
fn key(call: Call) -> u64 {
    let tid = bpf_get_current_pid_tgid() & 0xffff_ffff;
    let base = if tid == 0 {
        // SAFETY: no preconditions.
        (1 << 63) | u64::from(unsafe { bpf_get_smp_processor_id() })
    } else {
        tid
    };
    base | (call as u64) << 48
}

/// At a call's entry. A key still there from this thread's previous call of the same
/// function means that call's return was never seen (the kretprobe had no instance left
/// for it, or its run was skipped), or a nested call of the same function on this thread
/// took its key; either way what that return would have counted is lost:
/// counted as `Counter::ReturnUnseen` when that call was on a connection tcptrace reports,
/// then replaced. Only a thread that calls again shows it: a missed last call of a thread,
/// or one found after its connection was closed, goes uncounted (docs/accuracy.md says so).
#[inline(always)]
pub(crate) fn save(call: Call, sk: u64) {
    let k = key(call);
    match CALL_ARGS.get_ptr_mut(&k) {
        Some(left) => {
            // SAFETY: a u64 map value of this thread's own key.
            let missed_sk = unsafe { core::ptr::replace(left, sk) };
            if reported(call, missed_sk) {
                count(Counter::ReturnUnseen);
            }
        }
        None => {
            let _ = CALL_ARGS.insert(&k, &sk, 0);
        }
    }
}

/// Whether events of `sk` are reported: tracked, its owner wanted, its ends too. A
/// request socket (`Call::SynAck`) is never tracked: its events are owner-less, so they
/// are wanted unless an owner filter is set.
#[inline(always)]
fn reported(call: Call, sk: u64) -> bool {
    let filter = crate::globals::filter();
    let wanted = match call {
        Call::SynAck => !filter.has_owner_filter(),
        // SAFETY: a plain struct in a map value.
        _ => SOCKS.get_ptr(&sk).is_some_and(|info| unsafe { (*info).filtered_out == 0 }),
    };
    if !wanted || !filter.has_endpoint_rules() {
        return wanted;
    }
    let mut ep = tracer_common::addr::Endpoints::default();
    let read = match call {
        Call::SynAck => crate::sock::request_endpoints_into::<crate::sock::Probe>(sk, &mut ep),
        _ => crate::sock::endpoints_into::<crate::sock::Probe>(sk, &mut ep),
    };
    read.is_ok() && crate::emit::socket_matches::<crate::sock::Probe>(sk, &ep)
}

#[inline(always)]
pub(crate) fn take(call: Call) -> Option<u64> {
    let k = key(call);
    // SAFETY: a u64 map value.
    let sk = unsafe { *CALL_ARGS.get_ptr(&k)? };
    let _ = CALL_ARGS.remove(&k);
    Some(sk)
}
