//! kprobe/kretprobe family for the retransmit hook: the same function as `fentry.rs`.

use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::calls::{self, Call};

#[kprobe]
pub(crate) fn tt_rtx_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        calls::save(Call::Retransmit, sk);
    }
    0
}

#[kretprobe]
pub(crate) fn tt_rtx_krp(ctx: RetProbeContext) -> u32 {
    if let Some(sk) = calls::take(Call::Retransmit) {
        if ctx.ret::<i32>() == 0 {
            super::on_retransmit::<crate::sock::Probe>(sk, false);
        }
    }
    0
}

/// `tcp_send_loss_probe` (see `super::loss_probe_entry`).
#[kprobe]
pub(crate) fn tt_tlp_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        super::loss_probe_entry(sk);
        calls::save(Call::LossProbe, sk);
    }
    0
}

#[kretprobe]
pub(crate) fn tt_tlp_krp(_ctx: RetProbeContext) -> u32 {
    if let Some(sk) = calls::take(Call::LossProbe) {
        super::loss_probe_exit(sk);
    }
    0
}

/// `tcp_rtx_synack` (see `fentry.rs`): its request socket, carried to the return.
#[kprobe]
pub(crate) fn tt_synack_kp(ctx: ProbeContext) -> u32 {
    if let Some(req) = ctx.arg::<u64>(1) {
        calls::save(Call::SynAck, req);
    }
    0
}

#[kretprobe]
pub(crate) fn tt_synack_krp(ctx: RetProbeContext) -> u32 {
    if let Some(req) = calls::take(Call::SynAck) {
        if ctx.ret::<i32>() == 0 {
            super::on_synack_retransmit::<crate::sock::Probe>(req);
        }
    }
    0
}
