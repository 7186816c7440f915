//! fexit family for per-call byte counting. Process context: the caller.
//!
//! `int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)`
//! `int tcp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len)`
//! (5.19 on; before, `int nonblock` came before `flags`: the `6` variant below; Linux 6.18
//! drops `addr_len`: the `4` variant. The loader picks one from the prototype in BTF. A
//! context's offsets must be constants: an fexit program's return value follows the last
//! argument.)
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp.c#L1479
//!
//! `void tcp_v4_destroy_sock(struct sock *sk)`: the protocol's destroy, for IPv6 sockets
//! too, run by whoever drops the last reference (the closing task, or softirq).
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp_ipv4.c#L2254

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

#[fexit(function = "tcp_sendmsg")]
pub(crate) fn tt_send_fexit(ctx: FExitContext) -> u32 {
    super::on_call(ctx.arg(0), i64::from(ctx.arg::<i32>(3)), true, 0);
    0
}

#[fexit(function = "tcp_recvmsg")]
pub(crate) fn tt_recv_fexit(ctx: FExitContext) -> u32 {
    super::on_call(ctx.arg(0), i64::from(ctx.arg::<i32>(5)), false, ctx.arg(3));
    0
}

/// `tcp_recvmsg(sk, msg, len, flags)`, from 6.18.
#[fexit(function = "tcp_recvmsg")]
pub(crate) fn tt_recv_fexit4(ctx: FExitContext) -> u32 {
    super::on_call(ctx.arg(0), i64::from(ctx.arg::<i32>(4)), false, ctx.arg(3));
    0
}

/// `tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len)`, before 5.19.
#[fexit(function = "tcp_recvmsg")]
pub(crate) fn tt_recv_fexit6(ctx: FExitContext) -> u32 {
    super::on_call(ctx.arg(0), i64::from(ctx.arg::<i32>(6)), false, ctx.arg(4));
    0
}

#[fentry(function = "tcp_v4_destroy_sock")]
pub(crate) fn tt_dstr_fent(ctx: FEntryContext) -> u32 {
    crate::event::close::destroy(ctx.arg(0));
    0
}
