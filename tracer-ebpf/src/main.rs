//! tcptrace's kernel programs.
//!
//! # Layers
//! Each module imports only from layers below its own; `cargo xtask test` checks it
//! (xtask/src/kernel_layers.rs reads this list):
//!
//! 1. `maps`, `mem`: every map and the kernel-only values it holds; zeroing memory.
//! 2. `globals`: what user space writes before load (configuration, filter, offsets), and
//!    `ARMED`, which gates every program.
//! 3. `sock`: fields of `struct sock` and friends, at offsets read from BTF.
//! 4. `skb`, `emit`: TCP/IP headers from an skb; counters, event headers, filters, the ring
//!    buffer.
//! 5. `socks`, `calls`: the per-connection entry in `SOCKS`; a call's argument carried from
//!    its entry to its return.
//! 6. `event`: the events more than one hook sends (connect results, close).
//! 7. `state`, `connect`, `accept`, `retransmit`, `bytes`, `reset`, `drop`: the hooks, one
//!    folder each, named as the loader's `Hook` (tracer/src/loader/family.rs), with one file
//!    per family (`fentry.rs`, `kprobe.rs`, `tracepoint.rs`) holding the entry points and
//!    `mod.rs` the logic they share; the families differ only in how they get arguments.
//!
//! `floor` stands apart: the benchmark's empty programs.
//!
//! # Hooks
//! Which folder sends each event (`tcptrace --list-probes` prints where each family hooks
//! in; user space picks a family per hook at run time):
//!
//! | event      | hooks                                                                   |
//! |------------|-------------------------------------------------------------------------|
//! | connect    | `state` (the handshake's end: `event::connect`), `connect` (failures before the SYN; fentry and kprobe only) |
//! | accept     | `accept`                                                                |
//! | state      | `state`                                                                 |
//! | close      | `state` at CLOSE (`event::close`); `bytes` at the socket's destruction with `--bytes calls`; `reset` for the kernel's reason (`Config::close_reasons`) |
//! | retransmit | `retransmit`                                                            |
//! | reset      | `reset`                                                                 |
//! | drop       | `drop` (counted in a map, swept by user space: never a ring buffer event) |
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `asm!` for the atomic add of `emit::count`: core has no fetch_add on this target.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code, unused_imports))]
#![deny(clippy::panic, clippy::indexing_slicing)]
// Map keys and values are passed by reference on purpose: by value, a 160-byte entry would
// be copied onto the 512-byte BPF stack first.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(target_arch = "bpf")]
mod accept;
#[cfg(target_arch = "bpf")]
mod bytes;
#[cfg(target_arch = "bpf")]
mod calls;
#[cfg(target_arch = "bpf")]
mod connect;
#[cfg(target_arch = "bpf")]
mod drop;
#[cfg(target_arch = "bpf")]
mod emit;
#[cfg(target_arch = "bpf")]
mod event;
#[cfg(target_arch = "bpf")]
mod floor;
#[cfg(target_arch = "bpf")]
mod globals;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod mem;
#[cfg(target_arch = "bpf")]
mod reset;
#[cfg(target_arch = "bpf")]
mod retransmit;
#[cfg(target_arch = "bpf")]
mod skb;
#[cfg(target_arch = "bpf")]
mod sock;
#[cfg(target_arch = "bpf")]
mod socks;
#[cfg(target_arch = "bpf")]
mod state;

/// Built for the host only so `cargo check --workspace` stays green; the real object is
/// built for `bpfel-unknown-none` by `cargo xtask build-ebpf`.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

/// No code path can panic (clippy denies `panic` and indexing here, and every fallible call
/// returns a `Result`); the verifier would reject a reachable loop anyway.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
