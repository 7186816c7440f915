//! Both ends of a connection.
//!
//! Byte order, written down once: addresses are kept as the kernel stores them
//! (network order; an IPv4 address in the first 4 bytes, the rest zero); ports are
//! converted to host order in the kernel so userspace never swaps anything.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Endpoints {
    /// Local address.
    pub saddr: [u8; 16],
    /// Remote address.
    pub daddr: [u8; 16],
    /// Local port, host order.
    pub sport: u16,
    /// Remote port, host order.
    pub dport: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Keeps the struct a multiple of 4 bytes with no hidden padding.
    pub _pad: u16,
}

const _: () = assert!(core::mem::size_of::<Endpoints>() == 40);
