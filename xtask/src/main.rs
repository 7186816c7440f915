//! Developer tasks: `cargo xtask setup | build-ebpf | lint | test | bench | vm-exec`.
//! Each task does its own set-up, so one command works on a fresh machine.

mod bench;
mod bpf_stats;
mod build_ebpf;
#[cfg(test)]
mod deploy_files;
mod floor;
#[cfg(test)]
mod kernel_layers;
mod lint;
mod setup;
mod test;
mod vm;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "tcptrace's build, run and test helpers")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building the kernel object needs (rust-src, bpf-linker, apt packages).
    Setup,
    /// Build the eBPF object into tracer/bpf/ (the file `tcptrace` embeds).
    BuildEbpf {
        /// Fail if the rebuilt object differs from the committed one.
        #[arg(long)]
        check: bool,
    },
    /// Check formatting and run clippy (host crates, and the eBPF crate for its target).
    Lint,
    /// Run every test: lint, unit, host kernel, and Debian 6.1 under QEMU.
    Test(test::Options),
    /// Measure what tracing costs against untraced, an empty program, tcplife and bpftrace.
    Bench(bench::Options),
    /// The benchmark's floor: empty programs on tcptrace's hooks, held until SIGINT.
    #[command(hide = true)]
    Floor,
    /// Boot Debian 6.1 under QEMU with a debug build of tcptrace at /tt/tcptrace and run
    /// one shell command there (e.g. `cargo xtask vm-exec '/tt/tcptrace --list-probes'`).
    VmExec { command: String },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::BuildEbpf { check } => build_ebpf::run(check),
        Task::Lint => lint::run(),
        Task::Test(opts) => test::run(&opts),
        Task::Bench(opts) => bench::run(&opts),
        Task::Floor => floor::run(),
        Task::VmExec { command } => test::vm_exec(&command),
    };
    if let Err(err) = result {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// Runs a command, failing with its name when it fails.
pub(crate) fn run_cmd(cmd: &mut std::process::Command) -> Result<()> {
    let status = cmd.status().map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}
