//! fentry/fexit family for the connect hook (BPF trampolines; Linux 5.5+, and the kernel
//! must allow tracing programs: the 6.18 host here refuses them with EPERM).
//!
//! `int tcp_v4_connect(struct sock *sk, struct sockaddr *uaddr, int addr_len)`
//! `int tcp_v6_connect(struct sock *sk, struct sockaddr *uaddr, int addr_len)`
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_ipv4.c#L199
//! Process context: the task calling connect().

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

#[fentry(function = "tcp_v4_connect")]
pub(crate) fn tt_conn_fent4(ctx: FEntryContext) -> u32 {
    super::enter(ctx.arg(0), ctx.arg(1));
    0
}

#[fexit(function = "tcp_v4_connect")]
pub(crate) fn tt_conn_fext4(ctx: FExitContext) -> u32 {
    super::exit(i64::from(ctx.arg::<i32>(3)));
    0
}

#[fentry(function = "tcp_v6_connect")]
pub(crate) fn tt_conn_fent6(ctx: FEntryContext) -> u32 {
    super::enter(ctx.arg(0), ctx.arg(1));
    0
}

#[fexit(function = "tcp_v6_connect")]
pub(crate) fn tt_conn_fext6(ctx: FExitContext) -> u32 {
    super::exit(i64::from(ctx.arg::<i32>(3)));
    0
}
