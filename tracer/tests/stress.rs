//! tcptrace under load, on the running kernel with the hook family from `TT_PROBE`: 20,000
//! connections, a connection table too small for what is open, Ctrl-C while its reader
//! lags, and a start and a stop in the middle of churn. Nothing may be lost silently.

mod common;

use std::ffi::CStr;

use common::{
    effective_family, fork_with, in_vm, listen_v4, raw, serial, sockaddr_of, wait_child,
    wait_port_settled, Finished, Trace,
};
use serde_json::Value;

/// 20,000 short connections from four client processes to one server process: every
/// connect has its close, every event carries the right pid, nothing is lost, and the
/// kernel's per-connection map is empty afterwards.
#[test]
fn load_of_20000_connections_loses_nothing_and_leaks_nothing() {
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 5_000;
    let _serial = serial();
    let (lfd, addr) = listen_v4(4096);
    let port = addr.port();
    let trace = Trace::new(&[
        "-e",
        "connect,accept,close",
        "--port",
        &port.to_string(),
        "--ring-buffer",
        "16M",
    ])
    .start();
    let server = fork_with(c"tt-load-srv", move || {
        for _ in 0..CLIENTS * PER_CLIENT {
            // SAFETY: accept and close on our listener.
            unsafe {
                let c = raw::accept(lfd);
                if c < 0 {
                    return 50;
                }
                libc::close(c);
            }
        }
        0
    });
    let sa = sockaddr_of(addr);
    let names: [&CStr; CLIENTS] = [c"tt-load-0", c"tt-load-1", c"tt-load-2", c"tt-load-3"];
    let clients: Vec<i32> = names
        .iter()
        .map(|name| {
            let mut buf = [0u8; 64];
            fork_with(name, move || {
                for _ in 0..PER_CLIENT {
                    let s = raw::connect(&sa, libc::AF_INET);
                    if s < 0 || raw::read_to_eof(s, &mut buf).is_none() {
                        return 60;
                    }
                    // SAFETY: closing our fd.
                    unsafe { libc::close(s) };
                }
                0
            })
        })
        .collect();
    for pid in &clients {
        assert_eq!(wait_child(*pid), 0, "client {pid}");
    }
    assert_eq!(wait_child(server), 0, "server");
    // SAFETY: closing our listener.
    unsafe { libc::close(lfd) };
    wait_port_settled(port);
    let done = trace.stop();

    // The kernel can skip a program when it is already running on the same CPU (see
    // tracer-ebpf/src/state/mod.rs); tcptrace then says so. What this test holds it to:
    // with nothing reported lost and nothing left tracked, everything is exact; otherwise
    // nothing is lost silently.
    let summary = done.summary();
    let lost = done.lost();
    let tracked = common::tracked_at_exit(&done.stderr);
    let total = CLIENTS * PER_CLIENT;
    // Ports are reused over 20,000 connections: pair connects and closes as multisets of
    // (pid, local port).
    let tally = |kind: &str| {
        let mut counts = std::collections::BTreeMap::<(i64, u64), usize>::new();
        for e in done.events.iter().filter(|e| e["type"] == kind && e["rport"] == port) {
            *counts
                .entry((e["pid"].as_i64().unwrap_or(-1), e["lport"].as_u64().unwrap_or(0)))
                .or_default() += 1;
        }
        counts
    };
    let connects = tally("connect");
    let closes = tally("close");
    assert!(done.events.iter().filter(|e| e["type"] == "connect").all(|e| e["result"] == "ok"));
    for (key, n) in &closes {
        assert!(connects.get(key).is_some_and(|c| c >= n), "close without its connect: {key:?}");
    }
    let server_side =
        done.events.iter().filter(|e| e["type"] == "close" && e["lport"] == port).count();
    // Events whose owner tcptrace could not tell ("-"): allowed only as a counted loss (a
    // missed accept); an event with a *wrong* pid is never allowed (checked below).
    let ownerless = done.events.iter().filter(|e| e["pid"].is_null()).count();
    let missing = (total - connects.values().sum::<usize>())
        + (total - closes.values().sum::<usize>())
        + (total - done.of("accept", server).len())
        + (total - server_side)
        + ownerless;
    // Kprobes share one recursion guard for all BPF programs, and kernels before 6.7 do not
    // count what it skips: on the kprobe family in the 6.1 VM some loss under this churn is
    // inherent and invisible to tcptrace (as to every kprobe-based tool). There, and only
    // there, the test bounds it at 1% of the events instead of requiring it be reported.
    let invisible_allowance =
        if effective_family() == "kprobe" && in_vm() { total * 4 / 100 } else { 0 };
    if lost == 0 && tracked == 0 && invisible_allowance == 0 {
        assert_eq!(
            missing, 0,
            "nothing reported lost, yet {missing} events are missing: {summary}"
        );
        assert_eq!(closes, connects, "every connect has its close, with the same owner and port");
        assert_eq!(tracked, 0, "{:?}", done.stderr);
        for pid in &clients {
            assert_eq!(done.of("connect", *pid).len(), PER_CLIENT, "connects of {pid}");
        }
        assert_eq!(done.of("close", server).len(), total);
    } else {
        // A skipped CLOSE shows as a connection still tracked at exit (every one of this
        // test's has ended).
        assert!(
            missing <= lost + tracked + invisible_allowance,
            "{missing} events missing or ownerless, {lost} reported lost, {tracked} still tracked: {summary}"
        );
    }
    let wrong: Vec<&Value> = done
        .events
        .iter()
        .filter(|e| {
            !e["pid"].is_null() && e["pid"] != server && !clients.iter().any(|c| e["pid"] == *c)
        })
        .take(3)
        .collect();
    assert!(wrong.is_empty(), "events with a pid that made none of this traffic: {wrong:?}");
}

