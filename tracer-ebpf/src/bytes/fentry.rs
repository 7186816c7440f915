//! fexit family for per-call byte counting. Process context: the caller.
//!
//! `int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)`
//! `int tcp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len)`
//! (5.19+; before, `int nonblock` came before `flags`: see `RecvmsgArgs`)
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp.c#L1479

use aya_ebpf::{macros::fexit, programs::FExitContext};

#[fexit(function = "tcp_sendmsg")]
pub(crate) fn tt_send_fexit(ctx: FExitContext) -> u32 {
    super::on_call(ctx.arg(0), i64::from(ctx.arg::<i32>(3)), true, 0);
    0
}

#[fexit(function = "tcp_recvmsg")]
pub(crate) fn tt_recv_fexit(ctx: FExitContext) -> u32 {
    use crate::globals::recvmsg_args;
    // Positions from BTF; the loader attaches this only when it found them.
    let (flags, count) = (recvmsg_args::flags() as usize, recvmsg_args::count() as usize);
    super::on_call(ctx.arg(0), i64::from(ctx.arg::<i32>(count)), false, ctx.arg(flags));
    0
}
