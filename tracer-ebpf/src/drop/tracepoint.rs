//! Tracepoint family for the drop hook: `skb:kfree_skb`, by its arguments.
//! `TP_PROTO(struct sk_buff *skb, void *location)`, `enum skb_drop_reason reason` third
//! from Linux 5.17 (and `struct sock *rx_sk` fourth from 6.12, not needed here).
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/skb.h#L24

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};

#[btf_tracepoint(function = "kfree_skb")]
pub(crate) fn tt_drop_btf(ctx: BtfTracePointContext) -> u32 {
    super::on_drop(ctx.arg(0), super::reason(|| ctx.arg(2)), ctx.arg(1));
    0
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub(crate) fn tt_drop_rtp(ctx: RawTracePointContext) -> u32 {
    super::on_drop(ctx.arg(0), super::reason(|| ctx.arg::<u64>(2) as u32), ctx.arg(1));
    0
}
