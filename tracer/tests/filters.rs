//! Every kernel-side filter, with traffic from two processes (or to two ports): the events
//! of the one the filter keeps are there with their exact pid, and none of the other's
//! are; the summary counts what the kernel dropped. Runs under each hook family, on the
//! host and in the VM. The filters of one shape (one peer kept, the other dropped) are one
//! table, `CASES`; tests/netns.rs has the network namespace filter.

mod common;

use std::{
    ffi::CStr,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
};

use common::{connect_all, events::assert_fields, serial, Finished, Peer, PeerSetup, Trace};

const NOBODY: u32 = 65_534;

fn setup(comm: &'static CStr, uid: u32) -> PeerSetup<'static> {
    PeerSetup { comm, uid, empty_netns: false }
}

/// Where a peer of a `Case` connects: a listener on 127.0.0.1 or ::1, or a port of
/// 127.0.0.1 nothing listens on (the connect is refused).
#[derive(Clone, Copy, PartialEq)]
enum To {
    V4,
    V6,
    Closed,
}

/// One peer of a `Case`, in the order they connect.
struct Connector {
    comm: &'static CStr,
    uid: u32,
    to: To,
    /// Whether the filter keeps its connect.
    kept: bool,
    /// Moved into a cgroup of the test's own (`{cgroup}` in the arguments) before tracing.
    in_cgroup: bool,
    /// What its connect must return, where the case says (0, or the errno).
    returns: Option<i32>,
}

const fn kept(comm: &'static CStr, uid: u32, to: To) -> Connector {
    Connector { comm, uid, to, kept: true, in_cgroup: false, returns: None }
}

const fn dropped(comm: &'static CStr, uid: u32, to: To) -> Connector {
    Connector { comm, uid, to, kept: false, in_cgroup: false, returns: None }
}

/// A filter of one shape: under `tcptrace <args>`, the peers connect in turn; the only
/// event is the kept one's connect (with `kept_has`, a JSON object of fields it must have,
/// and the port it connected to), and the summary counts what the kernel filtered. In
/// `args`, `{v4}`, `{v6}` and `{closed}` stand for the ports of `To`, `{cgroup}` for the
/// cgroup's path.
struct Case {
    /// The test that runs it (a test may run several).
    test: &'static str,
    args: &'static [&'static str],
    peers: &'static [Connector],
    kept_has: &'static str,
}

const CASES: &[Case] = &[
    Case {
        test: "comm_keeps_that_process_name_only",
        args: &["-e", "connect", "--comm", "tt-f-kept"],
        peers: &[dropped(c"tt-f-other", NOBODY, To::V4), kept(c"tt-f-kept", NOBODY, To::V4)],
        kept_has: "{}",
    },
    Case {
        test: "uid_keeps_that_user_only",
        args: &["-e", "connect", "-u", "4321"],
        peers: &[dropped(c"tt-f-uid", NOBODY, To::V4), kept(c"tt-f-uid", 4_321, To::V4)],
        kept_has: r#"{"uid": 4321}"#,
    },
    // The ports keep other traffic of the machine out of the count.
    Case {
        test: "ip_version_flags_keep_one_family",
        args: &["-e", "connect", "-4", "--port", "{v4}", "--port", "{v6}"],
        peers: &[kept(c"tt-f-ip", NOBODY, To::V4), dropped(c"tt-f-ip", NOBODY, To::V6)],
        kept_has: "{}",
    },
    Case {
        test: "ip_version_flags_keep_one_family",
        args: &["-e", "connect", "-6", "--port", "{v4}", "--port", "{v6}"],
        peers: &[dropped(c"tt-f-ip", NOBODY, To::V4), kept(c"tt-f-ip", NOBODY, To::V6)],
        kept_has: "{}",
    },
    // No -e: --failed alone means connect events.
    Case {
        test: "failed_keeps_failed_connects_only",
        args: &["--failed", "--port", "{v4}", "--port", "{closed}"],
        peers: &[
            dropped(c"tt-f-ok", NOBODY, To::V4),
            Connector {
                returns: Some(libc::ECONNREFUSED),
                ..kept(c"tt-f-refused", NOBODY, To::Closed)
            },
        ],
        kept_has: r#"{"error": "ECONNREFUSED"}"#,
    },
    Case {
        test: "cgroup_keeps_processes_in_that_cgroup_only",
        args: &["-e", "connect", "--cgroup", "{cgroup}"],
        peers: &[
            dropped(c"tt-f-cg-out", NOBODY, To::V4),
            Connector { in_cgroup: true, ..kept(c"tt-f-cg-in", NOBODY, To::V4) },
        ],
        kept_has: "{}",
    },
];

