//! kretprobe family for the accept hook: the same function and context as `fentry.rs`.

use aya_ebpf::{macros::kretprobe, programs::RetProbeContext};

#[kretprobe]
pub(crate) fn tt_acc_krp(ctx: RetProbeContext) -> u32 {
    super::on_accept(ctx.ret::<u64>());
    0
}
