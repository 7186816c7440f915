//! kprobe family for the destroy hook: the same function as `fentry.rs`.

use aya_ebpf::{macros::kprobe, programs::ProbeContext};

#[kprobe]
pub(crate) fn tt_dstr_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        super::destroy(sk);
    }
    0
}
