//! Shared harness for the integration tests: run `tcptrace` as a child, make real TCP
//! traffic from forked processes with a known pid, comm and uid, and read back the events.
//!
//! Environment (set by `cargo xtask test`, on the host and inside the VM):
//! - `TT_PROBE`: the hook family to force (`auto`, `fentry`, `kprobe`, `tracepoint`).
//! - `TT_EXPECT_AUTO`: which family auto mode must pick on this kernel (`tracepoint` on the
//!   host, whose kernel has no kprobes and refuses fentry; `fentry` on Debian 6.1).
//! - `TCPTRACE_BIN`: the binary to run (inside the VM, where cargo's path does not exist).
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]
#![allow(unreachable_pub, reason = "a module of each test crate, not a library")]

use std::{
    ffi::CStr,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{mpsc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod events;
pub mod tools;

/// Tests attach kernel programs and count events machine-wide: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn tcptrace_bin() -> PathBuf {
    std::env::var_os("TCPTRACE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tcptrace")), PathBuf::from)
}

/// The family under test.
pub fn probe() -> String {
    std::env::var("TT_PROBE").unwrap_or_else(|_| "auto".into())
}

/// The family auto mode picks on this kernel.
pub fn expect_auto() -> String {
    std::env::var("TT_EXPECT_AUTO").unwrap_or_else(|_| "tracepoint".into())
}

/// Running inside the Debian 6.1 VM (auto picks fentry there).
pub fn in_vm() -> bool {
    expect_auto() == "fentry"
}

/// Whether per-call byte counting (`--bytes calls`, `top`) can attach in this run: not on
/// the tracepoint family of kernels before 6.3, which lack `sock:sock_send_length`
/// (Debian's 6.1 in the VM); there tcptrace must refuse with one line instead.
pub fn calls_mode_available() -> bool {
    !(in_vm() && effective_family() == "tracepoint")
}

/// Asserts the one-line refusal of a run that needs per-call counting where it cannot be.
pub fn assert_calls_mode_refused(stderr: &[String]) {
    assert!(!calls_mode_available(), "per-call counting failed: {stderr:?}");
    assert_eq!(stderr.len(), 1, "one line: {stderr:?}");
    assert!(
        stderr[0].starts_with("tcptrace: hook bytes: no hook family attaches on this kernel ("),
        "{stderr:?}"
    );
}

/// Whether the running kernel names the reasons of resets it sends (`enum sk_rst_reason`,
/// Linux 6.10), and fires `tcp:tcp_send_reset` for a reset without a socket (the same
/// release): told from its release, not from tcptrace.
pub fn kernel_gives_reset_reasons() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut numbers = release.trim().split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (6, 10)
}

/// Whether this run sees a reset sent for a segment that reached no socket: every family
/// but the tracepoint one before Linux 6.10.
pub fn no_socket_resets_seen() -> bool {
    effective_family() != "tracepoint" || kernel_gives_reset_reasons()
}

/// The family the connect hook really uses in this run (`raw-tracepoint` is the
/// tracepoint family without BTF-typed programs).
pub fn effective_family() -> String {
    match probe().as_str() {
        "auto" => expect_auto(),
        "raw-tracepoint" => "tracepoint".into(),
        other => other.to_string(),
    }
}

/// Checks that the state, retransmit and accept hooks attached the way `family` must on
/// these kernels, as `-v` says: both have BTF, so the tracepoint family takes the
/// BTF-typed tracepoints (and the typed task) unless told not to.
fn assert_hook_paths(family: &str, stderr: &[String]) {
    let effective = if family == "auto" { expect_auto() } else { family.to_string() };
    let (state, retransmit, accept, reset) = match effective.as_str() {
        "tracepoint" => (
            "[tracepoint sock:inet_sock_set_state, BTF-typed ",
            "[tracepoint tcp:tcp_retransmit_skb, tcp_retransmit_synack, BTF-typed ",
            "file table, from the typed task: plain loads to the fd array)]",
            "[tracepoint tcp:tcp_send_reset, tcp_receive_reset, BTF-typed",
        ),
        "raw-tracepoint" => (
            "[tracepoint sock:inet_sock_set_state, raw ",
            "[tracepoint tcp:tcp_retransmit_skb, tcp_retransmit_synack, classic ",
            "file table, every link probed)]",
            "[tracepoint tcp:tcp_send_reset, tcp_receive_reset, raw",
        ),
        "fentry" => (
            "[fentry tcp_set_state]",
            "[fexit tcp_retransmit_skb, tcp_rtx_synack;",
            "[fexit inet_csk_accept]",
            "[fentry tcp_v4_send_reset, tcp_v6_send_reset, tcp_send_active_reset, tcp_reset]",
        ),
        "kprobe" => (
            "[kprobe tcp_set_state]",
            "[kprobe+kretprobe tcp_retransmit_skb,",
            "[kprobe security_sock_graft ",
            "[kprobe tcp_v4_send_reset, tcp_v6_send_reset, tcp_send_active_reset, tcp_reset]",
        ),
        other => panic!("unknown family {other}"),
    };
    for (hook, want) in
        [("state", state), ("retransmit", retransmit), ("accept", accept), ("reset", reset)]
    {
        let prefix = format!("tcptrace: hook {hook}: ");
        if let Some(line) = stderr.iter().find(|l| l.starts_with(&prefix)) {
            assert!(line.contains(want), "{hook} hook for {family}: want {want:?} in {line:?}");
        }
    }
}

