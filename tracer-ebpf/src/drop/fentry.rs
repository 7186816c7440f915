//! fentry family for the drop hook: the function behind `skb:kfree_skb`.
//! - Linux 5.17 to 6.9: `void kfree_skb_reason(struct sk_buff *skb, enum skb_drop_reason
//!   reason)` (https://github.com/torvalds/linux/blob/v6.1/net/core/skbuff.c#L770);
//! - Linux 6.10 on: `void sk_skb_reason_drop(struct sock *sk, struct sk_buff *skb, enum
//!   skb_drop_reason reason)`.
//!
//! The loader attaches the one this kernel has. Neither says where the drop was made (the
//! tracepoint's `location`).

use aya_ebpf::{macros::fentry, programs::FEntryContext};

#[fentry(function = "kfree_skb_reason")]
pub(crate) fn tt_drop_fent(ctx: FEntryContext) -> u32 {
    super::on_drop(ctx.arg(0), ctx.arg(1), 0);
    0
}

#[fentry(function = "sk_skb_reason_drop")]
pub(crate) fn tt_drop_fent3(ctx: FEntryContext) -> u32 {
    super::on_drop(ctx.arg(1), ctx.arg(2), 0);
    0
}
