//! The network namespace of a socket: named in plain and table output when it is not
//! tcptrace's own, and `--netns`, the filter that keeps one namespace (by inode number or
//! by file), even where tcptrace cannot see the namespaces of other processes. Runs under
//! each hook family, on the host and in the VM.

mod common;

use std::{
    ffi::CStr,
    net::{SocketAddr, TcpListener},
};

use common::{connect_all, serial, Peer, PeerSetup, Trace};

const NOBODY: u32 = 65_534;

fn setup(comm: &'static CStr, uid: u32) -> PeerSetup<'static> {
    PeerSetup { comm, uid, empty_netns: false }
}

fn listener(bind: &str) -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(bind).expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
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
