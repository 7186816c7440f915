//! Running the integration tests inside Debian's stock kernel under QEMU (TCG: `-enable-kvm`
//! hangs on these machines). One boot runs every test binary once per hook family; `/init`
//! prints a marker per run, and the host parses them, failing on a missing marker, a
//! non-zero exit status, a kernel panic or a time-out.
//!
//! A guest kernel that locks up (a CPU stuck in the kernel, RCU stalled) finishes nothing
//! more, so the VM is stopped at once. Once per run, and only when the kernel failed in no
//! other way first, it boots again for the runs without a result, the one under way
//! included; every run must still pass, and a second lock-up fails.

mod initramfs;
mod kernel;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub(crate) use initramfs::Payload;

/// Kernel modules the tests need (nftables with `numgen`, and veth, for the lossy-link
/// tests; nftables' `reject` in an inet table, for the ICMP unreachable answer in
/// tests/end.rs); loaded by `/init` with busybox `insmod`, dependencies first.
const MODULES: [&str; 3] = ["nft_numgen", "veth", "nft_reject_inet"];

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

/// One test binary under one hook family: what `/init` runs and reports on.
type TestRun = (String, &'static str);

/// Every run of `tests`, in the order `/init` takes them.
fn all_runs(tests: &[String]) -> Vec<TestRun> {
    tests.iter().flat_map(|test| vm_families(test).map(move |fam| (test.clone(), fam))).collect()
}

/// The runs of `tests` that `log` has no result for.
fn runs_left(log: &[String], tests: &[String]) -> Vec<TestRun> {
    all_runs(tests).into_iter().filter(|(test, fam)| result_of(log, test, fam).is_none()).collect()
}

/// The exit status `log` reports for `test` under `fam`, if it got that far.
fn result_of<'a>(log: &'a [String], test: &str, fam: &str) -> Option<&'a str> {
    let prefix = format!("TT-RESULT {test} {fam} rc=");
    log.iter().find_map(|l| l.strip_prefix(&prefix))
}

/// A console line saying the guest kernel is wedged: a CPU stuck in the kernel (the soft
/// lock-up watchdog) or RCU stalled.
fn locks_up(line: &str) -> bool {
    line.contains("BUG: soft lockup")
        || line.contains("rcu_preempt self-detected stall")
        || line.contains("rcu_preempt detected stalls")
}

/// A console line saying the kernel failed in any way: a panic, a BUG or an oops, a
/// general protection fault, a WARN splat (`WARNING: CPU: 1 PID: 92 at ...`), a task hung
/// in the kernel, or a lock-up.
fn kernel_failed(line: &str) -> bool {
    line.contains("Kernel panic")
        || line.contains("BUG:")
        || line.contains("Oops")
        || line.contains("general protection fault")
        || line.contains("WARNING: CPU:")
        || line.contains("blocked for more than")
        || locks_up(line)
}

/// The lock-up that stopped this boot, when it is the first way the kernel failed (a
/// panic or an oops before it is a failure of its own, not retried).
fn first_failure_is_a_lockup(log: &[String]) -> Option<&str> {
    log.iter().find(|l| kernel_failed(l)).filter(|l| locks_up(l)).map(String::as_str)
}

/// The whole VM run took 2140-2450 s on these machines with auto run everywhere; without
/// it about 1750-2000 s. Generous, but well inside CI's 90 minutes with the host part.
const BOOT_TIMEOUT: Duration = Duration::from_secs(50 * 60);

/// `filter`: a test name filter for every test binary (checked to need no quoting).
/// Each test's time is reported (libtest's `--report-time`, unstable, hence
/// `RUSTC_BOOTSTRAP`): the VM is most of CI's time, and this says where it goes.
fn init_script(runs: &[TestRun], filter: Option<&str>, modules: &[PathBuf]) -> String {
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
    for (test, fam) in runs {
        s.push_str(&format!(
            "echo TT-START {test} {fam}\n\
             TT_PROBE={fam} TT_EXPECT_AUTO=fentry TCPTRACE_BIN=/tt/tcptrace TT_NFT=/tt/nft TT_IP=/tt/ip TT_PROMETHEUS=/tt/prometheus-server TT_IPERF3=/tt/iperf3 RUSTC_BOOTSTRAP=1 /tt/{test} --test-threads=1 -Z unstable-options --report-time {filter}\n\
             echo TT-RESULT {test} {fam} rc=$?\n",
            filter = filter.unwrap_or_default()
        ));
    }
    s.push_str("echo TT-DONE\npoweroff -f\n");
    s
}

