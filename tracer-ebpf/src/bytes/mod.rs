//! Per-call byte counting: what `tcp_sendmsg` accepted and `tcp_recvmsg` returned, summed
//! per socket in `SOCKS` (never an event per call). Attached only when asked for
//! (`--bytes calls`), or when the socket counters are missing on this kernel: the close
//! event normally reads the socket's own counters, which cost nothing per call.
//!
//! The same hook watches each socket's destruction (`tcp_v4_destroy_sock`, for IPv6 too),
//! where a close event waits when bytes are counted per call: the application may still
//! read after CLOSE (see `crate::event::close::destroy`).

pub(crate) mod fentry;
pub(crate) mod kprobe;
pub(crate) mod tracepoint;

use tracer_common::close::DIRECTION_UNKNOWN;

use crate::maps::SOCKS;

use tracer_common::kernel::MSG_PEEK;

/// `ret` bytes went through `sk` (`sent` or received); errors and peeks add nothing.
#[inline(always)]
pub(crate) fn on_call(sk: u64, ret: i64, sent: bool, flags: i32) {
    if ret <= 0 || flags & MSG_PEEK != 0 || !crate::globals::armed() {
        return;
    }
    let live = crate::globals::config().live != 0;
    let info = match SOCKS.get_ptr_mut(&sk) {
        Some(info) => info,
        None if live => {
            // Older than tcptrace: tracked from here on, its owner the process using it.
            let task = crate::emit::current_task();
            if !crate::emit::task_wanted(&task) {
                return;
            }
            let Some(info) = crate::socks::insert_new(sk, DIRECTION_UNKNOWN, 0, |i| i.task = task)
            else {
                return;
            };
            info
        }
        None => return,
    };
    // SAFETY: map value of `sk`; sendmsg/recvmsg run with the socket locked.
    unsafe {
        if (*info).filtered_out != 0 {
            return;
        }
        if sent {
            (*info).sent_bytes += ret as u64;
        } else {
            (*info).received_bytes += ret as u64;
        }
        if live {
            if (*info).endpoints.family == 0
                && !crate::socks::live_ends_wanted::<crate::sock::Probe>(sk, &mut *info)
            {
                return;
            }
            let tp = crate::sock::tcp_sock::<crate::sock::Probe>(sk);
            (*info).total_retrans =
                tp.and_then(crate::sock::total_retrans::<crate::sock::Probe>).unwrap_or(0);
            (*info).srtt_us = tp.and_then(crate::sock::srtt_us::<crate::sock::Probe>).unwrap_or(0);
        }
    }
}