/// Generous: inside the VM everything runs under software emulation.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running `tcptrace -o json -v --probe $TT_PROBE <args>`.
pub struct Trace {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
}

pub struct Finished {
    pub events: Vec<Value>,
    pub stderr: Vec<String>,
    pub status: std::process::ExitStatus,
}

impl Finished {
    /// Events of one type made by one pid.
    pub fn of(&self, kind: &str, pid: i32) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind && e["pid"] == pid).collect()
    }

    /// tcptrace's summary line on stderr (`N events (...); lost N (...); ...`).
    pub fn summary(&self) -> &str {
        summary_in(&self.stderr)
    }

    /// The events tcptrace said it lost, from its summary on stderr (`; lost N (...)`):
    /// what it counted and reported, hook runs the kernel skipped among them.
    pub fn lost(&self) -> usize {
        let summary = self.summary();
        summary
            .split("; lost ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no loss count in {summary}"))
    }
}

/// The summary line among tcptrace's stderr lines (the trace's and `serve`'s).
pub fn summary_in(stderr: &[String]) -> &str {
    stderr
        .iter()
        .find(|l| l.contains(" events ("))
        .unwrap_or_else(|| panic!("no summary: {stderr:?}"))
}

/// The entries a summary says the full connection table evicted
/// (`entries evicted from the full connection table N`).
pub fn forgotten_in(summary: &str) -> usize {
    count_in(summary, "entries evicted from the full connection table ")
}

/// The hook runs a summary says the kernel skipped (`hook runs skipped by the kernel N`).
pub fn skipped_in(summary: &str) -> usize {
    count_in(summary, "hook runs skipped by the kernel ")
}

/// The state changes a summary says were missed (`state changes out of sequence N`).
pub fn gaps_in(summary: &str) -> usize {
    count_in(summary, "state changes out of sequence ")
}

