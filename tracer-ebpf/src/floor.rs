//! The benchmark's floor (`cargo xtask bench`, configuration `floor`): empty programs, a
//! per-CPU counter each, on the hooks and with the attach types tcptrace's default events
//! use on a kernel with tracepoints only: two BTF-typed tracepoint programs on
//! `inet_sock_set_state` (the state pair) and one on `tcp_retransmit_skb`, and a classic
//! tracepoint program on `sys_exit_accept4` and `sys_exit_accept`. What attaching alone
//! costs. `cargo xtask floor` loads them; tcptrace never does.

use aya_ebpf::{
    macros::{btf_tracepoint, map, tracepoint},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, TracePointContext},
};

/// How often the floor's programs ran (so that they are not quite empty, like bpftrace's
/// `count()`).
#[map]
static FLOOR_RUNS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn count() {
    if let Some(n) = FLOOR_RUNS.get_ptr_mut(0) {
        // SAFETY: this CPU's slot.
        unsafe { *n += 1 };
    }
}

#[btf_tracepoint(function = "inet_sock_set_state")]
pub(crate) fn tt_floor_btf(_ctx: BtfTracePointContext) -> u32 {
    count();
    0
}

#[btf_tracepoint(function = "inet_sock_set_state")]
pub(crate) fn tt_floor_btf2(_ctx: BtfTracePointContext) -> u32 {
    count();
    0
}

#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub(crate) fn tt_floor_rtx(_ctx: BtfTracePointContext) -> u32 {
    count();
    0
}

#[tracepoint]
pub(crate) fn tt_floor_tp(_ctx: TracePointContext) -> u32 {
    count();
    0
}
