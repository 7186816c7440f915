//! Per-call byte counting: what `tcp_sendmsg` accepted and `tcp_recvmsg` returned, summed
//! per socket in `SOCKS` (never an event per call). Attached only when asked for
//! (`--bytes calls`), or when the socket counters are missing on this kernel: the close
//! event normally reads the socket's own counters, which cost nothing per call.

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use crate::maps::SOCKS;

const MSG_PEEK: i32 = 2;

/// `ret` bytes went through `sk` (`sent` or received); errors and peeks add nothing.
#[inline(always)]
pub(crate) fn on_call(sk: u64, ret: i64, sent: bool, flags: i32) {
    if ret <= 0 || flags & MSG_PEEK != 0 {
        return;
    }
    if let Some(info) = SOCKS.get_ptr_mut(&sk) {
        // SAFETY: map value of `sk`; sendmsg/recvmsg run with the socket locked.
        unsafe {
            if sent {
                (*info).sent_bytes += ret as u64;
            } else {
                (*info).received_bytes += ret as u64;
            }
        }
    }
}
