//! A TCP segment's addresses and ports, read from its `struct sk_buff`: the IP header at
//! `head + network_header` (offsets from BTF), the TCP header after it. Header layouts
//! from `network-types`. Every read goes through `bpf_probe_read_kernel`: these hooks
//! see buffers of every kind, and run rarely enough (resets, drops) for the helper.

use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};
use tracer_common::{
    addr::Endpoints,
    kernel::{AF_INET, AF_INET6, IPPROTO_TCP},
    offsets::OFFSET_ABSENT,
};

use crate::{
    globals::reset_off,
    sock::{Access, Probe, ReadError},
};

/// The field at `offset` in the `sk_buff` at `skb`, unless this kernel lacks it.
#[inline(always)]
fn field(skb: u64, offset: u32) -> Result<u64, ReadError> {
    if offset == OFFSET_ABSENT {
        return Err(ReadError);
    }
    Ok(skb.wrapping_add(u64::from(offset)))
}

/// `skb->sk`: the socket the segment belongs to, 0 where none is known.
#[inline(always)]
pub(crate) fn sock(skb: u64) -> u64 {
    field(skb, reset_off::skb_sk()).and_then(Probe::load::<u64>).unwrap_or(0)
}

/// The network namespace of the device `skb` is on (its inode number), 0 where unknown.
#[inline(always)]
pub(crate) fn netns(skb: u64) -> u32 {
    let net = field(skb, reset_off::skb_dev())
        .and_then(Probe::load::<u64>)
        .and_then(|dev| field(dev, reset_off::dev_net()))
        .and_then(Probe::load::<u64>);
    match net {
        Ok(net) if net != 0 => crate::sock::net_inum::<Probe>(net),
        _ => 0,
    }
}

/// The ends of the TCP segment in `skb` into `out`, as it carries them: `saddr`/`sport`
/// its source. An error for anything but TCP over IPv4 or IPv6 (IPv6 extension headers
/// included: not followed).
#[inline(always)]
pub(crate) fn segment_into(skb: u64, out: &mut Endpoints) -> Result<(), ReadError> {
    let head = Probe::load::<u64>(field(skb, reset_off::skb_head())?)?;
    let network = Probe::load::<u16>(field(skb, reset_off::skb_network_header())?)?;
    let ip = head.wrapping_add(u64::from(network));
    let first = Probe::load::<u8>(ip)?;
    let tcp = match first >> 4 {
        4 => {
            if Probe::load::<u8>(ip + core::mem::offset_of!(Ipv4Hdr, proto) as u64)? != IPPROTO_TCP
            {
                return Err(ReadError);
            }
            out.family = AF_INET;
            let src = Probe::load::<[u8; 4]>(ip + core::mem::offset_of!(Ipv4Hdr, src_addr) as u64)?;
            let dst = Probe::load::<[u8; 4]>(ip + core::mem::offset_of!(Ipv4Hdr, dst_addr) as u64)?;
            // SAFETY: both arrays hold 16 bytes; unaligned stores of their first four.
            unsafe {
                core::ptr::write_unaligned(out.saddr.as_mut_ptr().cast::<[u8; 4]>(), src);
                core::ptr::write_unaligned(out.daddr.as_mut_ptr().cast::<[u8; 4]>(), dst);
            }
            // The header's length, in 32-bit words, is the low nibble of its first byte.
            ip + u64::from(first & 0x0f) * 4
        }
        6 => {
            if Probe::load::<u8>(ip + core::mem::offset_of!(Ipv6Hdr, next_hdr) as u64)?
                != IPPROTO_TCP
            {
                return Err(ReadError);
            }
            out.family = AF_INET6;
            Probe::load_16(ip + core::mem::offset_of!(Ipv6Hdr, src_addr) as u64, &mut out.saddr)?;
            Probe::load_16(ip + core::mem::offset_of!(Ipv6Hdr, dst_addr) as u64, &mut out.daddr)?;
            ip + core::mem::size_of::<Ipv6Hdr>() as u64
        }
        _ => return Err(ReadError),
    };
    out.sport = u16::from_be_bytes(Probe::load::<[u8; 2]>(
        tcp + core::mem::offset_of!(TcpHdr, source) as u64,
    )?);
    out.dport = u16::from_be_bytes(Probe::load::<[u8; 2]>(
        tcp + core::mem::offset_of!(TcpHdr, dest) as u64,
    )?);
    Ok(())
}

/// `ends` turned round: this host's end first for a segment it received.
#[inline(always)]
pub(crate) fn turn_round(ends: &mut Endpoints) {
    core::mem::swap(&mut ends.saddr, &mut ends.daddr);
    core::mem::swap(&mut ends.sport, &mut ends.dport);
}