/// One process opening and closing connections to itself, one at a time, the client
/// closing first: connect, accept, close both, until stopped; as fast as it can, or with a
/// pause after each. (Not with SO_REUSEADDR on its clients: a port bound with it is one
/// the kernel's search for a free port skips while the port's TIME_WAIT sockets last, and
/// with thousands of them each connect walked the whole range, which under emulation
/// stalled the VM's kernel.)
struct Churn {
    pid: i32,
    /// The write end of a pipe whose closing tells the churn to end.
    stop_fd: i32,
}

impl Churn {
    fn start(lfd: i32, addr: std::net::SocketAddr, pause: Option<std::time::Duration>) -> Self {
        let sa = sockaddr_of(addr);
        let pause = pause.map(|p| libc::timespec { tv_sec: 0, tv_nsec: p.subsec_nanos().into() });
        let mut pipe = [0; 2];
        // SAFETY: pipe2 into a two-element array.
        assert_eq!(
            unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
            0
        );
        let pid = fork_with(c"tt-churn", move || {
            let mut byte = 0u8;
            // SAFETY: plain system calls on our own fds.
            unsafe {
                libc::close(pipe[1]);
                while libc::read(pipe[0], (&raw mut byte).cast(), 1) != 0 {
                    let c = raw::connect(&sa, libc::AF_INET);
                    let s = raw::accept(lfd);
                    if c < 0 || s < 0 {
                        return 71;
                    }
                    libc::close(c);
                    libc::close(s);
                    if let Some(p) = &pause {
                        libc::nanosleep(p, std::ptr::null_mut());
                    }
                }
            }
            0
        });
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(pipe[0]) };
        Self { pid, stop_fd: pipe[1] }
    }

    /// Ends the churn; its pid.
    fn stop(mut self) -> i32 {
        let fd = std::mem::replace(&mut self.stop_fd, -1);
        // SAFETY: closing the write end ends the child's loop.
        unsafe { libc::close(fd) };
        assert_eq!(wait_child(self.pid), 0, "the churn failed");
        self.pid
    }
}

/// A test that fails halfway must not leave the churn running under the tests after it.
impl Drop for Churn {
    fn drop(&mut self) {
        if self.stop_fd >= 0 {
            // SAFETY: as in `stop`.
            unsafe { libc::close(self.stop_fd) };
            wait_child(self.pid);
        }
    }
}

