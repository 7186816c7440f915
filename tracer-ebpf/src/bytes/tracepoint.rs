//! Tracepoint family for per-call byte counting: `sock:sock_send_length` and
//! `sock:sock_recv_length` (Linux 6.3+), fired by `sock_sendmsg`/`sock_recvmsg` for every
//! socket type with the call's return value. Process context: the caller.
//! https://github.com/torvalds/linux/blob/v6.3/include/trace/events/sock.h#L269
//!
//! The socket's destruction: `tcp:tcp_destroy_sock`, fired by `tcp_v4_destroy_sock`.
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/tcp.h#L183

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::globals::{destroy_tp_offsets, length_tp_offsets};

const IPPROTO_TCP: u16 = tracer_common::kernel::IPPROTO_TCP as u16;

#[inline(always)]
fn on_length(ctx: &TracePointContext, sent: bool) {
    let off = length_tp_offsets();
    // SAFETY: offsets from this kernel's format file; read_at checks the address.
    let fields = unsafe {
        (
            ctx.read_at::<u16>(off.protocol as usize),
            ctx.read_at::<u64>(off.sk as usize),
            ctx.read_at::<i32>(off.ret as usize),
            ctx.read_at::<i32>(off.flags as usize),
        )
    };
    if let (Ok(IPPROTO_TCP), Ok(sk), Ok(ret), Ok(flags)) = fields {
        super::on_call(sk, i64::from(ret), sent, flags);
    }
}

#[tracepoint]
pub(crate) fn tt_send_tp(ctx: TracePointContext) -> u32 {
    on_length(&ctx, true);
    0
}

#[tracepoint]
pub(crate) fn tt_recv_tp(ctx: TracePointContext) -> u32 {
    on_length(&ctx, false);
    0
}

#[tracepoint]
pub(crate) fn tt_dstr_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from this kernel's format file; read_at checks the address.
    if let Ok(sk) = unsafe { ctx.read_at::<u64>(destroy_tp_offsets().skaddr as usize) } {
        crate::event::close::destroy(sk);
    }
    0
}
