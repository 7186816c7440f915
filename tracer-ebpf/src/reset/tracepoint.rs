//! Tracepoint family for the reset hook: `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`,
//! by their arguments rather than their records, whose layouts differ from kernel to
//! kernel (6.18's carries the ends as socket addresses and the reason; 6.1's neither).
//! `TP_PROTO(const struct sock *sk, const struct sk_buff *skb)`, with `enum sk_rst_reason
//! reason` third from Linux 6.10; `tcp_receive_reset`: `TP_PROTO(struct sock *sk)`.
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/tcp.h#L113
//! Before 6.10 `tcp_send_reset` fires only for resets that have a socket: one answering a
//! segment that reached none is not seen (`--list-probes` says so).

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};

/// BTF-typed: the arguments as the kernel's prototype gives them.
#[btf_tracepoint(function = "tcp_send_reset")]
pub(crate) fn tt_rst_snd_btf(ctx: BtfTracePointContext) -> u32 {
    super::on_sent(ctx.arg(0), ctx.arg(1), super::reason(|| ctx.arg(2)));
    0
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub(crate) fn tt_rst_rcv_btf(ctx: BtfTracePointContext) -> u32 {
    super::on_received(ctx.arg(0));
    0
}

/// Raw: the same arguments, each a u64.
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub(crate) fn tt_rst_snd_rtp(ctx: RawTracePointContext) -> u32 {
    super::on_sent(ctx.arg(0), ctx.arg(1), super::reason(|| ctx.arg::<u64>(2) as u32));
    0
}

#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub(crate) fn tt_rst_rcv_rtp(ctx: RawTracePointContext) -> u32 {
    super::on_received(ctx.arg(0));
    0
}
