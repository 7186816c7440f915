//! fentry family for the state hook.
//!
//! `void tcp_set_state(struct sock *sk, int state)`
//! https://github.com/torvalds/linux/blob/v6.1/net/ipv4/tcp.c#L2870
//! Called before the new state is stored, so `sk_state` still holds the old one.
//! Context: process (connect, close) or softirq (handshake packets): never trust the pid.

use aya_ebpf::{macros::fentry, programs::FEntryContext};

use crate::sock::{self, Direct};

#[fentry(function = "tcp_set_state")]
pub(crate) fn tt_state_fent(ctx: FEntryContext) -> u32 {
    run(&ctx, true);
    0
}

/// The other program of the pair (see `state::pair`): changes made in softirq.
#[fentry(function = "tcp_set_state")]
pub(crate) fn tt_state_fent2(ctx: FEntryContext) -> u32 {
    super::softirq_side(|| run(&ctx, false));
    0
}

#[inline(always)]
fn run(ctx: &FEntryContext, owner_side: bool) {
    if !super::new_state_may_have_work(ctx.arg(1)) {
        return;
    }
    let sk: u64 = ctx.arg(0);
    // BTF-typed: `sk` is a `struct sock *` to the verifier, so reads are plain loads.
    super::pair::<Direct>(sk, owner_side, || {
        if let Ok(old) = sock::state::<Direct>(sk) {
            super::on_change::<Direct>(sk, i32::from(old), ctx.arg(1));
        }
    });
}
