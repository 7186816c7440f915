//! Every kernel-side filter, with traffic from two processes (or to two ports): the events
//! of the one the filter keeps are there with their exact pid, and none of the other's
//! are; the summary counts what the kernel dropped. Runs under each hook family, on the
//! host and in the VM.

mod common;

use std::{
    ffi::CStr,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
};

use common::{serial, Finished, Peer, PeerSetup, Trace};

const NOBODY: u32 = 65_534;

fn setup(comm: &'static CStr, uid: u32) -> PeerSetup<'static> {
    PeerSetup { comm, uid, empty_netns: false }
}

/// One connect per peer, in order; returns the peers' pids and their connect results.
fn connect_all(peers: Vec<Peer>) -> Vec<(i32, i32)> {
    peers
        .into_iter()
        .map(|p| {
            let pid = p.pid;
            (pid, p.go_and_wait())
        })
        .collect()
}

/// Every event is a connect from `kept`, exactly one, with that port; the summary says the
/// kernel filtered something.
fn assert_only(done: &Finished, kept: i32, rport: u16) {
    let connects = done.of("connect", kept);
    assert_eq!(connects.len(), 1, "want one connect from {kept}: {:?}", done.events);
    assert_eq!(connects[0]["rport"], rport);
    assert_eq!(done.events.len(), 1, "only the kept connect: {:?}", done.events);
    assert!(
        done.filtered().is_some_and(|n| n > 0),
        "the kernel filtered nothing: {:?}",
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
fn comm_keeps_that_process_name_only() {
    let _serial = serial();
    let (_l, addr) = listener("127.0.0.1:0");
    let kept = Peer::connector(setup(c"tt-f-kept", NOBODY), addr);
    let other = Peer::connector(setup(c"tt-f-other", NOBODY), addr);
    let trace = Trace::new(&["-e", "connect", "--comm", "tt-f-kept"]).start();
    let results = connect_all(vec![other, kept]);
    assert_only(&trace.stop(), results[1].0, addr.port());
}

#[test]
fn uid_keeps_that_user_only() {
    let _serial = serial();
    let (_l, addr) = listener("127.0.0.1:0");
    let kept = Peer::connector(setup(c"tt-f-uid", 4_321), addr);
    let other = Peer::connector(setup(c"tt-f-uid", NOBODY), addr);
    let trace = Trace::new(&["-e", "connect", "-u", "4321"]).start();
    let results = connect_all(vec![other, kept]);
    let done = trace.stop();
    assert_only(&done, results[1].0, addr.port());
    assert_eq!(done.events[0]["uid"], 4_321);
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
fn ip_version_flags_keep_one_family() {
    let _serial = serial();
    let (_l4, addr4) = listener("127.0.0.1:0");
    let (_l6, addr6) = listener("[::1]:0");
    for (flag, kept_v4) in [("-4", true), ("-6", false)] {
        let v4 = Peer::connector(setup(c"tt-f-ip", NOBODY), addr4);
        let v6 = Peer::connector(setup(c"tt-f-ip", NOBODY), addr6);
        // The ports keep other traffic of the machine out of the count.
        let trace = Trace::new(&[
            "-e",
            "connect",
            flag,
            "--port",
            &addr4.port().to_string(),
            "--port",
            &addr6.port().to_string(),
        ])
        .start();
        let results = connect_all(vec![v4, v6]);
        let (kept, port) =
            if kept_v4 { (results[0].0, addr4.port()) } else { (results[1].0, addr6.port()) };
        assert_only(&trace.stop(), kept, port);
    }
}

#[test]
fn failed_keeps_failed_connects_only() {
    let _serial = serial();
    let (_l, open) = listener("127.0.0.1:0");
    let closed = listener("127.0.0.1:0").1; // the listener is gone: connects are refused
    let ok = Peer::connector(setup(c"tt-f-ok", NOBODY), open);
    let refused = Peer::connector(setup(c"tt-f-refused", NOBODY), closed);
    // No -e: --failed alone means connect events.
    let trace = Trace::new(&[
        "--failed",
        "--port",
        &open.port().to_string(),
        "--port",
        &closed.port().to_string(),
    ])
    .start();
    let results = connect_all(vec![ok, refused]);
    assert_eq!(results[1].1, libc::ECONNREFUSED);
    let done = trace.stop();
    assert_only(&done, results[1].0, closed.port());
    assert_eq!(done.events[0]["error"], "ECONNREFUSED");
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

#[test]
fn cgroup_keeps_processes_in_that_cgroup_only() {
    let _serial = serial();
    let (_l, addr) = listener("127.0.0.1:0");
    let inside = Peer::connector(setup(c"tt-f-cg-in", NOBODY), addr);
    let outside = Peer::connector(setup(c"tt-f-cg-out", NOBODY), addr);
    let cgroup = TestCgroup::holding("tt-filter", inside.pid);
    let trace = Trace::new(&["-e", "connect", "--cgroup", cgroup.path()]).start();
    let results = connect_all(vec![outside, inside]);
    let done = trace.stop();
    assert_only(&done, results[1].0, addr.port());
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

/// A peer in a network namespace of its own (loopback up), with its own listener there,
/// waiting to connect to it and accept (exit code 0 when both worked); returns it, its
/// namespace's inode number and its listening port. Raw system calls only in the child.
fn peer_in_own_netns(comm: &CStr) -> (Peer, u64, u16) {
    let (mut report, mut go) = ([0; 2], [0; 2]);
    // SAFETY: `ifreq` is plain data; all-zero is valid.
    let mut lo_up: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in lo_up.ifr_name.iter_mut().zip(c"lo".to_bytes()) {
        *dst = *src as libc::c_char;
    }
    lo_up.ifr_ifru.ifru_flags =
        (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
    let (bind_any, bind_len) = common::sockaddr_of(([127, 0, 0, 1], 0).into());
    // SAFETY: pipes and fork; the child makes only raw system calls on data made above.
    unsafe {
        assert_eq!(libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let (report_w, go_r) = (report[1], go[0]);
        let (report_r, go_w) = (report[0], go[1]);
        let pid = common::fork_with(comm, || {
            // The parent's ends: held here, a parent that fails would leave this waiting.
            libc::close(report_r);
            libc::close(go_w);
            let ctl = if libc::unshare(libc::CLONE_NEWNET) == 0 {
                libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            } else {
                -1
            };
            if ctl < 0 || libc::ioctl(ctl, libc::SIOCSIFFLAGS, &raw const lo_up) != 0 {
                return 200;
            }
            let listener = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if libc::bind(listener, (&raw const bind_any).cast(), bind_len) != 0
                || libc::listen(listener, 4) != 0
            {
                return 201;
            }
            let (mut bound, mut len): (libc::sockaddr_storage, libc::socklen_t) =
                (std::mem::zeroed(), bind_len);
            libc::getsockname(listener, (&raw mut bound).cast(), &raw mut len);
            let port = u16::from_be((*(&raw const bound).cast::<libc::sockaddr_in>()).sin_port);
            let said = [common::own_netns(), u64::from(port)];
            let mut byte = 0u8;
            if libc::write(report_w, said.as_ptr().cast(), 16) != 16
                || libc::read(go_r, (&raw mut byte).cast(), 1) != 1
            {
                return 202;
            }
            let client = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if libc::connect(client, (&raw const bound).cast(), len) != 0
                || libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) < 0
            {
                return 203;
            }
            0
        });
        libc::close(report_w);
        libc::close(go_r);
        let mut said = [0u64; 2];
        assert!(
            common::raw::read_exactly(
                report[0],
                std::slice::from_raw_parts_mut(said.as_mut_ptr().cast(), 16),
                16
            ),
            "the peer did not make its namespace"
        );
        libc::close(report[0]);
        (Peer::waiting(pid, go[1]), said[0], said[1] as u16)
    }
}

/// The traffic of the two namespace tests: `outside` connects to `listener` (accepted in
/// the test's namespace), then the peer of `peer_in_own_netns` (`inside`) connects and
/// accepts in its own; both must succeed.
fn both_sides_connect(outside: Peer, listener: &TcpListener, inside: Peer) {
    assert_eq!(connect_all(vec![outside])[0].1, 0, "the outside peer's connect failed");
    drop(listener.accept().expect("accept in the test's namespace"));
    assert_eq!(inside.go_and_wait(), 0, "the peer in its own namespace failed");
}

/// Plain and table output name a socket's network namespace when it is not tcptrace's
/// own, and only then: the connect and accept of a peer in a namespace of its own end with
/// `netns=N`, a connect in the test's namespace does not.
#[test]
fn plain_and_table_name_a_foreign_network_namespace() {
    let _serial = serial();
    for format in ["plain", "table"] {
        let (l, addr) = listener("127.0.0.1:0");
        let outside = Peer::connector(setup(c"tt-f-nsn-out", NOBODY), addr);
        let (inside_peer, netns, inside_port) = peer_in_own_netns(c"tt-f-nsn-in");
        let inside = inside_peer.pid;
        assert_ne!(netns, common::own_netns(), "the peer is in a namespace of its own");
        let trace = Trace::new(&["-e", "connect,accept"]).format(format).start();
        let outside_pid = outside.pid;
        both_sides_connect(outside, &l, inside_peer);
        let (out, stderr, status) = trace.stop_raw(libc::SIGINT);
        assert!(status.success(), "{format}: {stderr:?}");
        // TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT DETAIL...
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|r: &Vec<&str>| r.len() >= 10)
            .collect();
        let of = |pid: i32, kind: &str| -> Vec<&Vec<&str>> {
            rows.iter().filter(|r| r[1] == kind && r[2] == pid.to_string()).collect()
        };
        let want = format!("netns={netns}");
        let (connects, accepts) = (of(inside, "connect"), of(inside, "accept"));
        assert_eq!((connects.len(), accepts.len()), (1, 1), "{format}: {out}");
        assert_eq!(
            (connects[0][3], connects[0][8]),
            ("tt-f-nsn-in", inside_port.to_string().as_str()),
            "{format}: {out}"
        );
        assert_eq!(accepts[0][6], inside_port.to_string(), "{format}: {out}");
        for row in [connects[0], accepts[0]] {
            assert_eq!(row.last(), Some(&want.as_str()), "{format}: {row:?}");
            assert_eq!(
                row.iter().filter(|t| t.starts_with("netns=")).count(),
                1,
                "{format}: {row:?}"
            );
        }
        let outside_connects = of(outside_pid, "connect");
        assert_eq!(outside_connects.len(), 1, "{format}: {out}");
        assert_eq!(outside_connects[0][8], addr.port().to_string(), "{format}: {out}");
        assert!(
            !outside_connects[0].iter().any(|t| t.starts_with("netns=")),
            "{format}: {:?}",
            outside_connects[0]
        );
    }
}

/// `--netns` keeps the sockets of one network namespace, given by inode number or by
/// namespace file: a peer connecting and accepting in a namespace of its own is kept, with
/// that namespace on its events; a connect and an accept in the test's namespace are not.
#[test]
fn netns_keeps_one_network_namespace_only() {
    let _serial = serial();
    for by_path in [false, true] {
        let (l, addr) = listener("127.0.0.1:0");
        let outside = Peer::connector(setup(c"tt-f-ns-out", NOBODY), addr);
        let (inside_peer, netns, inside_port) = peer_in_own_netns(c"tt-f-ns-in");
        let inside = inside_peer.pid;
        assert_ne!(netns, common::own_netns(), "the peer is in a namespace of its own");
        let given = if by_path { format!("/proc/{inside}/ns/net") } else { netns.to_string() };
        let trace = Trace::new(&["-e", "connect,accept", "--netns", &given]).start();
        both_sides_connect(outside, &l, inside_peer);
        let done = trace.stop();
        let (connects, accepts) = (done.of("connect", inside), done.of("accept", inside));
        assert_eq!(
            (connects.len(), accepts.len(), done.events.len()),
            (1, 1, 2),
            "only the peer's connect and accept: {:?}",
            done.events
        );
        assert_eq!(connects[0]["rport"], inside_port, "{:?}", done.events);
        assert_eq!(accepts[0]["lport"], inside_port, "{:?}", done.events);
        assert!(done.events.iter().all(|e| e["netns"] == netns), "{:?}", done.events);
        assert!(
            done.filtered().is_some_and(|n| n >= 2),
            "the outside connect and accept were not filtered: {:?}",
            done.stderr
        );
    }
}

/// With CAP_BPF and CAP_PERFMON alone (a container runtime's grant), tcptrace cannot see
/// the namespace of a root process, so it cannot check a `--netns` number against it: the
/// number is taken as given, stderr says it was not checked, and the filter works. A number
/// that names nothing is still refused where everything can be seen (as root).
#[test]
fn netns_of_a_hidden_process_is_taken_unchecked_without_sys_ptrace() {
    let _serial = serial();
    // Kprobes and classic tracepoints attach through perf events: at Debian's default of 3,
    // CAP_SYS_ADMIN alone may open those.
    let _paranoid = common::Sysctl::set("kernel.perf_event_paranoid", "2");
    let (l, addr) = listener("127.0.0.1:0");
    let outside = Peer::connector(setup(c"tt-f-nsh-out", NOBODY), addr);
    let (inside_peer, netns, inside_port) = peer_in_own_netns(c"tt-f-nsh-in");
    let inside = inside_peer.pid;
    let keep = 1u64 << common::CAP_BPF | 1 << common::CAP_PERFMON;
    let trace = Trace::new(&["-e", "connect,accept", "--netns", &netns.to_string()])
        .capabilities(keep)
        .try_start()
        .unwrap_or_else(|e| panic!("tcptrace did not start: {e:?}"));
    assert_eq!(trace.effective_capabilities(), keep);
    both_sides_connect(outside, &l, inside_peer);
    let done = trace.stop();
    let (connects, accepts) = (done.of("connect", inside), done.of("accept", inside));
    assert_eq!(
        (connects.len(), accepts.len(), done.events.len()),
        (1, 1, 2),
        "only the peer's connect and accept: {:?}",
        done.events
    );
    assert_eq!(connects[0]["rport"], inside_port, "{:?}", done.events);
    assert!(done.events.iter().all(|e| e["netns"] == netns), "{:?}", done.events);
    let note = format!("tcptrace: --netns {netns}: not checked: no process tcptrace can see is in that namespace, and the namespaces of ");
    let notes: Vec<&String> =
        done.stderr.iter().filter(|l| l.starts_with("tcptrace: --netns")).collect();
    assert_eq!(notes.len(), 1, "{:?}", done.stderr);
    // How many processes are hidden varies with what else runs (root's daemons, kernel
    // threads); the wording must agree with the number, one or more.
    let rest = notes[0].strip_prefix(&note).unwrap_or_else(|| panic!("{:?}", notes[0]));
    let (count, wording) = rest.split_once(' ').unwrap_or_else(|| panic!("{:?}", notes[0]));
    let hidden: u32 =
        count.parse().unwrap_or_else(|_| panic!("no count of hidden processes: {:?}", notes[0]));
    let expected = if hidden == 1 {
        "process is hidden from it (seeing it takes CAP_SYS_PTRACE)"
    } else {
        "processes are hidden from it (seeing them takes CAP_SYS_PTRACE)"
    };
    assert!(hidden >= 1 && wording == expected, "{:?}", notes[0]);
    // As root, every namespace can be seen: the peer's is gone with it, so its number
    // names nothing now.
    let (code, _, stderr) = common::run_to_end(&["--netns", &netns.to_string(), "-d", "1"], None);
    assert_eq!((code, stderr.trim_end()), (2, format!("tcptrace: --netns {netns}: no process or `ip netns` name is in a network namespace with that inode number (see --help)").as_str()));
}
