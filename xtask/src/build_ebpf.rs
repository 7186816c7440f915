//! Builds the kernel object and puts it where `tracer` embeds it (`tracer/bpf/`).
//!
//! The object is committed so that `cargo install --path tracer` works on stable Rust with
//! no bpf-linker. The build is deterministic: every absolute path that ends up in debug
//! info is remapped, so the same sources give the same bytes wherever the tree lives, and
//! `--check` (run by `cargo xtask test` under CI) fails when the committed object is stale.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::workspace_root;

/// Where `tracer` embeds the object from (`include_bytes_aligned!`).
pub(crate) fn object_path() -> PathBuf {
    workspace_root().join("tracer/bpf/tcptrace.bpf.o")
}

pub(crate) fn run(check: bool) -> Result<()> {
    crate::setup::ensure_ebpf_toolchain()?;
    let root = workspace_root();
    let target_dir = root.join("target/ebpf");
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let sysroot = Command::new("rustc").args(["+nightly", "--print", "sysroot"]).output()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    // Separator 0x1f: CARGO_ENCODED_RUSTFLAGS keeps spaces inside paths intact.
    let flags = [
        "--cfg=bpf_target_arch=\"x86_64\"".to_string(),
        "-Cdebuginfo=2".to_string(),
        "-Clink-arg=--btf".to_string(),
        format!("--remap-path-prefix={}=/tcptrace", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={sysroot}=/rust"),
    ]
    .join("\x1f");
    let status = Command::new("cargo")
        .current_dir(&root)
        .args([
            "+nightly",
            "build",
            "--release",
            "-p",
            "tracer-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .status()
        .context("cannot run cargo +nightly")?;
    if !status.success() {
        bail!("building the eBPF object failed");
    }
    let built = target_dir.join("bpfel-unknown-none/release/tracer-ebpf");
    let fresh = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let dest = object_path();
    let committed = std::fs::read(&dest).ok();
    if committed.as_deref() == Some(fresh.as_slice()) {
        eprintln!("xtask: {} is up to date ({} bytes)", dest.display(), fresh.len());
        return Ok(());
    }
    std::fs::create_dir_all(dest.parent().context("object path has no parent")?)?;
    std::fs::write(&dest, &fresh)?;
    if check {
        bail!("{} did not match its sources; it has been rebuilt: commit it", dest.display());
    }
    eprintln!("xtask: wrote {} ({} bytes)", dest.display(), fresh.len());
    Ok(())
}