/// Boots the kernel with `payloads` (tcptrace plus test binaries named in `tests`), and
/// once more after a lock-up (see the module's comment).
pub(crate) fn run(
    work: &Path,
    payloads: &[Payload],
    tests: &[String],
    expected: &BTreeMap<String, usize>,
    filter: Option<&str>,
) -> Result<()> {
    let log = boot(work, payloads, |modules| init_script(&all_runs(tests), filter, modules))?;
    let Some(lockup) = first_failure_is_a_lockup(&log) else {
        return verdict(&log, tests, expected);
    };
    let left = runs_left(&log, tests);
    let during = log.iter().rev().find_map(|l| l.strip_prefix("TT-START ")).unwrap_or("start-up");
    eprintln!("xtask: the VM kernel locked up during {during} ({lockup}); booting once more for the {} runs left, that one first", left.len());
    let again = boot(work, payloads, |modules| init_script(&left, filter, modules))?;
    verdict(&after_a_lockup(&log, again), tests, expected)
}

/// The log to judge after a boot stopped by a lock-up (`first`) and the boot for the runs
/// it left (`again`): the first's log up to the lock-up (its results stand, with their
/// tests' counts, and anything it said went wrong), then the second boot's whole log.
fn after_a_lockup(first: &[String], again: Vec<String>) -> Vec<String> {
    first
        .iter()
        .take_while(|l| !kernel_failed(l))
        .filter(|l| !l.starts_with("TT-DONE"))
        .cloned()
        .chain(again)
        .collect()
}

/// How many tests libtest says passed in `test`'s run under `fam` (its `test result:`
/// line between the run's markers), if it said.
fn passed_in(log: &[String], test: &str, fam: &str) -> Option<usize> {
    let start = format!("TT-START {test} {fam}");
    let end = format!("TT-RESULT {test} {fam} ");
    let from = log.iter().rposition(|l| *l == start)?;
    log[from..].iter().take_while(|l| !l.starts_with(&end)).find_map(|l| {
        // "test result: ok. 4 passed; 0 failed; ..."
        let counts = l.split("test result: ").nth(1)?;
        counts.split(" passed").next()?.rsplit(' ').next()?.parse().ok()
    })
}

/// Boots with tcptrace and runs one shell command (for debugging in the VM).
pub(crate) fn exec(work: &Path, payloads: &[Payload], command: &str) -> Result<()> {
    let script = |modules: &[PathBuf]| {
        init_script(&[], None, modules).replace("echo TT-DONE", &format!("{command}\necho TT-DONE"))
    };
    boot(work, payloads, script).map(drop)
}

