//! kprobe family for the drop hook: the functions of `fentry.rs`, arguments from the
//! registers.

use aya_ebpf::{macros::kprobe, programs::ProbeContext};

#[kprobe]
pub(crate) fn tt_drop_kp(ctx: ProbeContext) -> u32 {
    if let Some(skb) = ctx.arg::<u64>(0) {
        super::on_drop(skb, ctx.arg::<u64>(1).unwrap_or(0) as u32, 0);
    }
    0
}

#[kprobe]
pub(crate) fn tt_drop_kp3(ctx: ProbeContext) -> u32 {
    if let Some(skb) = ctx.arg::<u64>(1) {
        super::on_drop(skb, ctx.arg::<u64>(2).unwrap_or(0) as u32, 0);
    }
    0
}
