//! Running the integration tests inside Debian's stock kernel under QEMU (TCG: `-enable-kvm`
//! hangs on these machines). One boot runs every test binary once per hook family; `/init`
//! prints a marker per run, and the host parses them, failing on a missing marker, a
//! non-zero exit status, a kernel panic or a time-out.

mod initramfs;
mod kernel;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub(crate) use initramfs::Payload;

/// Kernel modules the tests need (nftables with `numgen`, and veth, for the lossy-link
/// tests); loaded by `/init` with busybox `insmod`, dependencies first.
const MODULES: [&str; 2] = ["nft_numgen", "veth"];

/// Families every integration test binary runs under, in the VM, each forced.
const FORCED_FAMILIES: [&str; 4] = ["fentry", "kprobe", "tracepoint", "raw-tracepoint"];

/// Test binaries that also run in auto mode in the VM. On 6.1 auto takes fentry for every
/// hook, so a whole auto run repeats the fentry run (about a fifth of the VM's time);
/// `connect` checks what auto picks, and every trace it starts asserts each hook's path.
const AUTO_IN_VM: [&str; 1] = ["connect"];

/// The families `test` runs under in the VM.
fn vm_families(test: &str) -> impl Iterator<Item = &'static str> {
    let auto = AUTO_IN_VM.contains(&test).then_some("auto");
    FORCED_FAMILIES.into_iter().chain(auto)
}

/// The whole VM run took 2140-2450 s on these machines with auto run everywhere; without
/// it about 1750-2000 s. Generous, but well inside CI's 90 minutes with the host part.
const BOOT_TIMEOUT: Duration = Duration::from_secs(50 * 60);

/// `filter`: a test name filter for every test binary (checked to need no quoting).
fn init_script(tests: &[String], filter: Option<&str>, modules: &[PathBuf]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo TT-BOOTED $(uname -r)
",
    );
    for ko in modules {
        if let Some(name) = ko.file_name().and_then(|n| n.to_str()) {
            s.push_str(&format!("insmod /modules/{name} || echo TT-MODULE-FAILED {name}\n"));
        }
    }
    for test in tests {
        for fam in vm_families(test) {
            s.push_str(&format!(
                "echo TT-START {test} {fam}\n\
                 TT_PROBE={fam} TT_EXPECT_AUTO=fentry TCPTRACE_BIN=/tt/tcptrace TT_NFT=/tt/nft TT_IP=/tt/ip TT_PROMETHEUS=/tt/prometheus-server /tt/{test} --test-threads=1 {filter}\n\
                 echo TT-RESULT {test} {fam} rc=$?\n",
                filter = filter.unwrap_or_default()
            ));
        }
    }
    s.push_str("echo TT-DONE\npoweroff -f\n");
    s
}

/// Boots the kernel with `payloads` (tcptrace plus test binaries named in `tests`).
pub(crate) fn run(work: &Path, payloads: &[Payload], tests: &[String], filter: Option<&str>) -> Result<()> {
    let log = boot(work, payloads, |modules| init_script(tests, filter, modules))?;
    verdict(&log, tests)
}

/// Boots with tcptrace and runs one shell command (for debugging in the VM).
pub(crate) fn exec(work: &Path, payloads: &[Payload], command: &str) -> Result<()> {
    let script = |modules: &[PathBuf]| init_script(&[], None, modules).replace("echo TT-DONE", &format!("{command}\necho TT-DONE"));
    boot(work, payloads, script).map(drop)
}