/// The number after `label` in a summary's loss list.
pub fn count_in(summary: &str, label: &str) -> usize {
    summary
        .split(label)
        .nth(1)
        .and_then(|rest| rest.split([',', ';', ')']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} count in {summary}"))
}

impl Trace {
    /// Starts tcptrace with the family under test and waits until it says it is tracing.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_probe(&probe(), args)
    }

    pub fn start_with_probe(family: &str, args: &[&str]) -> Self {
        Self::try_start_with_probe(family, args)
            .unwrap_or_else(|stderr| panic!("tcptrace did not start: {stderr:?}"))
    }

    /// Like `start`, but a tcptrace that exits instead of tracing is an `Err` with its stderr.
    pub fn try_start(args: &[&str]) -> Result<Self, Vec<String>> {
        Self::try_start_with_probe(&probe(), args)
    }

    pub fn try_start_with_probe(family: &str, args: &[&str]) -> Result<Self, Vec<String>> {
        Self::try_start_as(family, "json", args)
    }

    /// Starts a trace whose `args` ask for per-call byte counting where it can attach; where
    /// it cannot (see `calls_mode_available`), checks the one-line refusal and gives `None`.
    pub fn start_per_call(args: &[&str]) -> Option<Self> {
        match Self::try_start(args) {
            Ok(trace) => {
                assert!(calls_mode_available(), "per-call counting attached where it should not");
                Some(trace)
            }
            Err(stderr) => {
                assert_calls_mode_refused(&stderr);
                None
            }
        }
    }

    /// Starts tcptrace (JSON) still as root's uid but with no capability beyond `keep`
    /// (numbers, as in `linux/capability.h`): the bounding set is cut to them before the
    /// exec, which then grants root exactly those, as a container runtime does.
    pub fn start_with_capabilities(keep: u64, args: &[&str]) -> Self {
        Self::try_start_with_capabilities(keep, args)
            .unwrap_or_else(|stderr| panic!("tcptrace did not start: {stderr:?}"))
    }

    /// Like `start_with_capabilities`, but a tcptrace that exits instead of tracing is an
    /// `Err` with its stderr.
    pub fn try_start_with_capabilities(keep: u64, args: &[&str]) -> Result<Self, Vec<String>> {
        Self::spawn(&probe(), "json", args, Some(keep))
    }

    /// `tcptrace <args> top <top_args>`: no `-o`, which top refuses (it prints its own
    /// snapshots, read through `take_stdout`).
    pub fn try_start_top(args: &[&str], top_args: &[&str]) -> Result<Self, Vec<String>> {
        let all: Vec<&str> =
            args.iter().copied().chain(["top"]).chain(top_args.iter().copied()).collect();
        Self::try_start_as(&probe(), "", &all)
    }

    /// Starts tcptrace with `-o format` (the other constructors parse JSON).
    pub fn start_as(format: &str, args: &[&str]) -> Self {
        Self::try_start_as(&probe(), format, args)
            .unwrap_or_else(|stderr| panic!("tcptrace did not start: {stderr:?}"))
    }

    /// `format` empty: no `-o` at all.
    fn try_start_as(family: &str, format: &str, args: &[&str]) -> Result<Self, Vec<String>> {
        Self::spawn(family, format, args, None)
    }

    fn spawn(
        family: &str,
        format: &str,
        args: &[&str],
        capabilities: Option<u64>,
    ) -> Result<Self, Vec<String>> {
        let output: &[&str] = if format.is_empty() { &[] } else { &["-o", format] };
        let mut command = Command::new(tcptrace_bin());
        command
            .args(output)
            .args(["-v", "--probe", family])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(keep) = capabilities {
            // SAFETY: only prctl between fork and exec, no allocation.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    bound_capabilities(keep)
                })
            };
        }
        let mut child = command.spawn().expect("spawn tcptrace");
        let rx = stderr_lines(&mut child);
        let mut trace = Self { child, stderr: rx, stderr_seen: Vec::new() };
        loop {
            match trace.stderr.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    let ready = line.contains("tracing; Ctrl-C to stop");
                    trace.stderr_seen.push(line);
                    if ready {
                        assert_hook_paths(family, &trace.stderr_seen);
                        return Ok(trace);
                    }
                }
                // Dropping `trace` ends the child.
                Err(_) => return Err(std::mem::take(&mut trace.stderr_seen)),
            }
        }
    }

    /// Waits (a generous while) for tcptrace to exit on its own (`--count`, `--duration`,
    /// a closed pipe); returns its exit code, stdout and the stderr lines after start-up.
    pub fn wait_for_exit(mut self) -> (Option<i32>, String, Vec<String>) {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while self.child.try_wait().expect("poll tcptrace").is_none() {
            if std::time::Instant::now() > deadline {
                panic!("tcptrace did not exit on its own"); // the drop ends the child
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, stdout) = self.exit_status_and_stdout();
        // Until the reader thread sees EOF: tcptrace has exited, so that comes now.
        let later: Vec<String> = self.stderr.iter().collect();
        (status.code(), String::from_utf8(stdout).expect("utf-8 output"), later)
    }

    /// The rest of stdout (unless taken) until tcptrace exits, and how it exited.
    fn exit_status_and_stdout(&mut self) -> (std::process::ExitStatus, Vec<u8>) {
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_end(&mut out, &mut stdout).expect("read tcptrace's stdout");
        }
        (self.child.wait().expect("wait for tcptrace"), stdout)
    }

    /// tcptrace's effective capabilities, from `/proc/<pid>/status`.
    pub fn effective_capabilities(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("tcptrace's status");
        let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("CapEff line");
        u64::from_str_radix(hex.trim(), 16).expect("CapEff in hex")
    }

    /// Sends tcptrace a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// The sizes of the ring buffers tcptrace holds open, in bytes, from the kernel's own
    /// account of its map fds (`/proc/<pid>/fdinfo`: `map_type` 27 is a ring buffer).
    pub fn ring_buffer_sizes(&self) -> Vec<u64> {
        let dir = format!("/proc/{}/fdinfo", self.child.id());
        let field = |info: &str, name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string())
        };
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .filter(|info| field(info, "map_type:").as_deref() == Some("27"))
            .map(|info| {
                field(&info, "max_entries:")
                    .and_then(|v| v.parse().ok())
                    .expect("max_entries of a map")
            })
            .collect()
    }

    /// Takes tcptrace's stdout, to read it (and close it) while it runs.
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout piped")
    }

    /// Stops tcptrace with SIGINT (it drains the ring buffer first) and parses its output.
    pub fn stop(self) -> Finished {
        self.stop_with(libc::SIGINT)
    }

    /// `stop`, with another signal than SIGINT.
    pub fn stop_with(self, signal: i32) -> Finished {
        let (text, stderr, status) = self.stop_raw(signal);
        let events = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        Finished { events, stderr, status }
    }

    /// Stops tcptrace with `signal`, for output other than JSON: stdout as it is, every
    /// stderr line, and how it exited.
    pub fn stop_raw(mut self, signal: i32) -> (String, Vec<String>, std::process::ExitStatus) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let (status, stdout) = self.exit_status_and_stdout();
        // Until the reader thread sees EOF: tcptrace has exited, so that comes now.
        let mut stderr = std::mem::take(&mut self.stderr_seen);
        stderr.extend(self.stderr.iter());
        (String::from_utf8(stdout).expect("utf-8 output"), stderr, status)
    }
}