/// Runs every case of `test`, in the table's order.
fn run_cases(test: &str) {
    let _serial = serial();
    let cases: Vec<&Case> = CASES.iter().filter(|c| c.test == test).collect();
    assert!(!cases.is_empty(), "no case for {test}");
    for case in cases {
        run(case);
    }
}

fn run(case: &Case) {
    let name = format!("{} {:?}", case.test, case.args);
    let uses = |to| case.peers.iter().any(|p| p.to == to);
    // Listeners for as long as the case runs; the closed port's, gone at once.
    let (_l4, v4) = listener("127.0.0.1:0");
    let v6 = uses(To::V6).then(|| listener("[::1]:0"));
    let closed = listener("127.0.0.1:0").1;
    let addr = |to| match to {
        To::V4 => v4,
        To::V6 => v6.as_ref().expect("a listener on ::1").1,
        To::Closed => closed,
    };
    let peers: Vec<Peer> =
        case.peers.iter().map(|p| Peer::connector(setup(p.comm, p.uid), addr(p.to))).collect();
    let in_cgroup = case.peers.iter().zip(&peers).find(|(c, _)| c.in_cgroup);
    let cgroup = in_cgroup.map(|(_, p)| TestCgroup::holding("tt-filter", p.pid));
    let port = |to| addr(to).port().to_string();
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| match *a {
            "{v4}" => port(To::V4),
            "{v6}" => port(To::V6),
            "{closed}" => port(To::Closed),
            "{cgroup}" => cgroup.as_ref().expect("a cgroup").path().to_string(),
            other => other.to_string(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let trace = Trace::new(&args).start();
    let results = connect_all(peers);
    let done = trace.stop();
    for (peer, (_, rc)) in case.peers.iter().zip(&results) {
        if let Some(want) = peer.returns {
            assert_eq!(*rc, want, "{name}: {}'s connect", peer.comm.to_string_lossy());
        }
    }
    let (i, kept) = case.peers.iter().enumerate().find(|(_, p)| p.kept).expect("a kept peer");
    assert_only(&done, results[i].0, addr(kept.to).port(), &name);
    let kept_has = serde_json::from_str(case.kept_has).expect("kept_has: a JSON object");
    assert_fields(&done.events[0], &kept_has);
}

/// A test for each case of the table.
macro_rules! filter_tests {
    ($($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_cases(stringify!($test));
            }
        )*
    };
}

filter_tests!(
    comm_keeps_that_process_name_only,
    uid_keeps_that_user_only,
    ip_version_flags_keep_one_family,
    failed_keeps_failed_connects_only,
    cgroup_keeps_processes_in_that_cgroup_only,
);

/// Every event is a connect from `kept`, exactly one, with that port; the summary says the
/// kernel filtered something.
fn assert_only(done: &Finished, kept: i32, rport: u16, case: &str) {
    let connects = done.of("connect", kept);
    assert_eq!(connects.len(), 1, "{case}: want one connect from {kept}: {:?}", done.events);
    assert_eq!(connects[0]["rport"], rport, "{case}");
    assert_eq!(done.events.len(), 1, "{case}: only the kept connect: {:?}", done.events);
    assert!(
        done.filtered().is_some_and(|n| n > 0),
        "{case}: the kernel filtered nothing: {:?}",
        done.stderr
    );
}

fn listener(bind: &str) -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(bind).expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

#[test]
fn pids_are_repeatable_and_keep_only_those_processes() {
    let _serial = serial();
    let (_l, addr) = listener("127.0.0.1:0");
    let peers: Vec<Peer> =
        (0..3).map(|_| Peer::connector(setup(c"tt-f-pid", NOBODY), addr)).collect();
    let pids: Vec<String> = peers.iter().map(|p| p.pid.to_string()).collect();
    let trace = Trace::new(&["-e", "connect", "-p", &pids[0], "-p", &pids[2]]).start();
    let results = connect_all(peers);
    let done = trace.stop();
    for (i, (pid, rc)) in results.iter().enumerate() {
        assert_eq!(*rc, 0);
        let want = if i == 1 { 0 } else { 1 };
        assert_eq!(done.of("connect", *pid).len(), want, "peer {i}: {:?}", done.events);
    }
    assert_eq!(done.events.len(), 2, "{:?}", done.events);
}

#[test]
fn port_ranges_on_either_side_on_the_remote_side_and_on_the_local_side() {
    let _serial = serial();
    // Three listeners on consecutive ports: a range keeps the first two. Below the
    // ephemeral range (32768 up): there, the TIME_WAIT sockets that other tests' clients
    // leave by the thousand (a port a client without SO_REUSEADDR left blocks a listener's
    // bind for a minute) never are.
    let (listeners, base) = (0..50)
        .find_map(|i| {
            let base = 20_000 + (std::process::id() % 120) as u16 * 100 + i * 3;
            let ls: Result<Vec<_>, _> =
                (0..3).map(|k| TcpListener::bind(("127.0.0.1", base + k))).collect();
            ls.ok().map(|ls| (ls, base))
        })
        .expect("three free consecutive ports");
    let range = format!("{}-{}", base, base + 1);
    for flag in ["--port", "--rport"] {
        let peers: Vec<Peer> = (0..3)
            .map(|k| {
                Peer::connector(setup(c"tt-f-port", NOBODY), ([127, 0, 0, 1], base + k).into())
            })
            .collect();
        let trace = Trace::new(&["-e", "connect", flag, &range]).start();
        let results = connect_all(peers);
        let done = trace.stop();
        for (k, (pid, rc)) in results.iter().enumerate() {
            assert_eq!(*rc, 0);
            let want = usize::from(k < 2);
            assert_eq!(
                done.of("connect", *pid).len(),
                want,
                "{flag} {range}, port {}: {:?}",
                base + k as u16,
                done.events
            );
        }
        assert_eq!(done.events.len(), 2, "{flag}: {:?}", done.events);
    }
    // The local port: accept events carry the listening port as theirs; a connect to the
    // kept port has it as its remote port, so --lport drops it.
    let trace = Trace::new(&["-e", "connect,accept", "--lport", &base.to_string()]).start();
    let peers: Vec<Peer> = (0..2)
        .map(|k| Peer::connector(setup(c"tt-f-lport", NOBODY), ([127, 0, 0, 1], base + k).into()))
        .collect();
    connect_all(peers);
    for l in &listeners[..2] {
        drop(l.accept().expect("accept"));
    }
    let done = trace.stop();
    let me = std::process::id() as i32;
    assert_eq!(done.of("accept", me).len(), 1, "{:?}", done.events);
    assert_eq!(done.events.len(), 1, "only the accept on the kept local port: {:?}", done.events);
    assert_eq!(done.events[0]["lport"], base);
}

#[test]
fn min_latency_keeps_slow_handshakes_only() {
    let _serial = serial();
    // A listener whose accept queue is full drops the next SYN: that handshake takes a
    // SYN retransmission (a second or more); one to a free listener takes microseconds.
    let (fast_l, fast) = listener("127.0.0.1:0");
    let (slow_l, slow) = listener("127.0.0.1:0");
    use std::os::fd::AsRawFd;
    // SAFETY: re-listen with a backlog of 0 (a queue of one) on our own socket.
    assert_eq!(unsafe { libc::listen(slow_l.as_raw_fd(), 0) }, 0);
    let filler = Peer::connector(setup(c"tt-f-filler", NOBODY), slow);
    assert_eq!(filler.go_and_wait(), 0);
    let quick = Peer::connector(setup(c"tt-f-quick", NOBODY), fast);
    let late = Peer::connector(setup(c"tt-f-slow", NOBODY), slow);
    let trace = Trace::new(&[
        "--min-latency",
        "500ms",
        "--port",
        &slow.port().to_string(),
        "--port",
        &fast.port().to_string(),
    ])
    .start();
    let quick_pid = quick.pid;
    assert_eq!(quick.go_and_wait(), 0);
    // Free the queue once the first SYN was dropped and sent again.
    let late_pid = late.pid;
    let drain = std::thread::spawn(move || {
        common::wait_syn_resent(slow.port());
        let first = slow_l.accept().expect("accept the filler");
        let second = slow_l.accept().expect("accept the slow one");
        (first, second, slow_l)
    });
    assert_eq!(late.go_and_wait(), 0);
    let _kept_open = drain.join().expect("drain thread");
    drop(fast_l);
    let done = trace.stop();
    assert_eq!(done.of("connect", quick_pid).len(), 0, "{:?}", done.events);
    let slow_events = done.of("connect", late_pid);
    assert_eq!(slow_events.len(), 1, "{:?}", done.events);
    assert!(
        slow_events[0]["latency_ns"].as_u64().is_some_and(|ns| ns >= 500_000_000),
        "{:?}",
        slow_events[0]
    );
    assert_eq!(done.events.len(), 1, "{:?}", done.events);
}

/// The cgroup2 mount (`/sys/fs/cgroup` or, on hybrid hosts, `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"cgroup2"))
        .map(|f| PathBuf::from(f[1]))
        .expect("a cgroup2 file system is mounted")
}

