//! Tracepoint family for the retransmit hook: `tcp:tcp_retransmit_skb`.
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/tcp.h#L93
//! Up to 6.9 it fires only for retransmissions that went out; later kernels fire it for
//! failures too and add an `err` field, which is checked when the format has it.
//! It also fires for tail loss probes, told apart by the socket's timer state.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::offsets::OFFSET_ABSENT;

use crate::{
    globals::{retrans_tp_offsets, synack_tp_offsets},
    sock::{self, Direct, Probe},
};

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
        super::on_retransmit::<Probe>(sk, sock::loss_probe_due::<Probe>(sk));
    }
    0
}

/// The same tracepoint, BTF-typed (Linux 5.5+): `TP_PROTO(const struct sock *sk, const
/// struct sk_buff *skb)`, and `int err` after them from 6.10 (the format file says which:
/// its `err` field). The socket is read with plain loads (see `sock::Direct`), and the
/// kernel's recursion guard is this program's own, not the one every classic tracepoint
/// and kprobe on the CPU shares.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub(crate) fn tt_rtx_btf(ctx: BtfTracePointContext) -> u32 {
    // A constant to the verifier (frozen .rodata): on kernels without the argument the
    // read of it is dead code.
    if retrans_tp_offsets().err != OFFSET_ABSENT && ctx.arg::<i32>(2) != 0 {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    super::on_retransmit::<Direct>(sk, sock::loss_probe_due::<Direct>(sk));
    0
}

/// `tcp:tcp_retransmit_synack` (Linux 4.15+): a listener resent a SYN-ACK (see
/// `super::on_synack_retransmit`). Fires only for SYN-ACKs that went out. The request
/// socket is read through helper calls: the record's own copy of the endpoints would
/// need offsets for each of its fields, and its count is not in it anyway.
#[tracepoint]
pub(crate) fn tt_synack_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from this kernel's format file; read_at checks the address.
    if let Ok(req) = unsafe { ctx.read_at::<u64>(synack_tp_offsets().skaddr as usize) } {
        super::on_synack_retransmit::<Probe>(req);
    }
    0
}

/// The same, BTF-typed: `TP_PROTO(const struct sock *sk, const struct request_sock
/// *req)`, the request socket read with plain loads.
#[btf_tracepoint(function = "tcp_retransmit_synack")]
pub(crate) fn tt_synack_btf(ctx: BtfTracePointContext) -> u32 {
    super::on_synack_retransmit::<Direct>(ctx.arg(1));
    0
}
