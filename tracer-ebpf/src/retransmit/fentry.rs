//! fexit family for the retransmit hook.
//!
//! `int tcp_retransmit_skb(struct sock *sk, struct sk_buff *skb, int segs)`: timeouts, fast
//! retransmits and SYN retransmits. Not `__tcp_retransmit_skb`, which it calls: compilers
//! inline that into it (Debian's 6.1 does), so a probe there sees only the out-of-line
//! copy that tail loss probes call. Tail loss probes are therefore seen by the tracepoint
//! family only. https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_output.c#L3410
//! Context: softirq (timers, ACK processing) or the socket owner's backlog processing.

use aya_ebpf::{macros::fexit, programs::FExitContext};

#[fexit(function = "tcp_retransmit_skb")]
pub(crate) fn tt_rtx_fexit(ctx: FExitContext) -> u32 {
    // Only retransmissions that went out, as the tracepoint reports them.
    if ctx.arg::<i32>(3) == 0 {
        super::on_retransmit(ctx.arg(0));
    }
    0
}
