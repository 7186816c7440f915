//! Carrying a kprobe'd function's `struct sock *` argument to its kretprobe.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id};

use crate::maps::CALL_ARGS;

/// The thread's id; in the idle task (tid 0 on every CPU, softirq work) the CPU instead,
/// which cannot change under a softirq.
#[inline(always)]
fn key() -> u64 {
    let tid = bpf_get_current_pid_tgid() & 0xffff_ffff;
    if tid == 0 {
        // SAFETY: no preconditions.
        (1 << 63) | u64::from(unsafe { bpf_get_smp_processor_id() })
    } else {
        tid
    }
}

#[inline(always)]
pub(crate) fn save(sk: u64) {
    let _ = CALL_ARGS.insert(&key(), &sk, 0);
}

#[inline(always)]
pub(crate) fn take() -> Option<u64> {
    let k = key();
    // SAFETY: a u64 map value.
    let sk = unsafe { *CALL_ARGS.get_ptr(&k)? };
    let _ = CALL_ARGS.remove(&k);
    Some(sk)
}
