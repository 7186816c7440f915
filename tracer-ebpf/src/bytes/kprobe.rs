//! kprobe/kretprobe family for per-call byte counting (see `fentry.rs` for prototypes).

use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::calls::{self, Call};

use tracer_common::kernel::MSG_PEEK;

#[kprobe]
pub(crate) fn tt_send_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        calls::save(Call::Send, sk);
    }
    0
}

#[kretprobe]
pub(crate) fn tt_send_krp(ctx: RetProbeContext) -> u32 {
    if let Some(sk) = calls::take(Call::Send) {
        super::on_call(sk, i64::from(ctx.ret::<i32>()), true, 0);
    }
    0
}

#[kprobe]
pub(crate) fn tt_recv_kp(ctx: ProbeContext) -> u32 {
    recv_entry(ctx.arg::<u64>(0), ctx.arg::<i32>(3));
    0
}

/// `tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len)`, before 5.19 (see `fentry.rs`).
#[kprobe]
pub(crate) fn tt_recv_kp6(ctx: ProbeContext) -> u32 {
    recv_entry(ctx.arg::<u64>(0), ctx.arg::<i32>(4));
    0
}

#[inline(always)]
fn recv_entry(sk: Option<u64>, flags: Option<i32>) {
    // A peek returns bytes without consuming them: not counted, so not even saved.
    if let (Some(sk), Some(flags)) = (sk, flags) {
        if flags & MSG_PEEK == 0 {
            calls::save(Call::Recv, sk);
        }
    }
}

#[kretprobe]
pub(crate) fn tt_recv_krp(ctx: RetProbeContext) -> u32 {
    if let Some(sk) = calls::take(Call::Recv) {
        super::on_call(sk, i64::from(ctx.ret::<i32>()), false, 0);
    }
    0
}

/// `tcp_v4_destroy_sock` (see `fentry.rs`).
#[kprobe]
pub(crate) fn tt_dstr_kp(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        crate::event::close::destroy(sk);
    }
    0
}
