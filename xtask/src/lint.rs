//! `cargo xtask lint`: the habits CI enforces, run first by `cargo xtask test`:
//! rustfmt's `--check` (style in rustfmt.toml), clippy with `-D warnings` on the host
//! crates and their tests, and clippy on the eBPF crate for its own target, where its
//! `deny(clippy::panic, clippy::indexing_slicing)` matter.

use std::process::Command;

use anyhow::Result;

use crate::{run_cmd, workspace_root};

pub(crate) fn run() -> Result<()> {
    ensure_components()?;
    let root = workspace_root();
    eprintln!("xtask: lint: rustfmt --check");
    run_cmd(Command::new("cargo").current_dir(&root).args(["fmt", "--all", "--check"]))?;
    eprintln!("xtask: lint: clippy (host crates, tests included)");
    run_cmd(Command::new("cargo").current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("xtask: lint: clippy (eBPF crate, bpfel-unknown-none)");
    // Its own target directory: build-ebpf's flags differ, and sharing would rebuild both.
    run_cmd(
        Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "clippy", "--release", "-p", "tracer-ebpf"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .arg("--target-dir")
            .arg(root.join("target/ebpf-clippy"))
            .args(["--", "-D", "warnings"])
            .env("CARGO_ENCODED_RUSTFLAGS", "--cfg=bpf_target_arch=\"x86_64\"")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTFLAGS"),
    )
}

/// rustfmt and clippy on the default toolchain, clippy on nightly (CI's nightly is a minimal
/// profile).
fn ensure_components() -> Result<()> {
    crate::setup::ensure_ebpf_toolchain()?;
    for (toolchain, components) in
        [(None, &["rustfmt", "clippy"][..]), (Some("nightly"), &["clippy"])]
    {
        let mut list = Command::new("rustup");
        list.args(["component", "list", "--installed"]);
        let mut add = Command::new("rustup");
        add.args(["component", "add"]);
        if let Some(toolchain) = toolchain {
            list.args(["--toolchain", toolchain]);
            add.args(["--toolchain", toolchain]);
        }
        let installed = list.output()?;
        let installed = String::from_utf8_lossy(&installed.stdout);
        for component in components {
            if !installed.lines().any(|line| line.starts_with(component)) {
                eprintln!("xtask: installing {component} ({})", toolchain.unwrap_or("default"));
                run_cmd(Command::new("rustup").args(add.get_args()).arg(component))?;
            }
        }
    }
    Ok(())
}
