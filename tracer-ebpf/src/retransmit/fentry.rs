//! fexit family for the retransmit hook.
//!
//! `int __tcp_retransmit_skb(struct sock *sk, struct sk_buff *skb, int segs)`: every
//! retransmission goes through it, tail loss probes included (`tcp_retransmit_skb` misses
//! those). https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_output.c#L3274
//! Context: softirq (timers, ACK processing) or the socket owner's backlog processing.

use aya_ebpf::{macros::fexit, programs::FExitContext};

#[fexit(function = "__tcp_retransmit_skb")]
pub(crate) fn tt_rtx_fexit(ctx: FExitContext) -> u32 {
    // Only retransmissions that went out, as the tracepoint reports them.
    if ctx.arg::<i32>(3) == 0 {
        super::on_retransmit(ctx.arg(0));
    }
    0
}
