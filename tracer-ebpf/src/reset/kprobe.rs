//! kprobe family for the reset hook: the functions of `fentry.rs`, arguments from the
//! registers. One program serves `tcp_v4_send_reset` and `tcp_v6_send_reset`.

use aya_ebpf::{macros::kprobe, programs::ProbeContext};

#[kprobe]
pub(crate) fn tt_rst_snd_kp(ctx: ProbeContext) -> u32 {
    super::on_sent(
        ctx.arg(0).unwrap_or(0),
        ctx.arg(1).unwrap_or(0),
        super::reason(|| ctx.arg(2).unwrap_or(0)),
    );
    0
}

#[kprobe]
pub(crate) fn tt_rst_act_kp(ctx: ProbeContext) -> u32 {
    super::on_sent(ctx.arg(0).unwrap_or(0), 0, super::reason(|| ctx.arg(2).unwrap_or(0)));
    0
}

#[kprobe]
pub(crate) fn tt_rst_rcv_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        super::on_received(sk);
    }
    0
}
