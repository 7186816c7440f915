//! tcptrace's kernel programs.
//!
//! Each event lives in its own folder with one file per hook family (fentry, kprobe,
//! tracepoint); those files hold one-line entry points, and the folder's `mod.rs` holds the
//! logic they share, so the families differ only in how they get their arguments.
//! Userspace picks one family per hook at run time (see `tracer/src/loader/family.rs`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `asm!` for the atomic add of `emit::count`: core has no fetch_add on this target.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code, unused_imports))]
#![deny(clippy::panic, clippy::indexing_slicing)]
// Map keys and values are passed by reference on purpose: by value, a 152-byte entry would
// be copied onto the 512-byte BPF stack first.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(target_arch = "bpf")]
mod accept;
#[cfg(target_arch = "bpf")]
mod bytes;
#[cfg(target_arch = "bpf")]
mod calls;
#[cfg(target_arch = "bpf")]
mod close;
#[cfg(target_arch = "bpf")]
mod connect;
#[cfg(target_arch = "bpf")]
mod drop;
#[cfg(target_arch = "bpf")]
mod emit;
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
