//! Typed getters over `struct sock`, driven by offsets userspace read from BTF.
//! Every read goes through `bpf_probe_read_kernel`, so the same code serves kprobe,
//! fentry and tracepoint programs alike.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{
    addr::{Endpoints, AF_INET, AF_INET6},
    offsets::OFFSET_ABSENT,
};

use crate::globals::sock_offsets;

/// A read failed or the field is absent on this kernel.
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
    read::<u8>(sk, sock_offsets().state)
}

/// `sk->sk_err`, positive errno.
#[inline(always)]
pub(crate) fn err(sk: u64) -> Result<i32, ReadError> {
    read::<i32>(sk, sock_offsets().err)
}

/// Both endpoints as the socket knows them now.
#[inline(always)]
pub(crate) fn endpoints(sk: u64) -> Result<Endpoints, ReadError> {
    let off = sock_offsets();
    let family = read::<u16>(sk, off.family)?;
    let mut ep = Endpoints {
        family,
        sport: u16::from_be(read::<u16>(sk, off.sport)?),
        dport: u16::from_be(read::<u16>(sk, off.dport)?),
        ..Endpoints::default()
    };
    match family {
        AF_INET => {
            let s = read::<[u8; 4]>(sk, off.rcv_saddr)?;
            let d = read::<[u8; 4]>(sk, off.daddr)?;
            ep.saddr[..4].copy_from_slice(&s);
            ep.daddr[..4].copy_from_slice(&d);
        }
        AF_INET6 => {
            ep.saddr = read::<[u8; 16]>(sk, off.v6_rcv_saddr)?;
            ep.daddr = read::<[u8; 16]>(sk, off.v6_daddr)?;
        }
        _ => return Err(ReadError),
    }
    Ok(ep)
}
