//! kprobe family for the accept hook: `security_sock_graft(struct sock *sk, struct socket
//! *parent)`, the LSM hook `sock_graft()` calls when `inet_accept()` joins the accepted
//! socket to its new file, in the accepting task's context.
//! https://github.com/torvalds/linux/blob/v6.1/include/net/sock.h#L2093
//!
//! Not a kretprobe on `inet_csk_accept` (as the fexit program is): a kretprobe has
//! max(10, 2 x CPUs) instances, a call holds one for as long as it sleeps waiting for a
//! connection, and a call that finds none is never seen returning (the kernel counts it
//! only where tcptrace cannot read it). A pool of threads asleep in accept() would lose
//! its accepts silently. An entry probe holds nothing. Other families (unix, vsock, ...)
//! graft too: `on_accept` keeps TCP only. An MPTCP subflow is joined to its file without
//! this hook, so it gets no owner here (docs/hooks.md). Kernels built without
//! `CONFIG_SECURITY_NETWORK` have no such function: then the tracepoint family takes the
//! hook.

use aya_ebpf::{macros::kprobe, programs::ProbeContext};

#[kprobe]
pub(crate) fn tt_acc_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        super::on_accept(sk);
    }
    0
}