/// A test that fails halfway must not leave its tcptrace attached to the kernel: it would
/// go on running its programs under every later test and benchmark on the machine.
impl Drop for Trace {
    fn drop(&mut self) {
        end_child(&mut self.child);
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        end_child(&mut self.child);
    }
}

/// Kills and reaps `child` unless it has already exited.
fn end_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The child's stderr, a line at a time, read by a thread of its own.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs tcptrace to completion with these args; returns (exit code, stdout, stderr).
pub fn run_to_end(args: &[&str], uid: Option<u32>) -> (i32, String, String) {
    let mut cmd = Command::new(tcptrace_bin());
    cmd.args(args);
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("run tcptrace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A forked process that connects once when told to, under its own comm and uid.
pub struct Peer {
    pub pid: i32,
    go: i32,
}

/// What the forked connector does before connecting.
#[derive(Clone, Copy)]
pub struct PeerSetup<'a> {
    pub comm: &'a CStr,
    pub uid: u32,
    /// Connect from a new, empty network namespace (lo down: the route lookup fails).
    pub empty_netns: bool,
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

impl Peer {
    /// A child forked by the caller that waits to read one byte from the pipe whose write
    /// end is `go` (its read end closed here), and reports through its exit code.
    pub fn waiting(pid: i32, go: i32) -> Self {
        Self { pid, go }
    }

    /// Forks a child that waits for `go()`, then connects to `addr` and exits with 0 on
    /// success or the connect errno. Everything is prepared before fork: the child makes
    /// only raw system calls (it is the fork of a multi-threaded process).
    pub fn connector(setup: PeerSetup<'_>, addr: SocketAddr) -> Self {
        let (ss, len) = sockaddr(addr);
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let mut fds = [0; 2];
        // SAFETY: plain system calls; the child only calls async-signal-safe functions.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                libc::close(fds[1]);
                libc::prctl(libc::PR_SET_NAME, setup.comm.as_ptr());
                if setup.empty_netns && libc::unshare(libc::CLONE_NEWNET) != 0 {
                    libc::_exit(200);
                }
                if libc::setresgid(setup.uid, setup.uid, setup.uid) != 0
                    || libc::setresuid(setup.uid, setup.uid, setup.uid) != 0
                {
                    libc::_exit(201);
                }
                let mut byte = 0u8;
                if libc::read(fds[0], (&raw mut byte).cast(), 1) != 1 {
                    libc::_exit(202);
                }
                let s = libc::socket(family, libc::SOCK_STREAM, 0);
                let rc = libc::connect(s, (&raw const ss).cast(), len);
                let code = if rc == 0 { 0 } else { *libc::__errno_location() };
                libc::close(s);
                libc::_exit(code);
            }
            libc::close(fds[0]);
            Self { pid, go: fds[1] }
        }
    }

    /// Lets the child connect, and returns its exit code (0, or the connect errno).
    pub fn go_and_wait(self) -> i32 {
        // SAFETY: writing one byte to our pipe, then reaping our child.
        unsafe {
            assert_eq!(libc::write(self.go, b"g".as_ptr().cast(), 1), 1);
            libc::close(self.go);
            let mut status = 0;
            assert_eq!(libc::waitpid(self.pid, &raw mut status, 0), self.pid);
            assert!(libc::WIFEXITED(status), "peer {} did not exit normally", self.pid);
            libc::WEXITSTATUS(status)
        }
    }
}

/// Forks a child that runs `body` under `comm` and exits with its return value. `body`
/// must only make raw system calls (the parent is multi-threaded): prepare buffers first.
pub fn fork_with<F: FnOnce() -> i32>(comm: &CStr, body: F) -> i32 {
    // SAFETY: fork, then only async-signal-safe calls in the child (body's contract).
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
            libc::_exit(body());
        }
        pid
    }
}