/// A cgroup made for one test with one process moved into it; removed when dropped, by
/// which time the test has reaped that process and the cgroup is empty.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn holding(name: &str, pid: i32) -> Self {
        let dir = cgroup2_root().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make a cgroup");
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .expect("move the peer into the cgroup");
        Self(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The cgroup filter drops a connection whose acceptor is outside the cgroup, though the
/// connecting side is inside: its accept and its close on the accepting side, not just
/// its connect. (The cgroup is known only where the owner is captured, so the accept
/// must mark the connection; the other filters are checked again at each event.)
#[test]
fn cgroup_drops_what_a_process_outside_it_accepts() {
    let _serial = serial();
    let (l, addr) = listener("127.0.0.1:0");
    let inside = Peer::connector(setup(c"tt-f-cg-in", NOBODY), addr);
    let cgroup = TestCgroup::holding("tt-filter-acc", inside.pid);
    let port = addr.port().to_string();
    let trace =
        Trace::new(&["-e", "connect,accept,close", "--port", &port, "--cgroup", cgroup.path()])
            .start();
    let results = connect_all(vec![inside]);
    // Accepted here, by the test, outside the cgroup; the peer has exited, so both ends close.
    let (conn, _) = l.accept().expect("accept");
    drop(conn);
    common::wait_port_settled(addr.port());
    let done = trace.stop();
    let peer = results[0].0;
    assert_eq!(results[0].1, 0, "the peer's connect failed");
    assert_eq!(done.of("connect", peer).len(), 1, "{:?}", done.events);
    assert_eq!(done.of("close", peer).len(), 1, "{:?}", done.events);
    assert_eq!(done.events.len(), 2, "only the peer's connect and close: {:?}", done.events);
    assert!(
        done.filtered().is_some_and(|n| n > 0),
        "the kernel filtered nothing: {:?}",
        done.stderr
    );
}
