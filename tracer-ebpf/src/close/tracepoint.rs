//! Tracepoint family for the destroy hook: `tcp:tcp_destroy_sock`, fired by
//! `tcp_v4_destroy_sock`. https://github.com/torvalds/linux/blob/v6.1/include/trace/events/tcp.h#L183

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::globals::destroy_tp_offsets;

#[tracepoint]
pub(crate) fn tt_dstr_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from this kernel's format file; read_at checks the address.
    if let Ok(sk) = unsafe { ctx.read_at::<u64>(destroy_tp_offsets().skaddr as usize) } {
        super::destroy(sk);
    }
    0
}