/// Waits for a forked child and returns its exit code.
pub fn wait_child(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe {
        assert_eq!(libc::waitpid(pid, &raw mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child {pid} did not exit normally (status {status})");
        libc::WEXITSTATUS(status)
    }
}

/// Raw-syscall helpers for forked children.
pub mod raw {
    /// Writes all of `buf`, `total` bytes in all (repeating `buf`). False on error.
    pub fn write_exactly(fd: i32, buf: &[u8], total: usize) -> bool {
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len());
            // SAFETY: valid buffer of at least n bytes.
            let w = unsafe { libc::write(fd, buf.as_ptr().cast(), n) };
            if w <= 0 {
                return false;
            }
            left -= w as usize;
        }
        true
    }

    /// Reads exactly `total` bytes into `buf` (reused). False on error or early EOF.
    pub fn read_exactly(fd: i32, buf: &mut [u8], total: usize) -> bool {
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len());
            // SAFETY: valid buffer of at least n bytes.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), n) };
            if r <= 0 {
                return false;
            }
            left -= r as usize;
        }
        true
    }

    /// Reads until EOF; returns the byte count, or None on error.
    pub fn read_to_eof(fd: i32, buf: &mut [u8]) -> Option<usize> {
        let mut total = 0;
        loop {
            // SAFETY: valid buffer.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            match r {
                0 => return Some(total),
                r if r < 0 => return None,
                r => total += r as usize,
            }
        }
    }

    /// The next connection on `listener` (close-on-exec); the fd, or -1. Async-signal-safe.
    pub fn accept(listener: i32) -> i32 {
        // SAFETY: accept4 with no address buffers.
        unsafe {
            libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
        }
    }

    /// A blocking TCP connect to `addr`; the fd or -errno.
    pub fn connect(addr: &(libc::sockaddr_storage, libc::socklen_t), family: i32) -> i32 {
        // SAFETY: plain system calls with valid pointers.
        unsafe {
            let s = libc::socket(family, libc::SOCK_STREAM, 0);
            if s < 0 {
                return -*libc::__errno_location();
            }
            if libc::connect(s, (&raw const addr.0).cast(), addr.1) != 0 {
                let e = *libc::__errno_location();
                libc::close(s);
                return -e;
            }
            s
        }
    }

    /// `tcpi_total_retrans` of a connected socket (TCP_INFO offset 100, stable ABI).
    pub fn total_retrans(fd: i32) -> Option<u32> {
        tcp_info_u32(fd, 100)
    }

    /// The connections waiting in a listener's accept queue (`tcpi_unacked`, which
    /// TCP_INFO gives a listening socket for that). Async-signal-safe.
    pub fn accept_queue_len(listener: i32) -> Option<u32> {
        tcp_info_u32(listener, 24)
    }

    /// The socket's TCP state (`tcpi_state`, as in the kernel: 7 is CLOSE).
    /// Async-signal-safe.
    pub fn tcp_state(fd: i32) -> Option<u8> {
        tcp_info_u32(fd, 0).map(|word| u32::to_ne_bytes(word)[0])
    }

    /// The 32-bit word at byte `offset` of the socket's `struct tcp_info`.
    fn tcp_info_u32(fd: i32, offset: usize) -> Option<u32> {
        let mut info = [0u8; 256];
        let mut len = info.len() as libc::socklen_t;
        // SAFETY: valid buffer and length.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        if rc != 0 || (len as usize) < offset + 4 {
            return None;
        }
        Some(u32::from_ne_bytes([
            info[offset],
            info[offset + 1],
            info[offset + 2],
            info[offset + 3],
        ]))
    }
}

/// Waits until no TCP socket with `port` at either end is still open or closing (as
/// /proc/net/tcp{,6} list them; TIME_WAIT and LISTEN are done). The last steps of a close
/// run in softirq, possibly after both processes have exited; stopping the trace before
/// then would leave those connections unfinished. A segment the loopback device drops
/// under load (its backlog is bounded) is sent again only after a backed-off timeout, so
/// this allows 30 s, then panics naming what is still open.
pub fn wait_port_settled(port: u16) {
    // 06 TIME_WAIT, 07 CLOSE, 0A LISTEN.
    let busy = || -> Vec<TcpSocket> {
        tcp_sockets()
            .into_iter()
            .filter(|s| {
                (s.local_port == port || s.remote_port == port)
                    && !matches!(s.state.as_str(), "06" | "07" | "0A")
                    && !s.is_time_wait_minisock()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = busy();
        if open.is_empty() {
            wait_out_softirqs();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} connections on port {port} still not closed after 30 s, e.g. {:?}",
            open.len(),
            &open[..open.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Returns once every softirq running now, on any CPU, has ended. A socket gone from
/// /proc/net/tcp may still have its CLOSE to announce: `tcp_set_state` takes it out of the
/// kernel's tables first and fires `inet_sock_set_state` after (`inet_sk_state_store`), and
/// when a packet or a timer closes it, that runs in a softirq, maybe on another CPU, maybe
/// stalled there (a vCPU the host has not scheduled). `membarrier(MEMBARRIER_CMD_GLOBAL)` is
/// a `synchronize_rcu()`, which waits for every CPU to leave such a section: after it, the
/// close's programs have run and its event is in the ring buffer.
pub fn wait_out_softirqs() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: a system call with no pointers.
    let done = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    assert_eq!(done, 0, "membarrier: {}", std::io::Error::last_os_error());
}

/// Polls `done` every 10 ms until it holds; after `START_TIMEOUT`, panics with `what`.
/// For what the kernel does in its own time (a queue filling, a timer firing): waiting
/// for the event itself, not for a guess at how long it takes on a slow machine.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "still waiting, after {START_TIMEOUT:?}, for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `listener`'s accept queue holds `n` connections.
pub fn wait_accept_queue(listener: i32, n: u32) {
    wait_until(&format!("{n} connection(s) in the accept queue"), || {
        raw::accept_queue_len(listener) == Some(n)
    });
}

/// The inode number of the calling process's network namespace; a raw system call, for
/// forked children.
pub fn own_netns() -> u64 {
    // SAFETY: stat into a zeroed struct; all-zero is a valid `struct stat`.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(c"/proc/self/ns/net".as_ptr(), &raw mut st) == 0 {
            st.st_ino
        } else {
            0
        }
    }
}

/// Waits until a connect to `port` (a socket in SYN_SENT, 02) has sent its SYN again.
pub fn wait_syn_resent(port: u16) {
    wait_until(&format!("a SYN to port {port} sent again"), || {
        tcp_sockets().iter().any(|s| s.remote_port == port && s.state == "02" && s.retransmits > 0)
    });
}

/// Closes a connection between two sockets of this process so that neither has anything
/// left to resend, and returns the sum of their final `tcpi_total_retrans`. The client's
/// FIN goes first; the server's, sent at its EOF, acknowledges it; the server is closed
/// once the client's ACK of that has reached it (its state is CLOSE). A count read before
/// a close misses a FIN that a slow machine resends.
pub fn close_counted(client: i32, server: i32) -> u32 {
    let mut buf = [0u8; 4096];
    // SAFETY: shutting down our own sockets.
    assert_eq!(unsafe { libc::shutdown(client, libc::SHUT_WR) }, 0);
    assert_eq!(raw::read_to_eof(server, &mut buf), Some(0), "the server's EOF");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::shutdown(server, libc::SHUT_WR) }, 0);
    assert_eq!(raw::read_to_eof(client, &mut buf), Some(0), "the client's EOF");
    wait_until("the server's last ACK", || raw::tcp_state(server) == Some(TCP_CLOSE));
    let total = [client, server].map(|fd| raw::total_retrans(fd).expect("TCP_INFO")).iter().sum();
    // SAFETY: closing our own sockets.
    unsafe {
        libc::close(client);
        libc::close(server);
    }
    total
}

