//! Tracepoint family for the retransmit hook: `tcp:tcp_retransmit_skb`.
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/tcp.h#L93
//! Up to 6.9 it fires only for retransmissions that went out; later kernels fire it for
//! failures too and add an `err` field, which is checked when the format has it.
//! It also fires for tail loss probes, told apart by the socket's timer state.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::offsets::OFFSET_ABSENT;

use crate::globals::retrans_tp_offsets;

#[tracepoint]
pub(crate) fn tt_rtx_tp(ctx: TracePointContext) -> u32 {
    let off = retrans_tp_offsets();
    if off.err != OFFSET_ABSENT {
        // SAFETY: offset from this kernel's format file; read_at checks the address.
        if unsafe { ctx.read_at::<i32>(off.err as usize) } != Ok(0) {
            return 0;
        }
    }
    // SAFETY: as above.
    if let Ok(sk) = unsafe { ctx.read_at::<u64>(off.skaddr as usize) } {
        super::on_retransmit(sk, crate::sock::loss_probe_due::<crate::sock::Probe>(sk));
    }
    0
}
