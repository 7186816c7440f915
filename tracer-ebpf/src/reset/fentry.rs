//! fentry family for the reset hook.
//!
//! Resets sent: `void tcp_v4_send_reset(const struct sock *sk, struct sk_buff *skb)` and
//! its IPv6 twin answer a segment (softirq; `sk` may be NULL, a time-wait or a request
//! socket); `void tcp_send_active_reset(struct sock *sk, gfp_t priority)` is the socket's
//! own (the closing task, or a timer). Linux 6.10 added `enum sk_rst_reason reason` as
//! the third argument of all three.
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_ipv4.c#L656
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_output.c#L3462
//! Resets received: `void tcp_reset(struct sock *sk, struct sk_buff *skb)`, softirq or
//! the owner's backlog processing.
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_input.c#L4314

use aya_ebpf::{macros::fentry, programs::FEntryContext};

#[fentry(function = "tcp_v4_send_reset")]
pub(crate) fn tt_rst_v4_fent(ctx: FEntryContext) -> u32 {
    super::on_sent(ctx.arg(0), ctx.arg(1), super::reason(|| ctx.arg(2)));
    0
}

#[fentry(function = "tcp_v6_send_reset")]
pub(crate) fn tt_rst_v6_fent(ctx: FEntryContext) -> u32 {
    super::on_sent(ctx.arg(0), ctx.arg(1), super::reason(|| ctx.arg(2)));
    0
}

#[fentry(function = "tcp_send_active_reset")]
pub(crate) fn tt_rst_act_fent(ctx: FEntryContext) -> u32 {
    super::on_sent(ctx.arg(0), 0, super::reason(|| ctx.arg(2)));
    0
}

#[fentry(function = "tcp_reset")]
pub(crate) fn tt_rst_rcv_fent(ctx: FEntryContext) -> u32 {
    super::on_received(ctx.arg(0));
    0
}
