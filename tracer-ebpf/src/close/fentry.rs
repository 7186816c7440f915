//! fentry family for the destroy hook (part of per-call byte counting).
//!
//! `void tcp_v4_destroy_sock(struct sock *sk)`: the protocol's destroy, for IPv6 sockets
//! too. https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_ipv4.c#L2254
//! Context: whoever drops the last reference (the closing task, or softirq).

use aya_ebpf::{macros::fentry, programs::FEntryContext};

#[fentry(function = "tcp_v4_destroy_sock")]
pub(crate) fn tt_dstr_fent(ctx: FEntryContext) -> u32 {
    super::destroy(ctx.arg(0));
    0
}