fn boot(
    work: &Path,
    payloads: &[Payload],
    script: impl FnOnce(&[PathBuf]) -> String,
) -> Result<Vec<String>> {
    let kernel = kernel::fetch()?;
    eprintln!("xtask: VM kernel {} ({})", kernel.package, kernel.vmlinuz.display());
    std::fs::create_dir_all(work)?;
    let modules = kernel.modules_for(&MODULES)?;
    let cpio = initramfs::build(work, payloads, &modules, &script(&modules))?;
    let mut child = Command::new("qemu-system-x86_64")
        // 2 GiB: the uncompressed initramfs (debug test binaries, Prometheus, iperf3) is
        // unpacked into memory, and at 1 GiB the kernel ran out of room for it, leaving
        // files out ("Initramfs unpacking failed: write error"; see `verdict`).
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "2048",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&cpio)
        // loglevel=5: quiet, but for KERN_DEFAULT, so a lock-up or an oops comes with its
        // stack on the console.
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=5"])
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
                let wedged = locks_up(&line);
                log.push(line);
                if done {
                    break;
                }
                if wedged {
                    // Nothing more will finish: stop now rather than at the time-out.
                    let _ = child.kill();
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

/// Checks the markers: every (test, family) ran and exited 0, with as many tests passed as
/// the binary lists on the host (`expected`: a binary that ran none, or fewer, is not
/// green), and the kernel did not fail.
fn verdict(log: &[String], tests: &[String], expected: &BTreeMap<String, usize>) -> Result<()> {
    if let Some(panic) = log.iter().find(|l| kernel_failed(l)) {
        bail!("the VM kernel failed: {panic}");
    }
    // Files missing from the root file system: every run after would fail for that alone.
    if let Some(unpacking) = log.iter().find(|l| l.contains("Initramfs unpacking failed")) {
        bail!("the VM's initramfs did not unpack whole: {unpacking}");
    }
    if let Some(module) = log.iter().find(|l| l.starts_with("TT-MODULE-FAILED")) {
        bail!("in the VM: {module}");
    }
    if !log.iter().any(|l| l.starts_with("TT-BOOTED")) {
        bail!("the VM never reached /init");
    }
    let mut failures = Vec::new();
    for (test, fam) in all_runs(tests) {
        match result_of(log, &test, fam) {
            Some("0") => match (passed_in(log, &test, fam), expected.get(&test)) {
                (Some(passed), Some(&want)) if passed != want => failures
                    .push(format!("{test} [{fam}] passed {passed} tests of the {want} it has")),
                (None, Some(_)) => failures.push(format!("{test} [{fam}] said no test result")),
                (passed, _) => {
                    eprintln!("xtask: VM {test} [{fam}]: {} passed", passed.unwrap_or(0))
                }
            },
            Some(rc) => failures.push(format!("{test} [{fam}] exited {rc}")),
            None => failures.push(format!("{test} [{fam}] never finished")),
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

    /// A run's lines as `/init` and libtest print them: `passed` tests, exit code `rc`.
    fn run_lines(test: &str, fam: &str, passed: usize, rc: &str) -> [String; 3] {
        [
            format!("TT-START {test} {fam}"),
            format!("test result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured"),
            format!("TT-RESULT {test} {fam} rc={rc}"),
        ]
    }

    /// Each binary's number of tests, as the host lists them.
    fn counts(tests: &[(&str, usize)]) -> BTreeMap<String, usize> {
        tests.iter().map(|(t, n)| ((*t).to_string(), *n)).collect()
    }

    #[test]
    fn verdict_needs_every_marker_and_a_clean_kernel() {
        let tests = vec!["connect".to_string(), "serve".to_string()];
        let expected = counts(&[("connect", 12), ("serve", 7)]);
        let mut good: Vec<String> = vec!["TT-BOOTED 6.1.0".into()];
        for fam in ["fentry", "kprobe", "tracepoint", "raw-tracepoint", "auto"] {
            good.extend(run_lines("connect", fam, 12, "0"));
        }
        for fam in ["fentry", "kprobe", "tracepoint", "raw-tracepoint"] {
            good.extend(run_lines("serve", fam, 7, "0"));
        }
        good.push("TT-DONE".into());
        assert!(verdict(&good, &tests, &expected).is_ok());
        // A binary that ran fewer tests than it has, or said no result, is not green.
        let fewer: Vec<String> =
            good.iter().map(|l| l.replace("ok. 7 passed", "ok. 0 passed")).collect();
        assert!(verdict(&fewer, &tests, &expected).is_err());
        let silent: Vec<String> =
            good.iter().filter(|l| !l.starts_with("test result")).cloned().collect();
        assert!(verdict(&silent, &tests, &expected).is_err());
        // Any kernel failure fails the run: a WARN splat, a hung task, a GPF.
        for splat in [
            "WARNING: CPU: 1 PID: 92 at kernel/bpf/core.c:100 f+0x1/0x2",
            "INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
            "general protection fault, probably for non-canonical address",
        ] {
            let mut warned = good.clone();
            warned.insert(3, splat.into());
            assert!(verdict(&warned, &tests, &expected).is_err(), "{splat}");
        }

        // connect's auto run is required; serve has none.
        let without_auto: Vec<String> =
            good.iter().filter(|l| !l.starts_with("TT-RESULT connect auto")).cloned().collect();
        assert!(verdict(&without_auto, &tests, &expected).is_err());
        assert!(!init_script(&all_runs(&tests), None, &[]).contains("TT-START serve auto"));

        let failed: Vec<String> = good
            .iter()
            .map(|l| l.replace("connect kprobe rc=0", "connect kprobe rc=101"))
            .collect();
        assert!(verdict(&failed, &tests, &expected).is_err());

        let missing: Vec<String> =
            good.iter().filter(|l| !l.starts_with("TT-RESULT connect fentry")).cloned().collect();
        assert!(verdict(&missing, &tests, &expected).is_err());

        let mut panicked = good.clone();
        panicked.insert(1, "Kernel panic - not syncing: oops".into());
        assert!(verdict(&panicked, &tests, &expected).is_err());

        let unfinished: Vec<String> = good[..good.len() - 1].to_vec();
        assert!(verdict(&unfinished, &tests, &expected).is_err());

        // Files left out of the root file system fail the run, whatever the tests said.
        let mut unpacked_in_part = good.clone();
        unpacked_in_part.insert(0, "[    3.265189] Initramfs unpacking failed: write error".into());
        assert!(verdict(&unpacked_in_part, &tests, &expected).is_err());
    }

    /// A boot stopped by a lock-up: the runs without a result (the one under way first)
    /// go to a second boot, whose log completes the first's results; a run that failed
    /// before the lock-up still fails, and a second lock-up, or a panic before the first,
    /// is a failure.
    #[test]
    fn a_lockup_leaves_the_runs_without_a_result_to_one_more_boot() {
        let tests = vec!["cli".to_string(), "serve".to_string()];
        let stopped: Vec<String> = [
            "TT-BOOTED 6.1.0",
            "TT-RESULT cli fentry rc=0",
            "TT-START cli kprobe",
            "[   52.5] rcu: INFO: rcu_preempt self-detected stall on CPU",
            "[   76.7] watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [cli:115]",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            first_failure_is_a_lockup(&stopped),
            Some("[   52.5] rcu: INFO: rcu_preempt self-detected stall on CPU")
        );
        let left = runs_left(&stopped, &tests);
        let want: Vec<TestRun> = ["kprobe", "tracepoint", "raw-tracepoint"]
            .map(|f| ("cli".to_string(), f))
            .into_iter()
            .chain(FORCED_FAMILIES.map(|f| ("serve".to_string(), f)))
            .collect();
        assert_eq!(left, want);
        let script = init_script(&left, None, &[]);
        assert!(
            !script.contains("TT-START cli fentry") && script.contains("TT-START cli kprobe"),
            "{script}"
        );

        let mut again: Vec<String> = vec!["TT-BOOTED 6.1.0".into()];
        again.extend(left.iter().map(|(test, fam)| format!("TT-RESULT {test} {fam} rc=0")));
        again.push("TT-DONE".into());
        assert!(verdict(&after_a_lockup(&stopped, again.clone()), &tests, &BTreeMap::new()).is_ok());
        // The first boot's counts stand beside the second's.
        let mut counted = stopped.clone();
        counted.splice(1..2, run_lines("cli", "fentry", 3, "0"));
        let mut counted_again: Vec<String> = vec!["TT-BOOTED 6.1.0".into()];
        for (test, fam) in &left {
            counted_again.extend(run_lines(test, fam, if test == "cli" { 3 } else { 7 }, "0"));
        }
        counted_again.push("TT-DONE".into());
        let expected = counts(&[("cli", 3), ("serve", 7)]);
        assert!(verdict(&after_a_lockup(&counted, counted_again), &tests, &expected).is_ok());
        // Judged alone, the stopped boot fails.
        assert!(verdict(&stopped, &tests, &BTreeMap::new()).is_err());

        let mut failed_before = stopped.clone();
        failed_before[1] = "TT-RESULT cli fentry rc=101".into();
        assert!(verdict(&after_a_lockup(&failed_before, again.clone()), &tests, &BTreeMap::new())
            .is_err());

        let mut locked_again = again.clone();
        locked_again
            .insert(2, "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [serve:90]".into());
        assert!(verdict(&after_a_lockup(&stopped, locked_again), &tests, &BTreeMap::new()).is_err());

        let mut oops_first = stopped.clone();
        oops_first.insert(3, "Oops: general protection fault".into());
        assert_eq!(first_failure_is_a_lockup(&oops_first), None);
    }

    #[test]
    fn test_binary_names_lose_their_hash() {
        assert_eq!(vm_name(&PathBuf::from("/t/deps/connect-0123abcd")), "connect");
        assert_eq!(vm_name(&PathBuf::from("/t/deps/state_machine-ff")), "state_machine");
    }
}
