//! Typed getters over `struct sock`, driven by offsets userspace read from BTF.
//!
//! Two ways to read, chosen per program at compile time (`Access`):
//! - `Probe`: `bpf_probe_read_kernel`, for every program type (kprobe, raw and classic
//!   tracepoints), where `sk` is a plain number to the verifier;
//! - `Direct`: plain loads, for BTF-typed programs (`tp_btf`, fentry), where the verifier
//!   knows `sk` as a `struct sock *` and makes each load fault-safe. A helper call costs
//!   several times a load, and a connection takes about fifty reads.
//!
//! A direct load is checked by the verifier against the kernel's own `struct sock`, at an
//! offset it must know: the offsets live in a frozen read-only global, which the verifier
//! reads as constants (and an absent field's branch is dead code to it).

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{
    addr::Endpoints,
    kernel::{AF_INET, AF_INET6},
    offsets::OFFSET_ABSENT,
};

use crate::globals::sock_off;

/// A read failed or the field is absent on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadError;

/// The base to read a socket's `struct tcp_sock` fields from (`tcp_sock`): found once per
/// event and handed to each getter of such a field, as Direct finds it by a helper call.
#[derive(Clone, Copy)]
pub(crate) struct TcpSock(u64);

/// How a program reads kernel memory (see the module's comment).
pub(crate) trait Access {
    /// The `T` at `addr`, a field of a socket.
    fn load<T: Copy>(addr: u64) -> Result<T, ReadError>;
    /// The 16 bytes at `addr` (an IPv6 address), into `dst` with no copy on the stack.
    fn load_16(addr: u64, dst: &mut [u8; 16]) -> Result<(), ReadError>;
    /// The base to read `struct tcp_sock` fields of `sk` from: a direct load beyond
    /// `struct sock` needs the verifier to know the socket is a TCP one.
    fn tcp_sock(sk: u64) -> Result<TcpSock, ReadError>;
}

/// Reads through `bpf_probe_read_kernel`: any program type.
pub(crate) enum Probe {}

impl Access for Probe {
    #[inline(always)]
    fn load<T: Copy>(addr: u64) -> Result<T, ReadError> {
        // SAFETY: bpf_probe_read_kernel checks the address; a bad one returns an error.
        unsafe { bpf_probe_read_kernel(addr as *const T) }.map_err(|_| ReadError)
    }

    #[inline(always)]
    fn load_16(addr: u64, dst: &mut [u8; 16]) -> Result<(), ReadError> {
        // SAFETY: bpf_probe_read_kernel_buf checks the source address.
        unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_buf(addr as *const u8, dst) }
            .map_err(|_| ReadError)
    }

    #[inline(always)]
    fn tcp_sock(sk: u64) -> Result<TcpSock, ReadError> {
        Ok(TcpSock(sk))
    }
}

/// Plain loads: only from pointers the verifier knows by BTF type: a BTF-typed program's
/// `sk` (`tp_btf`, fentry, fexit), the typed current task.
pub(crate) enum Direct {}

impl Access for Direct {
    #[inline(always)]
    fn load<T: Copy>(addr: u64) -> Result<T, ReadError> {
        // SAFETY: `addr` is a typed pointer plus a field's offset; the verifier
        // checks the access against BTF and turns it into a load that cannot fault.
        // Volatile: one load of exactly this size, never merged with its neighbours.
        Ok(unsafe { core::ptr::read_volatile(addr as *const T) })
    }

    #[inline(always)]
    fn load_16(addr: u64, dst: &mut [u8; 16]) -> Result<(), ReadError> {
        // Two words: each a load the verifier can match to the address's array.
        let lo = Self::load::<u64>(addr)?;
        let hi = Self::load::<u64>(addr.wrapping_add(8))?;
        let words = dst.as_mut_ptr().cast::<u64>();
        // SAFETY: sixteen bytes, written as two unaligned words.
        unsafe {
            core::ptr::write_unaligned(words, lo);
            core::ptr::write_unaligned(words.add(1), hi);
        }
        Ok(())
    }

