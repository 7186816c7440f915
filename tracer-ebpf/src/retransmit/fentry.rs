//! fexit family for the retransmit hook.
//!
//! `int tcp_retransmit_skb(struct sock *sk, struct sk_buff *skb, int segs)`: timeouts, fast
//! retransmits and SYN retransmits. Not `__tcp_retransmit_skb`, which it calls: compilers
//! inline that into it (Debian's 6.1 does), so a probe there sees only the out-of-line
//! copy that tail loss probes call; those are caught on `tcp_send_loss_probe` instead.
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_output.c#L3410
//! Context: softirq (timers, ACK processing) or the socket owner's backlog processing.

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

#[fexit(function = "tcp_retransmit_skb")]
pub(crate) fn tt_rtx_fexit(ctx: FExitContext) -> u32 {
    // Only retransmissions that went out, as the tracepoint reports them.
    if ctx.arg::<i32>(3) == 0 {
        // BTF-typed: the socket is read with plain loads.
        super::on_retransmit::<crate::sock::Direct>(ctx.arg(0), false);
    }
    0
}

/// `void tcp_send_loss_probe(struct sock *sk)`, timer or socket-release context.
#[fentry(function = "tcp_send_loss_probe")]
pub(crate) fn tt_tlp_fent(ctx: FEntryContext) -> u32 {
    super::loss_probe_entry(ctx.arg(0));
    0
}

#[fexit(function = "tcp_send_loss_probe")]
pub(crate) fn tt_tlp_fexit(ctx: FExitContext) -> u32 {
    super::loss_probe_exit(ctx.arg(0));
    0
}

/// `int tcp_rtx_synack(const struct sock *sk, struct request_sock *req)`: a listener
/// resending a SYN-ACK (its request socket's timer, or the client's SYN again), the
/// function behind the `tcp:tcp_retransmit_synack` tracepoint.
#[fexit(function = "tcp_rtx_synack")]
pub(crate) fn tt_synack_fexit(ctx: FExitContext) -> u32 {
    // Only SYN-ACKs that went out, as the tracepoint reports them.
    if ctx.arg::<i32>(2) == 0 {
        super::on_synack_retransmit::<crate::sock::Direct>(ctx.arg(1));
    }
    0
}
