//! kprobe/kretprobe family for per-call byte counting (see `fentry.rs` for prototypes).

use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::calls;

const MSG_PEEK: i32 = 2;

#[kprobe]
pub(crate) fn tt_send_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        calls::save(sk);
    }
    0
}

#[kretprobe]
pub(crate) fn tt_send_krp(ctx: RetProbeContext) -> u32 {
    if let Some(sk) = calls::take() {
        super::on_call(sk, i64::from(ctx.ret::<i32>()), true, 0);
    }
    0
}

#[kprobe]
pub(crate) fn tt_recv_kp(ctx: ProbeContext) -> u32 {
    // A peek returns bytes without consuming them: not counted, so not even saved.
    let flags_at = crate::globals::recvmsg_args::flags() as usize;
    if let (Some(sk), Some(flags)) = (ctx.arg::<u64>(0), ctx.arg::<i32>(flags_at)) {
        if flags & MSG_PEEK == 0 {
            calls::save(sk);
        }
    }
    0
}

#[kretprobe]
pub(crate) fn tt_recv_krp(ctx: RetProbeContext) -> u32 {
    if let Some(sk) = calls::take() {
        super::on_call(sk, i64::from(ctx.ret::<i32>()), false, 0);
    }
    0
}