    #[inline(always)]
    fn tcp_sock(sk: u64) -> Result<TcpSock, ReadError> {
        // SAFETY: the helper checks the socket's type; NULL when it is not TCP.
        let tp = unsafe { aya_ebpf::helpers::bpf_skc_to_tcp_sock(sk as *mut core::ffi::c_void) };
        if tp.is_null() {
            Err(ReadError)
        } else {
            Ok(TcpSock(tp as u64))
        }
    }
}

/// The address of the field at `offset` in `base`, unless the field is absent here.
#[inline(always)]
fn field(base: u64, offset: u32) -> Result<u64, ReadError> {
    if offset == OFFSET_ABSENT {
        return Err(ReadError);
    }
    Ok(base.wrapping_add(u64::from(offset)))
}

#[inline(always)]
fn read<A: Access, T: Copy>(base: u64, offset: u32) -> Result<T, ReadError> {
    A::load::<T>(field(base, offset)?)
}

/// `sk` as a `struct tcp_sock`, for the getters of its fields (see `TcpSock`).
#[inline(always)]
pub(crate) fn tcp_sock<A: Access>(sk: u64) -> Result<TcpSock, ReadError> {
    A::tcp_sock(sk)
}

/// `sk->sk_state` (the `TCP_*` state before a transition, when read at its start).
#[inline(always)]
pub(crate) fn state<A: Access>(sk: u64) -> Result<u8, ReadError> {
    read::<A, u8>(sk, sock_off::state())
}

/// `sk->sk_err`, positive errno.
#[inline(always)]
pub(crate) fn err<A: Access>(sk: u64) -> Result<i32, ReadError> {
    read::<A, i32>(sk, sock_off::err())
}

/// Both endpoints as the socket knows them now.
#[inline(always)]
pub(crate) fn endpoints<A: Access>(sk: u64) -> Result<Endpoints, ReadError> {
    let mut ep = Endpoints::default();
    endpoints_into::<A>(sk, &mut ep)?;
    Ok(ep)
}

/// Reads both endpoints straight into `out` (which may be a ring buffer reservation), with
/// no copies on the stack; every field of `out` is written.
#[inline(always)]
pub(crate) fn endpoints_into<A: Access>(sk: u64, out: &mut Endpoints) -> Result<(), ReadError> {
    // SAFETY: `out` is a valid, aligned `Endpoints`.
    unsafe { crate::mem::zero(out as *mut Endpoints) };
    out.family = read::<A, u16>(sk, sock_off::family())?;
    // `inet_sport` is in `struct inet_sock`, beyond `struct sock` (`skc_num` is no
    // substitute: it is zeroed when the port is released, before CLOSE is announced).
    out.sport = u16::from_be(read::<A, u16>(A::tcp_sock(sk)?.0, sock_off::sport())?);
    out.dport = u16::from_be(read::<A, u16>(sk, sock_off::dport())?);
    addresses_into::<A>(sk, out)
}

/// The two addresses of `__sk_common`, as `out.family` says to read them.
#[inline(always)]
fn addresses_into<A: Access>(sk: u64, out: &mut Endpoints) -> Result<(), ReadError> {
    match out.family {
        AF_INET => {
            // Network order in memory: the bytes stored as they lie, in the first four.
            let saddr = read::<A, u32>(sk, sock_off::rcv_saddr())?;
            let daddr = read::<A, u32>(sk, sock_off::daddr())?;
            // SAFETY: both arrays hold 16 bytes; unaligned stores of their first four.
            unsafe {
                core::ptr::write_unaligned(out.saddr.as_mut_ptr().cast::<u32>(), saddr);
                core::ptr::write_unaligned(out.daddr.as_mut_ptr().cast::<u32>(), daddr);
            }
        }
        AF_INET6 => {
            read_16::<A>(sk, sock_off::v6_rcv_saddr(), &mut out.saddr)?;
            read_16::<A>(sk, sock_off::v6_daddr(), &mut out.daddr)?;
        }
        _ => return Err(ReadError),
    }
    Ok(())
}

