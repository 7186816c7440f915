//! Running `tcptrace` as a child (`-o json -v --probe $TT_PROBE`), and reading back its
//! events and stderr.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

use super::{
    assert_calls_mode_refused, calls_mode_available, capabilities::bound_capabilities, expect_auto,
    probe, START_TIMEOUT,
};

/// The tcptrace binary under test.
pub fn tcptrace_bin() -> PathBuf {
    std::env::var_os("TCPTRACE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tcptrace")), PathBuf::from)
}

/// Checks that the state, retransmit and accept hooks attached the way `family` must on
/// these kernels, as `-v` says: both have BTF, so the tracepoint family takes the
/// BTF-typed tracepoints (and the typed task) unless told not to.
pub(super) fn assert_hook_paths(family: &str, stderr: &[String]) {
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

    /// Events of one type on the connection whose local port is `lport`.
    pub fn on_port(&self, kind: &str, lport: u16) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind && e["lport"] == lport).collect()
    }
}

/// How to run tcptrace: built with `Trace::new(args)`, then started. By default
/// `tcptrace -o json -v --probe $TT_PROBE <args>`; each setter changes one thing:
///
/// ```ignore
/// Trace::new(&["-e", "connect"]).probe("kprobe").format("plain").capabilities(mask).start()
/// ```
#[must_use = "a Trace runs only once started"]
pub struct TraceBuilder {
    args: Vec<String>,
    family: String,
    /// `-o` and its value; `None`: no `-o` at all.
    format: Option<String>,
    /// The capability bounding set to exec tcptrace under (bit N: capability N).
    capabilities: Option<u64>,
}

impl TraceBuilder {
    /// The hook family to force (`--probe`), instead of `TT_PROBE`'s.
    pub fn probe(mut self, family: &str) -> Self {
        self.family = family.to_string();
        self
    }

    /// `-o format` instead of JSON (whose lines `stop` parses; read other formats with
    /// `stop_raw` or `wait_for_exit`).
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_string());
        self
    }

    /// More arguments after those given so far.
    pub fn args(mut self, more: &[&str]) -> Self {
        self.args.extend(more.iter().map(ToString::to_string));
        self
    }

    /// `tcptrace <args> top <top_args>`: no `-o`, which top refuses (it prints its own
    /// snapshots, read through `take_stdout`).
    pub fn top(mut self, top_args: &[&str]) -> Self {
        self.format = None;
        self.args.push("top".into());
        self.args(top_args)
    }

    /// Still as root's uid but with no capability beyond `keep` (numbers, as in
    /// `linux/capability.h`): the bounding set is cut to them before the exec, which then
    /// grants root exactly those, as a container runtime does.
    pub fn capabilities(mut self, keep: u64) -> Self {
        self.capabilities = Some(keep);
        self
    }

    /// Starts tcptrace and waits until it says it is tracing; panics if it exits instead.
    pub fn start(self) -> Trace {
        self.try_start().unwrap_or_else(|stderr| panic!("tcptrace did not start: {stderr:?}"))
    }

    /// Like `start`, but a tcptrace that exits instead of tracing is an `Err` with its
    /// stderr.
    pub fn try_start(self) -> Result<Trace, Vec<String>> {
        Trace::spawn(self)
    }

    /// For a trace whose arguments ask for per-call byte counting: started where it can
    /// attach; where it cannot (see `calls_mode_available`), checks the one-line refusal
    /// and gives `None`.
    pub fn start_per_call(self) -> Option<Trace> {
        match self.try_start() {
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
}

impl Trace {
    /// A trace of `args` with the family under test, in JSON: set what differs, then
    /// `start` it.
    #[allow(clippy::new_ret_no_self, reason = "a builder: `Trace::new(args).start()`")]
    pub fn new(args: &[&str]) -> TraceBuilder {
        TraceBuilder {
            args: args.iter().map(ToString::to_string).collect(),
            family: probe(),
            format: Some("json".into()),
            capabilities: None,
        }
    }

    fn spawn(how: TraceBuilder) -> Result<Self, Vec<String>> {
        let TraceBuilder { args, family, format, capabilities } = how;
        let output: Vec<&str> = format.as_deref().map_or(vec![], |f| vec!["-o", f]);
        let mut command = Command::new(tcptrace_bin());
        command
            .args(output)
            .args(["-v", "--probe", &family])
            .args(&args)
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
                        assert_hook_paths(&family, &trace.stderr_seen);
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

/// Kills and reaps `child` unless it has already exited.
pub(super) fn end_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The child's stderr, a line at a time, read by a thread of its own.
pub(super) fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
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
