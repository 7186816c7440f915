//! `cargo xtask test`: everything, in order: the eBPF object rebuilt from its sources (and,
//! under CI, checked against the committed one); unit tests; the integration tests on the
//! host kernel under `HOST_FAMILIES` (auto, and raw tracepoints: the families the 6.18
//! development machines allow); the same integration tests in Debian's 6.1 kernel under
//! QEMU once per family.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

use crate::{vm, workspace_root};

/// Test binaries the VM does not run: the terminal test needs tmux, which the VM's busybox
/// world lacks; what it reads from the kernel, tests/top.rs checks there on every family.
const HOST_ONLY: [&str; 1] = ["tui"];

/// Families the host kernel (6.18, no kprobes, no trampolines) runs the tests under.
const HOST_FAMILIES: [&str; 2] = ["auto", "raw-tracepoint"];

#[derive(clap::Args)]
pub(crate) struct Options {
    /// Skip the VM (for a quick local loop; CI always runs it).
    #[arg(long)]
    no_vm: bool,
    /// Skip the unit and host-kernel tests (to iterate on the VM alone).
    #[arg(long)]
    vm_only: bool,
    /// Run only these integration test binaries (comma-separated, like `serve,prometheus`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Run only the tests whose names contain this (passed to every test binary, host and
    /// VM), like `accepts_by_many`; the unit tests and the benchmark's short mode are
    /// skipped. A filter that matches no test runs none, and passes.
    #[arg(long, value_parser = test_name_filter)]
    filter: Option<String>,
}

/// A filter goes into the VM's shell script unquoted: letters, digits, `_` and `:` only.
fn test_name_filter(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?}: a test name filter takes letters, digits, '_' and ':'"))
    }
}

/// Builds the integration test binaries and returns their paths.
fn integration_binaries() -> Result<Vec<PathBuf>> {
    let out = Command::new("cargo")
        .current_dir(workspace_root())
        .args(["test", "-p", "tracer", "--tests", "--no-run", "--message-format=json"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    anyhow::ensure!(out.status.success(), "building the tests failed");
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let is_integration =
            msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
        if msg["reason"] == "compiler-artifact" && is_integration {
            if let Some(exe) = msg["executable"].as_str() {
                bins.push(PathBuf::from(exe));
            }
        }
    }
    anyhow::ensure!(!bins.is_empty(), "no integration test binaries were built");
    Ok(bins)
}

pub(crate) fn run(opts: &Options) -> Result<()> {
    crate::setup::run()?;
    // The cheapest failure first: style and clippy take seconds, the VM half an hour.
    crate::lint::run()?;
    let ci = std::env::var_os("CI").is_some();
    crate::build_ebpf::run(ci)?;
    let root = workspace_root();

    if !opts.vm_only && opts.filter.is_none() {
        eprintln!("xtask: unit tests");
        crate::run_cmd(Command::new("cargo").current_dir(&root).args([
            "test",
            "--workspace",
            "--lib",
            "--bins",
        ]))?;
    }

    crate::run_cmd(Command::new("cargo").current_dir(&root).args(["build", "-p", "tracer"]))?;
    let tcptrace = root.join("target/debug/tcptrace");
    let mut bins = integration_binaries()?;
    if !opts.only.is_empty() {
        bins.retain(|b| opts.only.contains(&vm::vm_name(b)));
        anyhow::ensure!(!bins.is_empty(), "no test binary is named {:?}", opts.only);
    }
    for family in HOST_FAMILIES.iter().filter(|_| !opts.vm_only) {
        for bin in &bins {
            eprintln!("xtask: host kernel, family {family}: {}", vm::vm_name(bin));
            crate::run_cmd(
                Command::new(bin)
                    .arg("--test-threads=1")
                    .args(opts.filter.iter())
                    .env("TT_PROBE", family)
                    .env("TT_EXPECT_AUTO", "tracepoint")
                    .env("TCPTRACE_BIN", &tcptrace),
            )?;
        }
    }

    if !opts.vm_only && opts.filter.is_none() {
        // The benchmark's short mode, so that it cannot rot (its numbers are not checked).
        eprintln!("xtask: benchmark, short mode");
        crate::bench::run(&crate::bench::Options {
            quick: true,
            configs: Vec::new(),
            workload: None,
            rounds: None,
        })?;
    }
    if opts.no_vm {
        eprintln!("xtask: VM skipped (--no-vm)");
        return Ok(());
    }
    let tool = |name: &str, package: &str| {
        ["/usr/sbin", "/sbin", "/usr/bin"]
            .into_iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .with_context(|| format!("{name} missing (apt-get install {package})"))
    };
    // nft and ip (iproute2: busybox's cannot make veth pairs) for the lossy-link tests.
    let mut payloads = vec![
        vm::Payload { name: "tcptrace".into(), path: tcptrace },
        vm::Payload { name: "nft".into(), path: tool("nft", "nftables")? },
        vm::Payload { name: "ip".into(), path: tool("ip", "iproute2")? },
        // A real Prometheus scraping `tcptrace serve` (tests/prometheus.rs).
        // Not named `prometheus`: that is the test binary's name in the VM.
        vm::Payload { name: "prometheus-server".into(), path: tool("prometheus", "prometheus")? },
        // A real peer (tests/iperf.rs), with the libraries it links.
        vm::Payload { name: "iperf3".into(), path: tool("iperf3", "iperf3")? },
    ];
    let mut names = Vec::new();
    let mut expected = std::collections::BTreeMap::new();
    for bin in &bins {
        let name = vm::vm_name(bin);
        if HOST_ONLY.contains(&name.as_str()) {
            continue;
        }
        payloads.push(vm::Payload { name: name.clone(), path: bin.clone() });
        expected.insert(name.clone(), listed_tests(bin, opts.filter.as_deref())?);
        names.push(name);
    }
    vm::run(&root.join("target/vm"), &payloads, &names, &expected, opts.filter.as_deref())
}

/// How many tests `bin` has (that `filter` keeps), as it lists them: what each of its runs
/// in the VM must pass.
fn listed_tests(bin: &Path, filter: Option<&str>) -> Result<usize> {
    let count = |ignored: bool| -> Result<usize> {
        let out = Command::new(bin)
            .arg("--list")
            .args(ignored.then_some("--ignored"))
            .args(filter)
            .output()
            .with_context(|| format!("listing the tests of {}", bin.display()))?;
        anyhow::ensure!(out.status.success(), "{} --list failed", bin.display());
        Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.ends_with(": test")).count())
    };
    // An ignored test is listed but never passes.
    Ok(count(false)? - count(true)?)
}

pub(crate) fn vm_exec(command: &str) -> Result<()> {
    let root = workspace_root();
    crate::run_cmd(Command::new("cargo").current_dir(&root).args(["build", "-p", "tracer"]))?;
    let payloads =
        vec![vm::Payload { name: "tcptrace".into(), path: root.join("target/debug/tcptrace") }];
    vm::exec(&root.join("target/vm-exec"), &payloads, command)
}