/// Both endpoints of a request socket (a listener's half-open connection): the fields of
/// `__sk_common` alone, its local port from `skc_num` (see `SockOffsets::num`). Every
/// field of `out` is written.
#[inline(always)]
pub(crate) fn request_endpoints_into<A: Access>(
    req: u64,
    out: &mut Endpoints,
) -> Result<(), ReadError> {
    // SAFETY: `out` is a valid, aligned `Endpoints`.
    unsafe { crate::mem::zero(out as *mut Endpoints) };
    out.family = read::<A, u16>(req, sock_off::family())?;
    out.sport = read::<A, u16>(req, sock_off::num())?;
    out.dport = u16::from_be(read::<A, u16>(req, sock_off::dport())?);
    addresses_into::<A>(req, out)
}

/// The inode number of `sk`'s network namespace (a request socket's too: its
/// `sock_common` is at a socket's offsets), 0 where it cannot be read.
#[inline(always)]
pub(crate) fn netns<A: Access>(sk: u64) -> u32 {
    match read::<A, u64>(sk, sock_off::net()) {
        Ok(net) if net != 0 => net_inum::<A>(net),
        _ => 0,
    }
}

/// The inode number of `struct net` at `net`, 0 where unreadable.
#[inline(always)]
pub(crate) fn net_inum<A: Access>(net: u64) -> u32 {
    read::<A, u32>(net, sock_off::net_inum()).unwrap_or(0)
}

/// The remote port of any kind of socket (`skc_dport`: full, time-wait or request),
/// host order.
#[inline(always)]
pub(crate) fn remote_port<A: Access>(sk: u64) -> Result<u16, ReadError> {
    read::<A, u16>(sk, sock_off::dport()).map(u16::from_be)
}

/// `request_sock.num_retrans`: the SYN-ACKs a request socket resent before this one.
#[inline(always)]
pub(crate) fn request_retransmits<A: Access>(req: u64) -> Result<u8, ReadError> {
    read::<A, u8>(req, sock_off::req_num_retrans())
}

#[inline(always)]
fn read_16<A: Access>(sk: u64, offset: u32, dst: &mut [u8; 16]) -> Result<(), ReadError> {
    A::load_16(field(sk, offset)?, dst)
}

/// Whether a task owns the socket (`sk->sk_lock.owned`): true in process context (connect,
/// close, backlog processing), false for changes made in softirq.
#[inline(always)]
pub(crate) fn owned<A: Access>(sk: u64) -> Result<bool, ReadError> {
    read::<A, i32>(sk, sock_off::owned()).map(|o| o != 0)
}

/// Whether `sk->sk_socket` is set: a socket made by socket(), or an accepted one, until
/// its owner closes it; a listener's child has none until it is accepted.
#[inline(always)]
pub(crate) fn has_socket<A: Access>(sk: u64) -> Result<bool, ReadError> {
    read::<A, u64>(sk, sock_off::socket()).map(|s| s != 0)
}

/// `sk->sk_protocol` (IPPROTO_TCP = 6 for TCP).
#[inline(always)]
pub(crate) fn protocol<A: Access>(sk: u64) -> Result<u16, ReadError> {
    read::<A, u16>(sk, sock_off::protocol())
}