/// Ctrl-C heard while events come faster than tcptrace's reader takes its output: the
/// ring buffer never empties, and a drain that went on until it did never ended, so
/// tcptrace ignored SIGINT until the traffic stopped (under software emulation, the
/// harness's memory ran out first). It now drains a batch at a time and looks at its
/// signals in between: it stops within one batch and a last drain, prints every event it
/// counts, and reports what the full ring buffer cost.
#[test]
fn ctrl_c_is_heard_while_the_output_reader_lags_behind() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(4096);
    let port = addr.port();
    // About a thousand connections a second: three JSON lines each, several times what
    // the reader below takes.
    let churn = Churn::start(lfd, addr, Some(std::time::Duration::from_millis(1)));
    let mut trace = Trace::new(&[
        "-e",
        "connect,accept,close",
        "--port",
        &port.to_string(),
        "--ring-buffer",
        "64K",
    ])
    .start();
    let stdout = trace.take_stdout();
    // A reader of 80 KB/s, far slower than the churn's events (even under emulation).
    let reader = std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    trace.signal(libc::SIGINT);
    // With the churn still running: before, tcptrace would not exit until it stopped.
    let (code, _, stderr) = trace.wait_for_exit();
    let churn = churn.stop();
    // SAFETY: closing our listener.
    unsafe { libc::close(lfd) };
    let out = String::from_utf8(reader.join().expect("the reader")).expect("utf-8 output");
    assert_eq!(code, Some(0), "{stderr:?}");
    let summary = common::summary_in(&stderr);
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    let counted = common::count(summary.events);
    assert_eq!(events.len(), counted, "every event counted is printed: {summary}");
    assert!(
        events.iter().all(|e| e["pid"].is_null() || e["pid"] == churn),
        "an event with a pid other than the churn's"
    );
    let full = summary.lost_by_reason.ring_buffer_full;
    assert!(full > 0, "the slow reader filled the ring buffer, and that is counted: {summary}");
}

/// tcptrace started and stopped while connections open and close as fast as one process
/// can make them. Its hooks attach one at a time (each program verified as it loads, tens
/// of milliseconds apart), and the state hook is two programs that must both run for every
/// change to be taken: before the programs waited to be switched on together, a
/// connection that began and ended while only one was attached kept an entry its close
/// never removed, and each such entry was counted lost when its socket's address came
/// round again (a start under churn lost dozens to thousands, a stop too). Now nothing
/// is lost at either end, and only the one connection open at each end can be cut.
#[test]
fn a_trace_started_and_stopped_during_churn_loses_nothing() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(4096);
    let port = addr.port();
    let churn = Churn::start(lfd, addr, None);
    // Under way before the start.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The harness reads tcptrace's output only once it stops: a ring buffer that holds the
    // whole run's events, as in the load test.
    let trace = Trace::new(&[
        "-e",
        "connect,accept,close",
        "--port",
        &port.to_string(),
        "--ring-buffer",
        "16M",
    ])
    .start();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let done = trace.stop(); // with the churn still running
    let churn = churn.stop();
    // SAFETY: closing our listener.
    unsafe { libc::close(lfd) };

    assert_eq!(done.lost(), 0, "{}", done.summary());
    let on_port = |kind: &str, pid: Option<i32>| {
        done.events
            .iter()
            .filter(|e| {
                e["type"] == kind
                    && (e["lport"] == port || e["rport"] == port)
                    && pid.map_or(e["pid"].is_null(), |p| e["pid"] == p)
            })
            .count()
    };
    let client_closes = done
        .events
        .iter()
        .filter(|e| e["type"] == "close" && e["rport"] == port && e["pid"] == churn)
        .count();
    let server_closes = done
        .events
        .iter()
        .filter(|e| e["type"] == "close" && e["lport"] == port && e["pid"] == churn)
        .count();
    let (connects, accepts) = (on_port("connect", Some(churn)), on_port("accept", Some(churn)));
    assert!(connects > 0 && accepts > 0, "the trace saw no churn: {}", done.summary());
    // The connection open when tracing stopped may miss its closes; every other one has
    // both, with its owner.
    assert!(
        connects - client_closes <= 1 && client_closes <= connects,
        "{connects} connects, {client_closes} client closes"
    );
    assert!(
        accepts - server_closes <= 1 && server_closes <= accepts,
        "{accepts} accepts, {server_closes} server closes"
    );
    // The connection open when tracing started may close without an owner (its connect
    // and accept came before); no other event lacks one, and none has another's.
    assert!(on_port("close", None) <= 2, "{} closes without an owner", on_port("close", None));
    let others = done
        .events
        .iter()
        .filter(|e| {
            !e["pid"].is_null() && e["pid"] != churn && (e["lport"] == port || e["rport"] == port)
        })
        .count();
    assert_eq!(others, 0, "events of port {port} with a pid other than {churn}");
}

