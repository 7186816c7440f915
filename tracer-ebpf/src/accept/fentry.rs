//! fexit family for the accept hook.
//!
//! `struct sock *inet_csk_accept(struct sock *sk, int flags, int *err, bool kern)` (6.1;
//! 6.10+ takes `struct proto_accept_arg *`): only the returned child socket is used, so both
//! prototypes work. https://github.com/torvalds/linux/blob/v6.1/net/ipv4/inet_connection_sock.c#L639
//! Process context: the task calling accept().

use aya_ebpf::{macros::fexit, programs::FExitContext};

#[fexit(function = "inet_csk_accept")]
pub(crate) fn tt_acc_fexit(ctx: FExitContext) -> u32 {
    if let Ok(sk) = ctx.ret::<u64>() {
        super::on_accept(sk);
    }
    0
}
