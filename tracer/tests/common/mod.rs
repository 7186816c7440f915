//! Shared harness for the integration tests: run `tcptrace` as a child, make real TCP
//! traffic from forked processes with a known pid, comm and uid, and read back the events.
//!
//! Environment (set by `cargo xtask test`, on the host and inside the VM):
//! - `TT_PROBE`: the hook family to force (`auto`, `fentry`, `kprobe`, `tracepoint`).
//! - `TT_EXPECT_AUTO`: which family auto mode must pick on this kernel (`tracepoint` on the
//!   host, whose kernel has no kprobes and refuses fentry; `fentry` on Debian 6.1).
//! - `TCPTRACE_BIN`: the binary to run (inside the VM, where cargo's path does not exist).
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::{
    ffi::CStr,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{mpsc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;

/// Tests attach kernel programs and count events machine-wide: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn tcptrace_bin() -> PathBuf {
    std::env::var_os("TCPTRACE_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tcptrace")), PathBuf::from)
}

/// The family under test.
pub fn probe() -> String {
    std::env::var("TT_PROBE").unwrap_or_else(|_| "auto".into())
}

/// The family auto mode picks on this kernel.
pub fn expect_auto() -> String {
    std::env::var("TT_EXPECT_AUTO").unwrap_or_else(|_| "tracepoint".into())
}

/// The family the connect hook really uses in this run.
pub fn effective_family() -> String {
    match probe().as_str() {
        "auto" => expect_auto(),
        other => other.to_string(),
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
}

impl Trace {
    /// Starts tcptrace with the family under test and waits until it says it is tracing.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_probe(&probe(), args)
    }

    pub fn start_with_probe(family: &str, args: &[&str]) -> Self {
        let mut child = Command::new(tcptrace_bin())
            .args(["-o", "json", "-v", "--probe", family])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcptrace");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut trace = Self { child, stderr: rx, stderr_seen: Vec::new() };
        loop {
            match trace.stderr.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    let ready = line.contains("tracing; Ctrl-C to stop");
                    trace.stderr_seen.push(line);
                    if ready {
                        return trace;
                    }
                }
                Err(_) => {
                    let _ = trace.child.kill();
                    panic!("tcptrace did not start: {:?}", trace.stderr_seen);
                }
            }
        }
    }

    /// Stops tcptrace with SIGINT (it drains the ring buffer first) and parses its output.
    pub fn stop(mut self) -> Finished {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let out = self.child.wait_with_output().expect("wait for tcptrace");
        self.stderr_seen.extend(self.stderr.try_iter());
        let text = String::from_utf8(out.stdout).expect("utf-8 output");
        let events = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        Finished { events, stderr: self.stderr_seen, status: out.status }
    }
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
    /// Forks a child that waits for `go()`, then connects to `addr` and exits with 0 on
    /// success or the connect errno. Everything is prepared before fork: the child makes
    /// only raw system calls (it is the fork of a multi-threaded process).
    pub fn connector(setup: PeerSetup<'_>, addr: SocketAddr) -> Self {
        let (ss, len) = sockaddr(addr);
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let mut fds = [0; 2];
        // SAFETY: plain system calls; the child only calls async-signal-safe functions.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                libc::close(fds[1]);
                libc::prctl(libc::PR_SET_NAME, setup.comm.as_ptr());
                if setup.empty_netns && libc::unshare(libc::CLONE_NEWNET) != 0 {
                    libc::_exit(200);
                }
                if libc::setresgid(setup.uid, setup.uid, setup.uid) != 0 || libc::setresuid(setup.uid, setup.uid, setup.uid) != 0 {
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
