//! Types shared by the kernel programs (`tracer-ebpf`) and userspace (`tracer`).
//!
//! Every struct here is `#[repr(C)]` with explicit padding, because the kernel writes
//! them into the ring buffer and userspace reads them back byte for byte. Layout
//! asserts at the bottom of each module keep both sides honest.
#![no_std]

pub mod accept;
pub mod addr;
pub mod close;
pub mod conn;
pub mod connect;
pub mod counters;
pub mod drop;
pub mod event;
pub mod filter;
pub mod kernel;
pub mod offsets;
pub mod reset;
pub mod retransmit;
pub mod state;
#[cfg(feature = "summary")]
pub mod summary;

// No wire version: `tcptrace` embeds the object built from the same tree
// (tracer/bpf/tcptrace.bpf.o, checked fresh by CI), so the two sides cannot disagree.

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, made of integers and byte arrays, with every
    // padding byte spelled out as a field, so any bit pattern is a valid value.
    unsafe impl aya::Pod for crate::filter::Filter {}
    unsafe impl aya::Pod for crate::offsets::SockOffsets {}
    unsafe impl aya::Pod for crate::offsets::StateTpOffsets {}
    unsafe impl aya::Pod for crate::offsets::SyscallTpOffsets {}
    unsafe impl aya::Pod for crate::offsets::LengthTpOffsets {}
    unsafe impl aya::Pod for crate::offsets::TaskOffsets {}
    unsafe impl aya::Pod for crate::offsets::RetransTpOffsets {}
    unsafe impl aya::Pod for crate::offsets::ResetOffsets {}
    unsafe impl aya::Pod for crate::drop::DropKey {}
    unsafe impl aya::Pod for crate::drop::DropCount {}
    unsafe impl aya::Pod for crate::reset::ResetKey {}
    unsafe impl aya::Pod for crate::reset::ResetCount {}
    unsafe impl aya::Pod for crate::filter::Config {}
    unsafe impl aya::Pod for crate::conn::SockInfo {}
    unsafe impl aya::Pod for crate::state::StateCounts {}
}