/// `TCP_CLOSE` in the kernel's numbering (`tcpi_state`).
const TCP_CLOSE: u8 = 7;

/// The sockaddr for `addr`, ready for `raw::connect` in a forked child.
pub fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    sockaddr(addr)
}

/// The remote port of a connected socket fd.
pub fn peer_port(fd: i32) -> u16 {
    port_by(fd, libc::getpeername)
}

/// The local port of a socket fd.
pub fn local_port(fd: i32) -> u16 {
    port_by(fd, libc::getsockname)
}

type NameCall = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

/// The port of the address `call` (getsockname, getpeername) gives for `fd`.
fn port_by(fd: i32, call: NameCall) -> u16 {
    // SAFETY: all-zero sockaddr_storage is valid; the call fills it. The port is at the
    // same offset in sockaddr_in and sockaddr_in6.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        assert_eq!(call(fd, (&raw mut ss).cast(), &raw mut len), 0);
        let sin: libc::sockaddr_in = std::ptr::read((&raw const ss).cast());
        u16::from_be(sin.sin_port)
    }
}

/// Whether a full socket (any state but TIME_WAIT, 06) with this local port is open.
pub fn port_in_proc_net_tcp(port: u16) -> bool {
    tcp_sockets()
        .iter()
        .any(|s| s.local_port == port && s.state != "06" && !s.is_time_wait_minisock())
}

/// One line of /proc/net/tcp{,6}: the ports, the state (hex, as the kernel prints it) and
/// the timer columns (which timer, when it fires, how often it fired), for diagnostics.
#[derive(Debug)]
struct TcpSocket {
    local_port: u16,
    remote_port: u16,
    state: String,
    timer: String,
    /// How often its timer fired unanswered (`icsk_retransmits`): for a socket in
    /// SYN_SENT, how often its SYN was sent again.
    retransmits: u32,
}

impl TcpSocket {
    /// A time-wait mini-socket: the full socket is gone (its CLOSE came and went) and the
    /// kernel keeps only this for the connection's last packets. Its state column is its
    /// substate, which is FIN_WAIT2 (05) for an orphan closed before the peer's FIN, for up
    /// to `tcp_fin_timeout` (60 s) when that FIN is lost (once in a rare while under the
    /// 20,000-connection load in the VM); only time-wait sockets show timer 3.
    fn is_time_wait_minisock(&self) -> bool {
        self.timer.starts_with("03:")
    }
}

/// Every TCP socket the kernel lists now, IPv4 and IPv6 (lines it cannot parse are left out).
fn tcp_sockets() -> Vec<TcpSocket> {
    let port_of =
        |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                local_port: port_of(f.get(1)?)?,
                remote_port: port_of(f.get(2)?)?,
                state: (*f.get(3)?).to_string(),
                timer: format!("{} retransmits={}", f.get(5)?, f.get(6)?),
                retransmits: u32::from_str_radix(f.get(6)?, 16).ok()?,
            })
        })
        .collect()
}

/// A listening IPv4 socket on 127.0.0.1 (raw fd, so forked children can accept on it).
pub fn listen_v4(backlog: i32) -> (i32, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    use std::os::fd::IntoRawFd;
    let fd = l.into_raw_fd();
    // SAFETY: re-listen with the wanted backlog on our own socket.
    assert_eq!(unsafe { libc::listen(fd, backlog) }, 0);
    (fd, addr)
}

