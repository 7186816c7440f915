//! Tracepoint family for the state hook: `sock:inet_sock_set_state` (Linux 4.16+).
//!
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/sock.h#L144
//! Fired from `inet_sk_state_store()`/`inet_sk_set_state()` for TCP (and other inet)
//! sockets. Field offsets come from the tracepoint's `format` file, never from a header.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::globals::state_tp_offsets;

/// IPPROTO_TCP: the tracepoint also fires for other inet protocols (DCCP, SCTP, MPTCP).
const IPPROTO_TCP: u16 = 6;

#[tracepoint]
pub(crate) fn tt_state_tp(ctx: TracePointContext) -> u32 {
    let off = state_tp_offsets();
    // SAFETY: offsets come from this kernel's format file; read_at checks the address.
    let fields = unsafe {
        (
            ctx.read_at::<u16>(off.protocol as usize),
            ctx.read_at::<u64>(off.skaddr as usize),
            ctx.read_at::<i32>(off.oldstate as usize),
            ctx.read_at::<i32>(off.newstate as usize),
        )
    };
    if let (Ok(IPPROTO_TCP), Ok(sk), Ok(old), Ok(new)) = fields {
        super::on_change(sk, old, new);
    }
    0
}