/// Whether the peer's FIN has arrived (`SOCK_DONE` in `sk_flags`, set by `tcp_fin()`).
#[inline(always)]
pub(crate) fn fin_received<A: Access>(sk: u64) -> Result<bool, ReadError> {
    let flags = read::<A, u64>(sk, sock_off::flags())?;
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
pub(crate) fn byte_counts<A: Access>(
    sk: u64,
    tp: TcpSock,
    direction: u8,
    fin_acked: u8,
) -> Result<(u64, u64), ReadError> {
    use tracer_common::close::{DIRECTION_ACTIVE, DIRECTION_PASSIVE};
    let tp = tp.0;
    let acked = read::<A, u64>(tp, sock_off::bytes_acked())?.saturating_sub(u64::from(fin_acked));
    let syn = match direction {
        DIRECTION_ACTIVE => 1,
        DIRECTION_PASSIVE => 0,
        _ => {
            let on_wire = read::<A, u64>(tp, sock_off::bytes_sent())?
                .saturating_sub(read::<A, u64>(tp, sock_off::bytes_retrans())?);
            u64::from(acked > on_wire)
        }
    };
    let fin = u64::from(fin_received::<A>(sk)?);
    let received = read::<A, u64>(tp, sock_off::bytes_received())?.saturating_sub(fin);
    Ok((acked.saturating_sub(syn), received))
}

/// `tcp_sock.total_retrans`.
#[inline(always)]
pub(crate) fn total_retrans<A: Access>(tp: TcpSock) -> Result<u32, ReadError> {
    read::<A, u32>(tp.0, sock_off::total_retrans())
}

/// Whether the socket's tail loss probe timer has fired and is being handled now:
/// `icsk_pending` says the armed event is a loss probe, and its time has come (the timer
/// handler returns early, re-arming, when it has not; an ACK that retransmits while the
/// probe is still armed sees a time in the future). An ACK handled after that time but
/// before the timer runs can start a recovery and retransmit, timer still due: the
/// congestion state tells it apart, where BTF gives it (see `loss_probe_state`).
#[inline(always)]
pub(crate) fn loss_probe_due<A: Access>(sk: u64) -> bool {
    let Ok(TcpSock(icsk)) = A::tcp_sock(sk) else { return false };
    let Ok(pending) = read::<A, u8>(icsk, sock_off::icsk_pending()) else { return false };
    if pending != tracer_common::retransmit::ICSK_TIME_LOSS_PROBE {
        return false;
    }
    let Ok(expires) = read::<A, u64>(icsk, sock_off::icsk_timeout()) else { return false };
    // SAFETY: no preconditions.
    let now = unsafe { aya_ebpf::helpers::bpf_jiffies64() };
    // time_after_eq(now, expires), wrap-safe as the kernel compares jiffies.
    now.wrapping_sub(expires) as i64 >= 0 && loss_probe_state::<A>(icsk)
}

/// Whether the congestion state allows a tail loss probe: the kernel schedules one only in
/// the Open or CWR state (`tcp_schedule_loss_probe`), and a retransmission that an ACK
/// makes is in Recovery or Loss. True where the kernel's BTF lacks the field.
#[inline(always)]
fn loss_probe_state<A: Access>(icsk: u64) -> bool {
    // `enum tcp_ca_state`, include/uapi/linux/tcp.h (also `tcpi_ca_state`).
    use tracer_common::kernel::{TCP_CA_CWR, TCP_CA_OPEN};
    // Absent (an error here) or unreadable: the timer alone decides.
    let Ok(byte) = read::<A, u8>(icsk, sock_off::icsk_ca_state()) else { return true };
    // Masks as u32: the width is at most 8 (checked at load).
    let mask = (1u32 << sock_off::icsk_ca_state_bits()) - 1;
    let state = ((u32::from(byte) >> sock_off::icsk_ca_state_shift()) & mask) as u8;
    state == TCP_CA_OPEN || state == TCP_CA_CWR
}

/// Smoothed RTT in µs (`srtt_us` holds it shifted left by 3).
#[inline(always)]
pub(crate) fn srtt_us<A: Access>(tp: TcpSock) -> Result<u32, ReadError> {
    read::<A, u32>(tp.0, sock_off::srtt_us()).map(|v| v >> 3)
}

/// Reads a kernel pointer at `base + offset`, of any struct `A` can read (`Direct` only
/// where `base` is a typed pointer the verifier knows).
#[inline(always)]
pub(crate) fn read_ptr<A: Access>(base: u64, offset: u32) -> Result<u64, ReadError> {
    read::<A, u64>(base, offset)
}

/// Reads a u32 at `base + offset` (as `read_ptr`).
#[inline(always)]
pub(crate) fn read_u32<A: Access>(base: u64, offset: u32) -> Result<u32, ReadError> {
    read::<A, u32>(base, offset)
}

/// How the connection ended (see `tracer_common::close::Ending`), read as `sk` reaches
/// CLOSE: every field of `out` but `old_state`, which the caller has set, is written.
///
/// Our FIN is in `write_seq` once the socket left ESTABLISHED or CLOSE_WAIT for a
/// closing state (FIN_WAIT1, CLOSING, LAST_ACK and after); the peer's FIN is in
/// `rcv_nxt` once it arrived (`SOCK_DONE`), and in `copied_seq` once the application read
/// the end of the stream, so "less the FIN" is a saturating subtraction either way.
#[inline(always)]
pub(crate) fn ending_into<A: Access>(
    sk: u64,
    tp: TcpSock,
    fin_acked: u8,
    out: &mut tracer_common::close::Ending,
) {
    use tracer_common::close::{ENDING_LINGER_ZERO, ENDING_READ, ENDING_ZERO_WINDOW};
    use tracer_common::kernel::{TCP_CLOSING, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK};
    out.err = err::<A>(sk).unwrap_or(0);
    out.retransmits = read::<A, u8>(tp.0, sock_off::icsk_retransmits()).unwrap_or(0);
    out.probes_out = read::<A, u8>(tp.0, sock_off::icsk_probes_out()).unwrap_or(0);
    let our_fin_queued = matches!(
        i32::from(out.old_state),
        TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSING | TCP_LAST_ACK
    );
    let our_fin_unacked = u32::from(our_fin_queued && fin_acked == 0);
    // Written straight into `out`, one read at a time: this runs at the end of the state
    // hook's deepest call chain, whose stack frames together must stay within 512 bytes.
    let mut flags =
        if sequence_gaps_into::<A>(sk, tp, our_fin_unacked, out).is_ok() { ENDING_READ } else { 0 };
    if read::<A, u32>(tp.0, sock_off::snd_wnd()) == Ok(0) {
        flags |= ENDING_ZERO_WINDOW;
    }
    if let Ok(sk_flags) = read::<A, u64>(sk, sock_off::flags()) {
        let bit = sock_off::sock_linger_bit();
        let linger = bit < 64 && sk_flags >> bit & 1 == 1;
        if linger && read::<A, u64>(sk, sock_off::lingertime()) == Ok(0) {
            flags |= ENDING_LINGER_ZERO;
        }
    }
    out.flags = flags;
}

/// `out.unacked_bytes` and `out.unread_bytes` (see `ending_into`); both 0 on an error.
#[inline(always)]
fn sequence_gaps_into<A: Access>(
    sk: u64,
    tp: TcpSock,
    our_fin_unacked: u32,
    out: &mut tracer_common::close::Ending,
) -> Result<(), ReadError> {
    out.unacked_bytes = 0;
    out.unread_bytes = 0;
    let write_seq = read::<A, u32>(tp.0, sock_off::write_seq())?;
    let snd_una = read::<A, u32>(tp.0, sock_off::snd_una())?;
    let unacked = write_seq.wrapping_sub(snd_una).saturating_sub(our_fin_unacked);
    let rcv_nxt = read::<A, u32>(tp.0, sock_off::rcv_nxt())?;
    let copied_seq = read::<A, u32>(tp.0, sock_off::copied_seq())?;
    let peer_fin = u32::from(fin_received::<A>(sk)?);
    out.unacked_bytes = unacked;
    out.unread_bytes = rcv_nxt.wrapping_sub(copied_seq).saturating_sub(peer_fin);
    Ok(())
}