fn boot(work: &Path, payloads: &[Payload], script: impl FnOnce(&[PathBuf]) -> String) -> Result<Vec<String>> {
    let kernel = kernel::fetch()?;
    eprintln!("xtask: VM kernel {} ({})", kernel.package, kernel.vmlinuz.display());
    std::fs::create_dir_all(work)?;
    let modules = kernel.modules_for(&MODULES)?;
    let cpio = initramfs::build(work, payloads, &modules, &script(&modules))?;
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&cpio)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut log = Vec::new();
    loop {
        let left = BOOT_TIMEOUT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r');
                println!("vm| {line}");
                // The console may prefix a marker with terminal escapes: cut them off.
                let line = line.find("TT-").map_or(line, |at| &line[at..]).to_string();
                let done = line.starts_with("TT-DONE");
                log.push(line);
                if done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                bail!("the VM did not finish within {} s", BOOT_TIMEOUT.as_secs());
            }
        }
    }
    // poweroff -f ends QEMU; give it a moment, then make sure.
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("xtask: VM run took {} s", started.elapsed().as_secs());
    Ok(log)
}

/// Checks the markers: every (test, family) ran and exited 0, and the kernel did not panic.
fn verdict(log: &[String], tests: &[String]) -> Result<()> {
    if let Some(panic) = log.iter().find(|l| l.contains("Kernel panic") || l.contains("BUG:") || l.contains("Oops")) {
        bail!("the VM kernel failed: {panic}");
    }
    if let Some(module) = log.iter().find(|l| l.starts_with("TT-MODULE-FAILED")) {
        bail!("in the VM: {module}");
    }
    if !log.iter().any(|l| l.starts_with("TT-BOOTED")) {
        bail!("the VM never reached /init");
    }
    let mut failures = Vec::new();
    for test in tests {
        for fam in vm_families(test) {
            let prefix = format!("TT-RESULT {test} {fam} rc=");
            match log.iter().find_map(|l| l.strip_prefix(&prefix)) {
                Some("0") => eprintln!("xtask: VM {test} [{fam}]: passed"),
                Some(rc) => failures.push(format!("{test} [{fam}] exited {rc}")),
                None => failures.push(format!("{test} [{fam}] never finished")),
            }
        }
    }
    if !log.iter().any(|l| l.starts_with("TT-DONE")) {
        failures.push("the VM stopped before TT-DONE".into());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("in the VM: {}", failures.join("; "))
    }
}

/// A test binary name as it appears in the VM (`connect-0123abcd` -> `connect`).
pub(crate) fn vm_name(path: &Path) -> String {
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    stem.rsplit_once('-').map_or(stem.clone(), |(name, _)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_needs_every_marker_and_a_clean_kernel() {
        let tests = vec!["connect".to_string(), "serve".to_string()];
        let mut good: Vec<String> = vec!["TT-BOOTED 6.1.0".into()];
        for fam in ["fentry", "kprobe", "tracepoint", "raw-tracepoint", "auto"] {
            good.push(format!("TT-RESULT connect {fam} rc=0"));
        }
        for fam in ["fentry", "kprobe", "tracepoint", "raw-tracepoint"] {
            good.push(format!("TT-RESULT serve {fam} rc=0"));
        }
        good.push("TT-DONE".into());
        assert!(verdict(&good, &tests).is_ok());

        // connect's auto run is required; serve has none.
        let without_auto: Vec<String> = good.iter().filter(|l| !l.starts_with("TT-RESULT connect auto")).cloned().collect();
        assert!(verdict(&without_auto, &tests).is_err());
        assert!(!init_script(&tests, None, &[]).contains("TT-START serve auto"));

        let mut failed = good.clone();
        failed[2] = "TT-RESULT connect kprobe rc=101".into();
        assert!(verdict(&failed, &tests).is_err());

        let mut missing = good.clone();
        missing.remove(1);
        assert!(verdict(&missing, &tests).is_err());

        let mut panicked = good.clone();
        panicked.insert(1, "Kernel panic - not syncing: oops".into());
        assert!(verdict(&panicked, &tests).is_err());

        let unfinished: Vec<String> = good[..good.len() - 1].to_vec();
        assert!(verdict(&unfinished, &tests).is_err());
    }

    #[test]
    fn test_binary_names_lose_their_hash() {
        assert_eq!(vm_name(&PathBuf::from("/t/deps/connect-0123abcd")), "connect");
        assert_eq!(vm_name(&PathBuf::from("/t/deps/state_machine-ff")), "state_machine");
    }
}
