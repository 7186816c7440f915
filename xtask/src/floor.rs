//! `cargo xtask floor`: the benchmark's empty-program floor. Loads the empty programs of
//! `tracer-ebpf/src/floor.rs` from the object tcptrace embeds, attaches them where and as
//! tcptrace's default events attach on a tracepoint-only kernel (two BTF-typed tracepoint
//! programs on the state change, one on retransmits, a classic tracepoint program on the
//! accept syscalls), and holds them until SIGINT or SIGTERM.

use anyhow::{Context, Result};
use aya::programs::{BtfTracePoint, TracePoint};

use crate::workspace_root;

pub(crate) fn run() -> Result<()> {
    let object = workspace_root().join("tracer/bpf/tcptrace.bpf.o");
    let mut ebpf =
        aya::Ebpf::load_file(&object).with_context(|| format!("loading {}", object.display()))?;
    // Attached links live as long as `ebpf`.
    let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF")?;
    for (name, point) in [
        ("tt_floor_btf", "inet_sock_set_state"),
        ("tt_floor_btf2", "inet_sock_set_state"),
        ("tt_floor_rtx", "tcp_retransmit_skb"),
    ] {
        let p: &mut BtfTracePoint =
            ebpf.program_mut(name).with_context(|| format!("{name} missing"))?.try_into()?;
        p.load(point, &btf)?;
        p.attach().with_context(|| format!("attaching {name}"))?;
    }
    let p: &mut TracePoint =
        ebpf.program_mut("tt_floor_tp").context("tt_floor_tp missing")?.try_into()?;
    p.load()?;
    for (category, name) in [("syscalls", "sys_exit_accept4"), ("syscalls", "sys_exit_accept")] {
        p.attach(category, name)
            .with_context(|| format!("attaching tt_floor_tp to {category}:{name}"))?;
    }
    eprintln!("xtask: floor attached");
    wait_for_signal()
}

/// Blocks until SIGINT or SIGTERM arrives.
fn wait_for_signal() -> Result<()> {
    // SAFETY: plain libc signal-set calls on a local set; both signals are blocked first so
    // that sigwait, not the default action, receives them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        anyhow::ensure!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0,
            "blocking signals failed"
        );
        let mut signal = 0;
        anyhow::ensure!(libc::sigwait(&set, &mut signal) == 0, "sigwait failed");
    }
    Ok(())
}