impl Finished {
    /// Events of one type on the connection whose local port is `lport`.
    pub fn on_port(&self, kind: &str, lport: u16) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind && e["lport"] == lport).collect()
    }
}

/// A client and a server process (forked, named `client_comm` and `server_comm`) that
/// exchange `client_sends` and `server_sends` bytes over a connection to `listener`, then
/// keep it open until `close` is called, in any order.
pub struct HeldExchange {
    pub client: i32,
    pub server: i32,
    go_close: [i32; 2],
}

impl HeldExchange {
    pub fn start(
        listener: i32,
        addr: SocketAddr,
        comms: (&CStr, &CStr),
        client_sends: usize,
        server_sends: usize,
    ) -> Self {
        let mut go_close = [0; 2];
        // SAFETY: a pipe that tells both sides to close.
        unsafe { assert_eq!(libc::pipe2(go_close.as_mut_ptr(), libc::O_CLOEXEC), 0) };
        let target = sockaddr(addr);
        let mut buf = vec![0u8; 64 * 1024];
        let data = vec![b'x'; 64 * 1024];
        // Each side waits for a byte of its own on the pipe, not for its end: the processes
        // of a later exchange hold copies of this pipe (fork copies every descriptor), so
        // its end would not come until they exit.
        let wait_then_close = move |fd: i32| {
            let mut byte = [0u8; 1];
            // SAFETY: our pipe end and our socket.
            unsafe {
                let _ = libc::read(go_close[0], byte.as_mut_ptr().cast(), 1);
                libc::close(fd);
            }
        };
        let server = fork_with(comms.1, || {
            // SAFETY: accept on the listener we were given.
            let c = unsafe { libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) };
            if c < 0
                || !raw::read_exactly(c, &mut buf, client_sends)
                || !raw::write_exactly(c, &data, server_sends)
            {
                return 80;
            }
            wait_then_close(c);
            0
        });
        let mut cbuf = vec![0u8; 64 * 1024];
        let cdata = vec![b'y'; 64 * 1024];
        let client = fork_with(comms.0, || {
            let s =
                raw::connect(&target, if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 });
            if s < 0
                || !raw::write_exactly(s, &cdata, client_sends)
                || !raw::read_exactly(s, &mut cbuf, server_sends)
            {
                return 90;
            }
            wait_then_close(s);
            0
        });
        Self { client, server, go_close }
    }

    /// Lets both sides close, and waits for them: true when both did all they should.
    pub fn close(self) -> bool {
        // SAFETY: our pipe ends; one byte for each side.
        unsafe {
            assert_eq!(libc::write(self.go_close[1], b"gg".as_ptr().cast(), 2), 2);
            libc::close(self.go_close[1]);
            libc::close(self.go_close[0]);
        }
        let client = wait_child(self.client);
        let server = wait_child(self.server);
        client == 0 && server == 0
    }
}

/// A running `tcptrace -v --probe $TT_PROBE <global args> serve --listen 127.0.0.1:0
/// <serve args>`, and the address it serves on.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Serve {
    pub fn start(global: &[&str], serve: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", global, serve)
    }

    /// As `start`, serving on `listen`.
    pub fn start_on(listen: &str, global: &[&str], serve: &[&str]) -> Self {
        let mut child = Command::new(tcptrace_bin())
            .args(["-v", "--probe", &probe()])
            .args(global)
            .args(["serve", "--listen", listen])
            .args(serve)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcptrace serve");
        let rx = stderr_lines(&mut child);
        let mut seen = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(START_TIMEOUT) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tcptrace serve did not start: {seen:?}");
            };
            if let Some(url) = line.strip_prefix("tcptrace: serving metrics on http://") {
                assert_hook_paths(&probe(), &seen);
                let addr =
                    url.trim_end_matches("/metrics").parse().expect("address in the start-up line");
                return Self { child, addr, stderr: rx };
            }
            seen.push(line);
        }
    }

    /// Every sample of the current `/metrics`.
    pub fn scrape(&self) -> Vec<Sample> {
        let (status, body) = http_get(self.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        parse_samples(&body)
    }

    /// Scrapes until `done` holds (or a generous time-out, then panics with the last scrape).
    pub fn scrape_until(&self, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let samples = self.scrape();
            if done(&samples) {
                return samples;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {samples:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit code and the stderr lines since start-up.
    pub fn terminate(self) -> (Option<i32>, Vec<String>) {
        self.end_with(libc::SIGTERM)
    }

    /// `signal`, then the exit code and the stderr lines since start-up.
    pub fn end_with(mut self, signal: i32) -> (Option<i32>, Vec<String>) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().expect("wait for tcptrace serve");
        (status.code(), self.stderr.iter().collect())
    }
}

/// One line of the exposition: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the OpenMetrics text format (what tcptrace serves; label values it writes have
/// no escaped quotes or commas).
pub fn parse_samples(body: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) =
            line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner =
                    rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Default::default()),
        };
        out.push(Sample { name, labels, value });
    }
    out
}

