//! TCP state transitions: the logic shared by every hook family. For now they drive the
//! connect events (see `connect/mod.rs`); later events (close, state) hang off here too.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use crate::connect;

// `TCP_*` states, include/net/tcp_states.h (a stable ABI: also shown by `ss`).
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;

/// One transition of `sk` from `old` to `new`.
#[inline(always)]
pub(crate) fn on_change(sk: u64, old: i32, new: i32) {
    match (old, new) {
        (TCP_CLOSE, TCP_SYN_SENT) => connect::start(sk),
        (TCP_SYN_SENT, TCP_ESTABLISHED) => connect::finish(sk, false),
        (TCP_SYN_SENT, TCP_CLOSE) => connect::finish(sk, true),
        _ => {}
    }
}
