//! Carrying a kprobe'd function's `struct sock *` argument to its kretprobe.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id};

use tracer_common::counters::Counter;

use crate::{emit::count, maps::CALL_ARGS};

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
/// `-EEXIST`: the key is there.
const EEXIST: i64 = -17;

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
/// function means that call's return was never seen: counted (`Counter::ReturnUnseen`),
/// then replaced. (Only a thread that calls again shows it; a last call that returned
/// nothing loses nothing.)
#[inline(always)]
pub(crate) fn save(call: Call, sk: u64) {
    let k = key(call);
    if let Err(err) = CALL_ARGS.insert(&k, &sk, BPF_NOEXIST) {
        if i64::from(err) == EEXIST && CALL_ARGS.insert(&k, &sk, 0).is_ok() {
            count(Counter::ReturnUnseen);
        }
    }
}

#[inline(always)]
pub(crate) fn take(call: Call) -> Option<u64> {
    let k = key(call);
    // SAFETY: a u64 map value.
    let sk = unsafe { *CALL_ARGS.get_ptr(&k)? };
    let _ = CALL_ARGS.remove(&k);
    Some(sk)
}
