//! Tracepoint family for the state hook: `sock:inet_sock_set_state` (Linux 4.16+).
//!
//! https://github.com/torvalds/linux/blob/v6.1/include/trace/events/sock.h#L144
//! Fired from `inet_sk_state_store()`/`inet_sk_set_state()` for TCP (and other inet)
//! sockets. Field offsets come from the tracepoint's `format` file, never from a header.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};

use crate::{
    globals::state_tp_offsets,
    sock::{self, Direct, Probe},
};

/// IPPROTO_TCP: the tracepoint also fires for other inet protocols (DCCP, SCTP, MPTCP).
const IPPROTO_TCP: u16 = tracer_common::kernel::IPPROTO_TCP as u16;

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
        super::on_change::<Probe>(sk, old, new);
    }
    0
}

/// The same tracepoint attached raw (Linux 4.17+): its `TP_PROTO` arguments
/// `(const struct sock *sk, const int oldstate, const int newstate)` instead of the
/// record, so no format offsets; and the kernel's recursion guard for raw tracepoints is
/// per program, so the pair (see `state::pair`) works: this one takes changes made with
/// the socket owned by a task.
#[aya_ebpf::macros::raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub(crate) fn tt_state_rtp(ctx: aya_ebpf::programs::RawTracePointContext) -> u32 {
    if has_work(&ctx) {
        take::<Probe>(ctx.arg(0), ctx.arg::<u64>(1) as i32, ctx.arg::<u64>(2) as i32, true);
    }
    0
}

/// The other program of the pair (see `state::pair`): changes made in softirq.
#[aya_ebpf::macros::raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub(crate) fn tt_state_rtp2(ctx: aya_ebpf::programs::RawTracePointContext) -> u32 {
    // Cheap enough to come before the busy mark: two loads from the context.
    if has_work(&ctx) {
        super::softirq_side(|| {
            take::<Probe>(ctx.arg(0), ctx.arg::<u64>(1) as i32, ctx.arg::<u64>(2) as i32, false)
        });
    }
    0
}

/// The states are arguments here, so a change with nothing to do is dropped before any
/// read of the socket (see `state::has_work`).
#[inline(always)]
fn has_work(ctx: &aya_ebpf::programs::RawTracePointContext) -> bool {
    super::has_work(ctx.arg::<u64>(1) as i32, ctx.arg::<u64>(2) as i32)
}

/// The body of both pairs, raw and BTF-typed: the arguments `(sk, oldstate, newstate)` as
/// the program type presents them, and which side of the pair this is.
#[inline(always)]
fn take<A: sock::Access>(sk: u64, old: i32, new: i32, owner_side: bool) {
    super::pair::<A>(sk, owner_side, || {
        if sock::protocol::<A>(sk) == Ok(IPPROTO_TCP) {
            super::on_change::<A>(sk, old, new);
        }
    });
}

/// The same tracepoint, BTF-typed (Linux 5.5+): the arguments of the raw one, but the
/// verifier knows `sk` as a `struct sock *`, so the programs read it with plain loads
/// instead of helper calls (see `sock::Direct`). Preferred over the raw pair where the
/// kernel has BTF; the same per-program recursion guard, so the same pair.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub(crate) fn tt_state_btf(ctx: BtfTracePointContext) -> u32 {
    if btf_has_work(&ctx) {
        take::<Direct>(ctx.arg(0), ctx.arg::<i32>(1), ctx.arg::<i32>(2), true);
    }
    0
}

/// The other program of the BTF-typed pair (see `state::pair`): changes made in softirq.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub(crate) fn tt_state_btf2(ctx: BtfTracePointContext) -> u32 {
    if btf_has_work(&ctx) {
        super::softirq_side(|| {
            take::<Direct>(ctx.arg(0), ctx.arg::<i32>(1), ctx.arg::<i32>(2), false)
        });
    }
    0
}

#[inline(always)]
fn btf_has_work(ctx: &BtfTracePointContext) -> bool {
    super::has_work(ctx.arg::<i32>(1), ctx.arg::<i32>(2))
}
