//! Connect events: the logic shared by every hook family.
//!
//! An active open is followed from the moment the SYN goes out to the end of the handshake:
//! - `start`: CLOSE -> SYN_SENT, called from `tcp_v{4,6}_connect` in the connecting task's
//!   own context, so pid/comm/uid taken here are the caller's (state hook, any family).
//! - `finish`: SYN_SENT -> ESTABLISHED (softirq: the current task is *not* the owner, so
//!   the owner comes from `SOCKS`) or SYN_SENT -> CLOSE (refused, timed out, ...).
//! - `enter` / `exit`: the `tcp_v{4,6}_connect` hooks (fentry/fexit or kprobe/kretprobe),
//!   which add what the state change cannot see: a `connect()` that fails before any SYN
//!   (no route, no free port), reported with the function's return value.

pub(crate) mod fentry;
pub(crate) mod kprobe;

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{
    addr::{Endpoints, AF_INET, AF_INET6},
    close::DIRECTION_ACTIVE,
    connect::{ConnectEvent, CONNECT_FAILED, CONNECT_OK},
    counters::Counter,
    event::{EventHeader, EventKind},
};

use crate::{
    emit::{count, current_task, current_tid, header, now_ns, send, task_wanted},
    globals::filter,
    maps::{CONNECT_ARGS, SOCKS},
    sock,
    socks::SockInfo,
};

/// `tcp_v{4,6}_connect(struct sock *sk, struct sockaddr *uaddr, int addr_len)` arguments.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct ConnectArgs {
    pub(crate) sk: u64,
    pub(crate) uaddr: u64,
}

/// CLOSE -> SYN_SENT, in the caller's context: the connection's owner is the current task.
#[inline(always)]
pub(crate) fn start(sk: u64, now: u64) {
    let task = current_task();
    // Either way an entry left from an earlier connection on the same socket address is
    // replaced (and if its CLOSE was never seen, counted: see `socks::put`); a close event
    // still waiting in it goes first.
    if crate::globals::config().count_calls != 0 {
        crate::close::send_waiting(sk, false);
    }
    let wanted = task_wanted(&task);
    if !wanted {
        // Marked rather than left out: every later event of the socket is dropped too.
        count(Counter::Filtered);
    }
    let stored = crate::socks::put(sk, DIRECTION_ACTIVE, now, |info| {
        info.task = task;
        info.filtered_out = u8::from(!wanted);
        if wanted {
            info.syn_sent_ns = now;
        }
        info.last_state = crate::state::TCP_SYN_SENT as u8;
    });
    if !stored {
        crate::socks::forget(sk);
        count(Counter::MapError);
    }
}

