//! The connect hook: `tcp_v{4,6}_connect` (fentry/fexit or kprobe/kretprobe), for what the
//! state change cannot see: a `connect()` that fails before any SYN (no route, no free
//! port), reported with the function's return value (`enter` / `exit`). Connects that
//! reach the handshake are reported by the state hook (`crate::event::connect`).

pub(crate) mod fentry;
pub(crate) mod kprobe;

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{
    addr::Endpoints,
    connect::{ConnectEvent, CONNECT_FAILED},
    counters::Counter,
    event::{EventHeader, EventKind},
    kernel::{AF_INET, AF_INET6},
};

use crate::{
    emit::{count, current_task, current_tid, header, now_ns, send, task_wanted},
    globals::filter,
    maps::{ConnectArgs, CONNECT_ARGS, SOCKS},
    sock,
};

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
        (*e).syns_dropped = 0;
        (*e).syn_drop_reason = 0;
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
