//! Installs the build and test prerequisites when they are missing. Idempotent: a machine
//! that has everything pays only a few `which`-style checks.

use std::process::Command;

use anyhow::{Context, Result};

/// Debian packages the tests and the VM harness use.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "iproute2",
    "nftables",
    // A real terminal for the `tcptrace top` test.
    "tmux",
    // Peers the benchmark compares against.
    "libbpf-tools",
    "bpftrace",
    // A real Prometheus scraping `tcptrace serve` (tests/prometheus.rs; promtool checks deploy/).
    "prometheus",
    // A real peer whose server closes with data unread (tests/iperf.rs).
    "iperf3",
];

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

pub(crate) fn run() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        crate::run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
        crate::run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    ensure_ebpf_toolchain()
}

/// What `build-ebpf` needs: nightly with rust-src (for `-Z build-std=core`) and bpf-linker.
pub(crate) fn ensure_ebpf_toolchain() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("nightly toolchain missing (rustup toolchain install nightly)")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let rust_src = std::path::Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !rust_src.exists() {
        eprintln!("xtask: installing rust-src for nightly");
        crate::run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if !have("bpf-linker") {
        eprintln!("xtask: installing bpf-linker (LLVM 22)");
        crate::run_cmd(
            Command::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--version",
                    "0.13.0",
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                ])
                .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
        )?;
    }
    Ok(())
}
