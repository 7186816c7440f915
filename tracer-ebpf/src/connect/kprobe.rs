//! kprobe/kretprobe family for the connect hook. One program each, attached to both
//! `tcp_v4_connect` and `tcp_v6_connect` (same prototype, see `fentry.rs`).
//! Process context: the task calling connect().

use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};

#[kprobe]
pub(crate) fn tt_conn_kp(ctx: ProbeContext) -> u32 {
    if let (Some(sk), Some(uaddr)) = (ctx.arg(0), ctx.arg(1)) {
        super::enter(sk, uaddr);
    }
    0
}

#[kretprobe]
pub(crate) fn tt_conn_krp(ctx: RetProbeContext) -> u32 {
    super::exit(i64::from(ctx.ret::<i32>()));
    0
}