/// SYN_SENT -> ESTABLISHED (`failed == false`) or SYN_SENT -> CLOSE. Returns false when a
/// failure is left for the exit hook to report (it knows the real errno).
#[inline(never)]
pub(crate) fn finish<A: sock::Access>(sk: u64, info: &SockInfo, failed: bool, now: u64) -> bool {
    if info.syn_sent_ns == 0 {
        return true; // not started under tcptrace, or filtered out at start
    }
    let errno = if failed {
        let err = sock::err::<A>(sk).unwrap_or(0);
        // No error on the socket and the connect call still running on this thread: the
        // failure is connect()'s own (e.g. no free local port); the exit hook reports it
        // with the real return value.
        if err == 0 && CONNECT_ARGS.get_ptr(&current_tid()).is_some() {
            return false;
        }
        err as u32
    } else {
        0
    };
    if !crate::globals::wants(EventKind::Connect) {
        return true;
    }
    let latency_ns = now.saturating_sub(info.syn_sent_ns);
    let filter = filter();
    if !filter.connect_matches(failed, latency_ns)
        || !filter.owner_matches(info.task.pid, info.task.uid, &info.task.comm)
    {
        count(Counter::Filtered);
        return true;
    }
    // Written straight into the ring buffer: this runs below `on_change`, and a copy of
    // the event on the stack would not fit the 512 bytes older verifiers allow a chain.
    let Some(mut entry) = crate::maps::EVENTS.reserve::<ConnectEvent>(0) else {
        count(Counter::RingbufFull);
        return true;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at the reserved ConnectEvent; every field is written below before
    // submit, or the entry is discarded.
    unsafe {
        if !crate::emit::endpoints_wanted::<A>(sk, &mut (*e).endpoints) {
            entry.discard(0);
            return true;
        }
        crate::emit::fill_header::<A>(&mut (*e).header, EventKind::Connect, &info.task, now, sk);
        (*e).latency_ns = latency_ns;
        (*e).result = if failed { CONNECT_FAILED } else { CONNECT_OK };
        (*e).errno = errno;
        // Every SYN resent counts in `total_retrans`, and nothing else can have been yet
        // (tcp_done() and the handshake's end leave it as it is).
        let resent = sock::tcp_sock::<A>(sk).and_then(sock::total_retrans::<A>).unwrap_or(0);
        (*e).syns_sent = resent.saturating_add(1);
        (*e)._pad = 0;
    }
    entry.submit(0);
    true
}

#[inline(always)]
fn send_connect(
    header: EventHeader,
    endpoints: Endpoints,
    latency_ns: u64,
    result: u32,
    errno: u32,
) {
    // SAFETY: `e` points at a reserved ConnectEvent; every field is written.
    send(|e: *mut ConnectEvent| unsafe {
        (*e).header = header;
        (*e).endpoints = endpoints;
        (*e).latency_ns = latency_ns;
        (*e).result = result;
        (*e).errno = errno;
        (*e).syns_sent = 0; // connect() failed before its SYN
        (*e)._pad = 0;
    });
}

/// Entry of `tcp_v{4,6}_connect`.
#[inline(always)]
pub(crate) fn enter(sk: u64, uaddr: u64) {
    if !crate::globals::armed() {
        return;
    }
    let _ = CONNECT_ARGS.insert(&current_tid(), &ConnectArgs { sk, uaddr }, 0);
}

/// Return of `tcp_v{4,6}_connect`: reports a connect that failed inside the call.
#[inline(always)]
pub(crate) fn exit(ret: i64) {
    if !crate::globals::armed() {
        return;
    }
    let tid = current_tid();
    let Some(args) = CONNECT_ARGS.get_ptr(&tid) else {
        return;
    };
    // SAFETY: plain struct, copied before the delete.
    let args = unsafe { *args };
    let _ = CONNECT_ARGS.remove(&tid);
    if ret >= 0 {
        return; // the SYN is out; the state hook reports how the handshake ends
    }
    let task = current_task();
    let latency_ns = match SOCKS.get_ptr(&args.sk) {
        Some(entry) => {
            // SAFETY: plain struct.
            let started = unsafe { (*entry).syn_sent_ns };
            crate::socks::forget(args.sk);
            if started == 0 {
                0
            } else {
                now_ns().saturating_sub(started)
            }
        }
        None => 0,
    };
    let Ok(endpoints) = endpoints_from_call(&args) else {
        count(Counter::ReadError);
        return;
    };
    if !crate::globals::wants(EventKind::Connect) {
        return;
    }
    // task_wanted checks the owner filters (and the cgroup): only the ports are left.
    if !filter().connect_matches(true, latency_ns)
        || !task_wanted(&task)
        || !crate::emit::socket_matches::<sock::Probe>(args.sk, &endpoints)
    {
        count(Counter::Filtered);
        return;
    }
    send_connect(
        header::<sock::Probe>(EventKind::Connect, &task, now_ns(), args.sk),
        endpoints,
        latency_ns,
        CONNECT_FAILED,
        ret.unsigned_abs() as u32,
    );
}

/// The local end from the socket, the remote end from the address passed to `connect()`
/// (the socket's copy is reset on failure). `uaddr` is the kernel's copy of the sockaddr.
#[inline(always)]
fn endpoints_from_call(args: &ConnectArgs) -> Result<Endpoints, sock::ReadError> {
    let mut ep = sock::endpoints::<sock::Probe>(args.sk).unwrap_or_default();
    // struct sockaddr_in / sockaddr_in6: family (u16), port (be16), then the address at
    // byte 4 (in) or 8 (in6, after sin6_flowinfo). These are ABI, the same on every kernel.
    // SAFETY: bpf_probe_read_kernel validates the address.
    let family =
        unsafe { bpf_probe_read_kernel(args.uaddr as *const u16) }.map_err(|_| sock::ReadError)?;
    // SAFETY: as above.
    let port = unsafe { bpf_probe_read_kernel((args.uaddr + 2) as *const u16) }
        .map_err(|_| sock::ReadError)?;
    ep.family = family;
    ep.dport = u16::from_be(port);
    match family {
        AF_INET => {
            // SAFETY: as above.
            let addr = unsafe { bpf_probe_read_kernel((args.uaddr + 4) as *const [u8; 4]) }
                .map_err(|_| sock::ReadError)?;
            ep.daddr = [0; 16];
            ep.daddr[..4].copy_from_slice(&addr);
        }
        AF_INET6 => {
            // SAFETY: as above.
            ep.daddr = unsafe { bpf_probe_read_kernel((args.uaddr + 8) as *const [u8; 16]) }
                .map_err(|_| sock::ReadError)?;
        }
        _ => return Err(sock::ReadError),
    }
    Ok(ep)
}