/// The sum of the samples named `name` whose labels include every pair of `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// A plain HTTP/1.1 GET on loopback: (status, body). Enough for our own server and
/// Prometheus's API, which both answer with a Content-Length or close the connection.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_accepting(addr, path, "*/*")
}

/// As `http_get`, with this `Accept` header.
pub fn http_get_accepting(addr: SocketAddr, path: &str, accept: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .expect("connect for HTTP GET");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .expect("send HTTP request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read HTTP response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP header end: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Pins the calling thread to the CPU it runs on: the kernel's allocator then hands out
/// the socket addresses this thread's connections free, last freed first.
pub fn pin_to_one_cpu() {
    // SAFETY: a zeroed cpu_set_t is valid; the calls only touch this thread's affinity.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set),
            0,
            "sched_setaffinity"
        );
    }
}

/// The running tracer's connection map (`SOCKS`), opened by id: the newest such map.
pub fn connection_map() -> aya::maps::HashMap<aya::maps::MapData, u64, tracer_common::conn::SockInfo>
{
    let id = aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| m.name_as_str() == Some("SOCKS"))
        .map(|m| m.id())
        .max()
        .expect("no SOCKS map loaded");
    let data = aya::maps::MapData::from_id(id).expect("open SOCKS by id");
    aya::maps::HashMap::try_from(aya::maps::Map::LruHashMap(data)).expect("SOCKS as a hash map")
}

/// Nanoseconds of CLOCK_MONOTONIC, the programs' clock.
pub fn monotonic_ns() -> u64 {
    // SAFETY: a zeroed timespec is valid; clock_gettime fills it.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        assert_eq!(libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts), 0);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// capget/capset's `struct __user_cap_header_struct`: version 3 (two 32-bit data
/// structs), this process (pid 0).
const CAPABILITY_HEADER: [u32; 2] = [0x2008_0522, 0];

/// Cuts this process's capability bounding set to the capabilities in the mask `keep`
/// (bit N: capability N), and empties its inheritable and ambient sets (an exec by root
/// adds those to what the bounding set allows): an exec by root then grants exactly
/// `keep`. Async-signal-safe.
fn bound_capabilities(keep: u64) -> std::io::Result<()> {
    // SAFETY: prctl and capget/capset on this process only, with valid buffers.
    unsafe {
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // Two __user_cap_data_struct: effective, permitted, inheritable.
        let header = CAPABILITY_HEADER;
        let mut data = [0u32; 6];
        if libc::syscall(libc::SYS_capget, header.as_ptr(), data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        (data[2], data[5]) = (0, 0);
        if libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for cap in 0..64u32 {
        // SAFETY: prctl on this process only.
        if keep >> cap & 1 == 0
            && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0
        {
            let err = std::io::Error::last_os_error();
            // Past the last capability the kernel knows: done.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Capability numbers, from `linux/capability.h`.
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Whether perf_event_open is refused to a root process with CAP_BPF and CAP_PERFMON
/// alone, as Debian's kernels do when `kernel.perf_event_paranoid` is above 2: a forked
/// child with only those capabilities tries to open a software event on itself.
pub fn perf_events_need_sys_admin() -> bool {
    let keep = 1u64 << CAP_BPF | 1 << CAP_PERFMON;
    let child = fork_with(c"tt-perf-check", || {
        if bound_capabilities(keep).is_err() {
            return 10;
        }
        let header = CAPABILITY_HEADER;
        let (low, high) = (keep as u32, (keep >> 32) as u32);
        let data: [u32; 6] = [low, low, 0, high, high, 0]; // effective, permitted, inheritable
                                                           // SAFETY: valid header and data for capset(2) on this process.
        if unsafe { libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) } != 0 {
            return 11;
        }
        // A perf_event_attr of 128 bytes: type PERF_TYPE_SOFTWARE, size, config
        // PERF_COUNT_SW_DUMMY; counting only (no sampling), disabled.
        let mut attr = [0u64; 16];
        attr[0] = 1 | 128 << 32;
        attr[1] = 9;
        attr[5] = 1; // the `disabled` bit
                     // SAFETY: a valid attr; pid 0 (this process), any CPU, no group.
        let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
        match fd {
            0.. => 0,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) => 1,
            _ => 12,
        }
    });
    match wait_child(child) {
        0 => false,
        1 => true,
        other => panic!("the perf event check failed in its step {other}"),
    }
}

/// Sets a sysctl (`kernel.perf_event_paranoid`) for as long as the guard lives.
pub struct Sysctl {
    path: String,
    old: String,
}

impl Sysctl {
    pub fn set(name: &str, value: &str) -> Self {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let old = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _restored = std::fs::write(&self.path, self.old.trim());
    }
}