/// The kernel's connection table (`--max-connections`, LRU) drops its oldest entries when
/// more connections are open at once than it holds. tcptrace must say how many, exactly:
/// each dropped connection has lost its owner, so its close comes without a pid. The same
/// connections with the default table lose nothing.
#[test]
fn a_full_connection_table_is_reported_exactly() {
    const OPEN: usize = 1_500; // both ends tracked: 3,000 entries
    const SMALL_TABLE: usize = 1_024; // the least --max-connections takes
    let _serial = serial();
    let (small, small_port, holder) =
        hold_connections_open(OPEN, &["--max-connections", &SMALL_TABLE.to_string()]);
    let (default, default_port, default_holder) = hold_connections_open(OPEN, &[]);

    for (done, port, pid) in
        [(&small, small_port, holder), (&default, default_port, default_holder)]
    {
        // Every event comes; an owner is either right or missing, never wrong.
        assert_eq!(done.of("connect", pid).len(), OPEN, "{}", done.summary());
        assert_eq!(done.of("accept", pid).len(), OPEN, "{}", done.summary());
        let closes: Vec<&Value> = done
            .events
            .iter()
            .filter(|e| e["type"] == "close" && (e["lport"] == port || e["rport"] == port))
            .collect();
        assert_eq!(closes.len(), 2 * OPEN, "{}; {}", done.summary(), unclosed_ends(done, port));
        assert!(
            closes.iter().all(|e| e["pid"].is_null() || e["pid"] == pid),
            "a close with a wrong owner"
        );
    }
    let ownerless = |done: &Finished, port: u16| {
        done.events
            .iter()
            .filter(|e| {
                e["type"] == "close"
                    && e["pid"].is_null()
                    && (e["lport"] == port || e["rport"] == port)
            })
            .count()
    };
    let forgotten = |done: &Finished| common::forgotten_in(&done.summary());
    // The small table: at least what did not fit was dropped, each one a close without
    // its owner, and nothing else lost.
    let dropped = forgotten(&small);
    assert!(dropped >= 2 * OPEN - SMALL_TABLE, "{}", small.summary());
    assert_eq!(ownerless(&small, small_port), dropped, "{}", small.summary());
    assert_eq!(small.lost(), dropped, "{}", small.summary());
    assert!(small.summary().to_string().contains("raise --max-connections"), "{}", small.summary());
    // The default table holds them all.
    assert_eq!(forgotten(&default), 0, "{}", default.summary());
    assert_eq!(ownerless(&default, default_port), 0);
    assert_eq!(default.lost(), 0, "{}", default.summary());
}

/// The ends of connections to `port` that connected but have no close event: which side
/// and when, to tell a lost event from one the trace stopped too early for.
fn unclosed_ends(done: &Finished, port: u16) -> String {
    let closed = |lport: &Value, rport: &Value| {
        done.events
            .iter()
            .any(|e| e["type"] == "close" && e["lport"] == *lport && e["rport"] == *rport)
    };
    let mut missing = Vec::new();
    for c in done.events.iter().filter(|e| e["type"] == "connect" && e["rport"] == port) {
        if !closed(&c["lport"], &c["rport"]) {
            missing.push(format!("client end :{} (connected at {})", c["lport"], c["time"]));
        }
        if !closed(&c["rport"], &c["lport"]) {
            missing.push(format!("server end of :{} (connected at {})", c["lport"], c["time"]));
        }
    }
    format!("no close for {missing:?}")
}

/// One process opens `count` connections to itself, holds them all open, then closes
/// them, under a trace with `args`: the trace, the port and the process.
fn hold_connections_open(count: usize, args: &[&str]) -> (Finished, u16, i32) {
    let (lfd, addr) = listen_v4(4096);
    let port = addr.port();
    let mut trace_args = vec!["-e", "connect,accept,close"];
    trace_args.extend_from_slice(args);
    let port_arg = port.to_string();
    trace_args.extend_from_slice(&["--port", &port_arg]);
    let trace = Trace::new(&trace_args).start();
    let sa = sockaddr_of(addr);
    let mut fds: Vec<i32> = Vec::with_capacity(2 * count);
    let holder = fork_with(c"tt-table", move || {
        let limit = libc::rlimit { rlim_cur: 8192, rlim_max: 8192 };
        // SAFETY: raw system calls on our own fds and a valid rlimit.
        unsafe {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
                return 70;
            }
            for _ in 0..count {
                let c = raw::connect(&sa, libc::AF_INET);
                let s = raw::accept(lfd);
                if c < 0 || s < 0 {
                    return 71;
                }
                fds.push(c); // within capacity: no allocation in the child
                fds.push(s);
            }
            for &fd in &fds {
                libc::close(fd);
            }
        }
        0
    });
    assert_eq!(wait_child(holder), 0, "the connection holder failed");
    // SAFETY: closing our listener.
    unsafe { libc::close(lfd) };
    wait_port_settled(port);
    (trace.stop(), port, holder)
}
