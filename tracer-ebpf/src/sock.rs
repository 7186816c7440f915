//! Typed getters over `struct sock`, driven by offsets userspace read from BTF.
//! Every read goes through `bpf_probe_read_kernel`, so the same code serves kprobe,
//! fentry and tracepoint programs alike.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{
    addr::{Endpoints, AF_INET, AF_INET6},
    offsets::OFFSET_ABSENT,
};

use crate::globals::sock_off;

/// A read failed or the field is absent on this kernel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReadError;

#[inline(always)]
fn read<T>(sk: u64, offset: u32) -> Result<T, ReadError> {
    if offset == OFFSET_ABSENT {
        return Err(ReadError);
    }
    let ptr = sk.wrapping_add(u64::from(offset)) as *const T;
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(ptr) }.map_err(|_| ReadError)
}

/// `sk->sk_state` (the `TCP_*` state before a transition, when read at its start).
#[inline(always)]
pub(crate) fn state(sk: u64) -> Result<u8, ReadError> {
    read::<u8>(sk, sock_off::state())
}

/// `sk->sk_err`, positive errno.
#[inline(always)]
pub(crate) fn err(sk: u64) -> Result<i32, ReadError> {
    read::<i32>(sk, sock_off::err())
}

/// Both endpoints as the socket knows them now.
#[inline(always)]
pub(crate) fn endpoints(sk: u64) -> Result<Endpoints, ReadError> {
    let mut ep = Endpoints::default();
    endpoints_into(sk, &mut ep)?;
    Ok(ep)
}

/// Reads both endpoints straight into `out` (which may be a ring buffer reservation), with
/// no copies on the stack; every field of `out` is written.
#[inline(always)]
pub(crate) fn endpoints_into(sk: u64, out: &mut Endpoints) -> Result<(), ReadError> {
    // SAFETY: `out` is a valid, aligned `Endpoints`.
    unsafe { crate::mem::zero(out as *mut Endpoints) };
    out.family = read::<u16>(sk, sock_off::family())?;
    out.sport = u16::from_be(read::<u16>(sk, sock_off::sport())?);
    out.dport = u16::from_be(read::<u16>(sk, sock_off::dport())?);
    let (saddr, daddr, len) = match out.family {
        AF_INET => (sock_off::rcv_saddr(), sock_off::daddr(), 4),
        AF_INET6 => (sock_off::v6_rcv_saddr(), sock_off::v6_daddr(), 16),
        _ => return Err(ReadError),
    };
    read_into(sk, saddr, out.saddr.get_mut(..len).ok_or(ReadError)?)?;
    read_into(sk, daddr, out.daddr.get_mut(..len).ok_or(ReadError)?)
}

#[inline(always)]
fn read_into(sk: u64, offset: u32, dst: &mut [u8]) -> Result<(), ReadError> {
    if offset == OFFSET_ABSENT {
        return Err(ReadError);
    }
    // SAFETY: bpf_probe_read_kernel_buf checks the source address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_buf(sk.wrapping_add(u64::from(offset)) as *const u8, dst) }.map_err(|_| ReadError)
}

/// Whether a task owns the socket (`sk->sk_lock.owned`): true in process context (connect,
/// close, backlog processing), false for changes made in softirq.
#[inline(always)]
pub(crate) fn owned(sk: u64) -> Result<bool, ReadError> {
    read::<i32>(sk, sock_off::owned()).map(|o| o != 0)
}

/// `sk->sk_protocol` (IPPROTO_TCP = 6 for TCP).
#[inline(always)]
pub(crate) fn protocol(sk: u64) -> Result<u16, ReadError> {
    read::<u16>(sk, sock_off::protocol())
}

/// Whether the peer's FIN has arrived (`SOCK_DONE` in `sk_flags`, set by `tcp_fin()`).
#[inline(always)]
pub(crate) fn fin_received(sk: u64) -> Result<bool, ReadError> {
    let flags = read::<u64>(sk, sock_off::flags())?;
    let bit = sock_off::sock_done_bit();
    Ok(bit < 64 && flags >> bit & 1 == 1)
}

/// Application bytes from the socket's own counters: (sent, received).
///
/// Sent: `bytes_acked`, what the peer acknowledged, less the sequence numbers that carry
/// no data: our SYN (counted on active opens, where the SYN-ACK advances snd_una; a child
/// socket starts past its SYN) and our FIN once acked. Not `bytes_sent - bytes_retrans`:
/// on a lossy link those two do not cancel exactly (partial retransmits, probes), and the
/// lossy-link test saw +22% there. For a connection older than tcptrace the direction is
/// unknown, and the SYN is inferred by comparing with the data put on the wire.
/// Received: `bytes_received` (in-order bytes), less the peer's FIN when it arrived.
#[inline(always)]
pub(crate) fn byte_counts(sk: u64, direction: u8, fin_acked: u8) -> Result<(u64, u64), ReadError> {
    use tracer_common::close::{DIRECTION_ACTIVE, DIRECTION_PASSIVE};
    let acked = read::<u64>(sk, sock_off::bytes_acked())?.saturating_sub(u64::from(fin_acked));
    let syn = match direction {
        DIRECTION_ACTIVE => 1,
        DIRECTION_PASSIVE => 0,
        _ => {
            let on_wire = read::<u64>(sk, sock_off::bytes_sent())?.saturating_sub(read::<u64>(sk, sock_off::bytes_retrans())?);
            u64::from(acked > on_wire)
        }
    };
    let fin = u64::from(fin_received(sk)?);
    let received = read::<u64>(sk, sock_off::bytes_received())?.saturating_sub(fin);
    Ok((acked.saturating_sub(syn), received))
}

/// `tcp_sock.total_retrans`.
#[inline(always)]
pub(crate) fn total_retrans(sk: u64) -> Result<u32, ReadError> {
    read::<u32>(sk, sock_off::total_retrans())
}

/// Whether the socket's tail loss probe timer has fired and is being handled now:
/// `icsk_pending` says the armed event is a loss probe, and its time has come (the timer
/// handler returns early, re-arming, when it has not; an ACK that retransmits while the
/// probe is still armed sees a time in the future).
#[inline(always)]
pub(crate) fn loss_probe_due(sk: u64) -> bool {
    let Ok(pending) = read::<u8>(sk, sock_off::icsk_pending()) else { return false };
    if pending != tracer_common::retransmit::ICSK_TIME_LOSS_PROBE {
        return false;
    }
    let Ok(expires) = read::<u64>(sk, sock_off::icsk_timeout()) else { return false };
    // SAFETY: no preconditions.
    let now = unsafe { aya_ebpf::helpers::bpf_jiffies64() };
    // time_after_eq(now, expires), wrap-safe as the kernel compares jiffies.
    now.wrapping_sub(expires) as i64 >= 0
}

/// Smoothed RTT in µs (`srtt_us` holds it shifted left by 3).
#[inline(always)]
pub(crate) fn srtt_us(sk: u64) -> Result<u32, ReadError> {
    read::<u32>(sk, sock_off::srtt_us()).map(|v| v >> 3)
}

/// Reads a kernel pointer at `base + offset`.
#[inline(always)]
pub(crate) fn read_ptr(base: u64, offset: u32) -> Result<u64, ReadError> {
    read::<u64>(base, offset)
}

/// Reads a u32 at `base + offset`.
#[inline(always)]
pub(crate) fn read_u32(base: u64, offset: u32) -> Result<u32, ReadError> {
    read::<u32>(base, offset)
}
