//! kprobe family for the state hook: the same function and contexts as `fentry.rs`.

use aya_ebpf::{macros::kprobe, programs::ProbeContext};

use crate::sock;

#[kprobe]
pub(crate) fn tt_state_kp(ctx: ProbeContext) -> u32 {
    let (Some(sk), Some(new)) = (ctx.arg::<u64>(0), ctx.arg::<i32>(1)) else {
        return 0;
    };
    if !super::new_state_may_have_work(new) {
        return 0;
    }
    if let Ok(old) = sock::state::<sock::Probe>(sk) {
        super::on_change::<sock::Probe>(sk, i32::from(old), new);
    }
    0
}
