//! How each connection ended: the `end` of close and connect events, with the socket's
//! error, the reset's reason, which retries ran out, and the bytes left behind, each case
//! made for real and every field checked at once.
//!
//! On loopback:
//! - issue 32: a server closes with 400,000 bytes it never read: it sends a reset
//!   (`TCP_ABORT_ON_CLOSE`), which the client, all of its 500,000 bytes acknowledged,
//!   receives as ECONNRESET.
//! - A client closes with SO_LINGER set to zero: a reset sent (`TCP_STATE`, as the kernel
//!   names it),
//!   received by the server waiting in read().
//! - An orderly close, FIN each way: nothing lost, written equals acknowledged, received
//!   equals read.
//! - A connect to a port nobody listens on: one SYN, a reset received.
//!
//! Over a veth link between two private network namespaces, whose server side drops
//! (nftables, input hook) every TCP segment from the client to the test's port, from the
//! start or once a first exchange is done; the client's namespace lowers its retries:
//! - SYNs that go unanswered (`tcp_syn_retries` 1): a connect timed out after two SYNs.
//! - 10,000 bytes written into the dark (`tcp_retries2` 3): a retransmissions timeout
//!   with exactly those bytes unacknowledged.
//! - An idle connection whose keepalive probes go unanswered (idle 1 s, interval 1 s, 2
//!   probes): a keepalive timeout with nothing unacknowledged.
//!
//! Before a side resets the connection or the link goes dark, the other side's data has
//! been acknowledged (it waits for TIOCOUTQ to reach 0, and says so through a pipe): a
//! reset that overtakes a delayed ACK leaves it unprocessed, and the counts would depend
//! on the delayed-ACK timer; and a server with nothing to resend stays silent in the dark.

mod common;

use std::ffi::CStr;

use common::{
    events::{assert_fields, only},
    fork_with, listen_v4, raw, serial, sockaddr_of,
    tools::{decimal, packets_counted, pipe, run, temp_file, tool_path, write_sysctl},
    wait_child, wait_port_settled, Trace,
};
use serde_json::{json, Value};

/// How long a forked side waits for anything before it gives up (the VM is slow).
const PATIENCE_MS: i32 = 120_000;

#[test]
fn issue_32_close_with_unread_data_sends_a_reset_abort_on_close() {
    const WRITTEN: usize = 500_000;
    const READ: usize = 100_000;
    let (mut buf, data) = (vec![0u8; 64 * 1024], vec![b'c'; 64 * 1024]);
    // Room for all the client writes, unread.
    let (done, server, client) = on_loopback(
        4 << 20,
        // Told that all the client wrote was acknowledged, so has arrived.
        move |c, acked| {
            raw::read_exactly(c, &mut buf, READ)
                && wait_for(acked)
                && queued(c, libc::FIONREAD) == Some(400_000)
                && close(c)
        },
        move |s, acked| {
            raw::write_exactly(s, &data, WRITTEN)
                && eventually(|| queued(s, libc::TIOCOUTQ) == Some(0))
                && signal(acked)
                && read_fails_with(s, libc::ECONNRESET)
                && close(s)
        },
    );
    assert_fields(
        only(&done.of("close", server)),
        &json!({
            "pid": server, "comm": "tt-end-srv", "direction": "passive", "closed_by": "local",
            "end": "reset_sent", "errno": null, "error": null, "reason": "TCP_ABORT_ON_CLOSE", "reason_inferred": true, "timeout": null,
            "bytes_written": 0, "bytes_sent": 0, "bytes_unacked": 0, "bytes_read": 100_000, "bytes_received": 500_000, "bytes_unread": 400_000,
        }),
    );
    assert_fields(
        only(&done.of("close", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "direction": "active", "closed_by": "remote",
            "end": "reset_received", "errno": 104, "error": "ECONNRESET", "reason": null, "reason_inferred": null, "timeout": null,
            "bytes_written": 500_000, "bytes_sent": 500_000, "bytes_unacked": 0, "bytes_read": 0, "bytes_received": 0, "bytes_unread": 0,
        }),
    );
    assert_one_reset_each_way(&done, (server, client), "TCP_ABORT_ON_CLOSE");
}

/// The reset events of a connection one side aborted: exactly one sent by `aborting`,
/// right after its CLOSE, with the kernel's `reason` where it gives one (6.10+), and one
/// received by `peer`, still ESTABLISHED; each owned by its side, with its side's ends.
fn assert_one_reset_each_way(done: &common::Finished, (aborting, peer): (i32, i32), reason: &str) {
    let aborting_close = only(&done.of("close", aborting));
    let (here, there) = (&aborting_close["lport"], &aborting_close["rport"]);
    assert_fields(
        only(&done.of("reset", aborting)),
        &json!({
            "direction": "sent", "state": "CLOSE", "reason": kernel_reason(reason),
            "laddr": "127.0.0.1", "lport": here, "raddr": "127.0.0.1", "rport": there,
        }),
    );
    assert_fields(
        only(&done.of("reset", peer)),
        &json!({
            "direction": "received", "state": "ESTABLISHED", "reason": null,
            "laddr": "127.0.0.1", "lport": there, "raddr": "127.0.0.1", "rport": here,
        }),
    );
    assert_eq!(
        done.events.iter().filter(|e| e["type"] == "reset").count(),
        2,
        "{:#?}",
        done.events
    );
}

/// `name` where the kernel gives reset reasons, `null` where it gives none.
fn kernel_reason(name: &str) -> Value {
    if common::kernel_gives_reset_reasons() {
        json!(name)
    } else {
        Value::Null
    }
}

/// The error tcp_disconnect() leaves on the aborting socket (ECONNRESET) comes after its
/// CLOSE: the close event has none.
#[test]
fn a_close_with_zero_linger_sends_a_reset_named_tcp_state() {
    let (mut server_buf, server_data) = (vec![0u8; 4096], vec![b's'; 4096]);
    let (mut client_buf, client_data) = (vec![0u8; 4096], vec![b'c'; 4096]);
    let (done, server, client) = on_loopback(
        0,
        move |c, acked| {
            raw::read_exactly(c, &mut server_buf, 1_000)
                && raw::write_exactly(c, &server_data, 2_000)
                && eventually(|| queued(c, libc::TIOCOUTQ) == Some(0))
                && signal(acked)
                && read_fails_with(c, libc::ECONNRESET)
                && close(c)
        },
        move |s, acked| {
            raw::write_exactly(s, &client_data, 1_000)
                && raw::read_exactly(s, &mut client_buf, 2_000)
                && wait_for(acked)
                && abort(s)
        },
    );
    assert_fields(
        only(&done.of("close", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "direction": "active", "closed_by": "local",
            "end": "reset_sent", "errno": null, "error": null, "reason": "TCP_STATE", "reason_inferred": true, "timeout": null,
            "bytes_written": 1_000, "bytes_sent": 1_000, "bytes_unacked": 0, "bytes_read": 2_000, "bytes_received": 2_000, "bytes_unread": 0,
        }),
    );
    assert_fields(
        only(&done.of("close", server)),
        &json!({
            "pid": server, "comm": "tt-end-srv", "direction": "passive", "closed_by": "remote",
            "end": "reset_received", "errno": 104, "error": "ECONNRESET", "reason": null, "reason_inferred": null, "timeout": null,
            "bytes_written": 2_000, "bytes_sent": 2_000, "bytes_unacked": 0, "bytes_read": 1_000, "bytes_received": 1_000, "bytes_unread": 0,
        }),
    );
    assert_one_reset_each_way(&done, (client, server), "TCP_STATE");
}

#[test]
fn an_orderly_close_ends_in_fins_with_nothing_left_behind() {
    let (mut server_buf, server_data) = (vec![0u8; 8192], vec![b's'; 8192]);
    let (mut client_buf, client_data) = (vec![0u8; 8192], vec![b'c'; 8192]);
    let (done, server, client) = on_loopback(
        0,
        // Closes at the client's FIN.
        move |c, _| {
            raw::read_exactly(c, &mut server_buf, 3_000)
                && raw::write_exactly(c, &server_data, 7_000)
                && raw::read_to_eof(c, &mut server_buf) == Some(0)
                && close(c)
        },
        move |s, _| {
            raw::write_exactly(s, &client_data, 3_000)
                && raw::read_exactly(s, &mut client_buf, 7_000)
                && close(s)
        },
    );
    assert_fields(
        only(&done.of("connect", client)),
        &json!({
            "result": "ok", "errno": null, "error": null, "end": null, "timeout": null, "syns_sent": 1,
        }),
    );
    let fin = json!({"end": "fin", "errno": null, "error": null, "reason": null, "reason_inferred": null, "timeout": null});
    let client_close = only(&done.of("close", client));
    assert_fields(client_close, &fin);
    assert_fields(
        client_close,
        &json!({
            "pid": client, "comm": "tt-end-cli", "direction": "active", "closed_by": "local",
            "bytes_written": 3_000, "bytes_sent": 3_000, "bytes_unacked": 0, "bytes_read": 7_000, "bytes_received": 7_000, "bytes_unread": 0,
        }),
    );
    let server_close = only(&done.of("close", server));
    assert_fields(server_close, &fin);
    assert_fields(
        server_close,
        &json!({
            "pid": server, "comm": "tt-end-srv", "direction": "passive", "closed_by": "remote",
            "bytes_written": 7_000, "bytes_sent": 7_000, "bytes_unacked": 0, "bytes_read": 3_000, "bytes_received": 3_000, "bytes_unread": 0,
        }),
    );
    assert_eq!(
        done.events.iter().filter(|e| e["type"] == "reset").count(),
        0,
        "no reset in an orderly close"
    );
}

#[test]
fn a_refused_connect_ends_in_a_reset_received_after_one_syn() {
    let _serial = serial();
    let closed =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    // The listener is dropped: nothing listens on `closed` now.
    let trace = Trace::new(&["-e", "connect,reset", "--port", &closed.port().to_string()]).start();
    let sa = sockaddr_of(closed);
    let client = fork_with(c"tt-end-cli", || {
        i32::from(raw::connect(&sa, libc::AF_INET) != -libc::ECONNREFUSED)
    });
    assert_eq!(wait_child(client), 0, "the connect was not refused");
    let done = trace.stop();
    let connect = only(&done.of("connect", client));
    assert_fields(
        connect,
        &json!({
            "pid": client, "comm": "tt-end-cli", "raddr": "127.0.0.1", "rport": closed.port(),
            "result": "failed", "errno": 111, "error": "ECONNREFUSED", "end": "reset_received", "timeout": null, "syns_sent": 1,
        }),
    );
    // The client's SYN reached no socket: the reset that answers it has no owner, and its
    // ends are the SYN's turned round.
    assert_fields(
        only(&done.of("reset", client)),
        &json!({
            "direction": "received", "state": "SYN_SENT", "reason": null,
            "lport": connect["lport"], "raddr": "127.0.0.1", "rport": closed.port(),
        }),
    );
    let no_socket: Vec<&Value> =
        done.events.iter().filter(|e| e["type"] == "reset" && e["direction"] == "sent").collect();
    // Before 6.10 the kernel's tracepoint does not fire for it (`--list-probes` says so).
    if !common::no_socket_resets_seen() {
        assert_eq!(no_socket.len(), 0, "{no_socket:#?}");
        let probes = common::run_to_end(&["--list-probes"], None).1;
        let blind =
            "tcp_send_reset does not fire for a reset answering a segment that reached no socket";
        assert!(
            probes.lines().any(|l| l.starts_with("reset ")
                && l.contains(" tracepoint ")
                && l.contains(blind)),
            "{probes}"
        );
        assert!(
            done.stderr
                .iter()
                .any(|l| l.starts_with("tcptrace: hook reset: ") && l.contains(blind)),
            "-v says so: {:?}",
            done.stderr
        );
    } else {
        assert_fields(
            only(&no_socket),
            &json!({
                "pid": null, "comm": null, "direction": "sent", "state": null, "reason": kernel_reason("NO_SOCKET"),
                "laddr": "127.0.0.1", "lport": closed.port(), "raddr": "127.0.0.1", "rport": connect["lport"],
            }),
        );
    }
}

#[test]
fn unanswered_syns_end_the_connect_in_a_syn_retries_timeout() {
    let (done, client, port) = over_a_link_gone_dark(Dark::BeforeConnect);
    assert_fields(
        only(&done.of("connect", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "raddr": SERVER_ADDR, "rport": port,
            "result": "failed", "errno": 110, "error": "ETIMEDOUT", "end": "timeout", "timeout": "syn_retries", "syns_sent": 2,
        }),
    );
}

/// SYNs answered by an ICMP host unreachable (an nftables reject rule at the server's
/// input) fail the connect with that error: not a timeout, not a reset. After the second
/// SYN: the first answer comes back within the connecting task's own send (the veth pair
/// delivers in the sender's softirq), while the task holds the socket, and the kernel
/// keeps that one as a soft error (`tcp_v4_err()`); the resend's answer ends it.
#[test]
fn an_icmp_unreachable_answer_ends_the_connect_in_an_error() {
    let (done, client, port) = over_a_link_gone_dark(Dark::Rejected);
    assert_fields(
        only(&done.of("connect", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "raddr": SERVER_ADDR, "rport": port,
            "result": "failed", "errno": 113, "error": "EHOSTUNREACH", "end": "error", "timeout": null, "syns_sent": 2,
        }),
    );
    assert_eq!(
        done.events.iter().filter(|e| e["type"] == "reset").count(),
        0,
        "{:#?}",
        done.events
    );
}

#[test]
fn data_never_acknowledged_ends_in_a_retransmissions_timeout() {
    let (done, client, _) = over_a_link_gone_dark(Dark::BeforeWrite);
    assert_fields(
        only(&done.of("close", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "direction": "active", "closed_by": "local",
            "end": "timeout", "errno": 110, "error": "ETIMEDOUT", "reason": null, "reason_inferred": null, "timeout": "retransmissions",
            "bytes_written": REQUEST + IN_THE_DARK, "bytes_sent": REQUEST, "bytes_unacked": IN_THE_DARK,
            "bytes_read": REPLY, "bytes_received": REPLY, "bytes_unread": 0,
        }),
    );
    // Retransmissions that ran out end the connection without a reset.
    assert_eq!(resets_sent_by(&done, client).len(), 0, "{:#?}", done.events);
}

/// The resets `pid` sent.
fn resets_sent_by(done: &common::Finished, pid: i32) -> Vec<&Value> {
    done.of("reset", pid).into_iter().filter(|e| e["direction"] == "sent").collect()
}

#[test]
fn unanswered_keepalive_probes_end_in_a_keepalive_timeout() {
    let (done, client, _) = over_a_link_gone_dark(Dark::WhileIdle);
    assert_fields(
        only(&done.of("close", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "direction": "active", "closed_by": "local",
            "end": "timeout", "errno": 110, "error": "ETIMEDOUT", "reason": null, "reason_inferred": null, "timeout": "keepalive",
            "bytes_written": REQUEST, "bytes_sent": REQUEST, "bytes_unacked": 0, "bytes_read": REPLY, "bytes_received": REPLY, "bytes_unread": 0,
        }),
    );
    // Keepalive probes that ran out: the kernel resets the connection, then gives up.
    assert_fields(
        only(&resets_sent_by(&done, client)),
        &json!({
            "state": "ESTABLISHED", "reason": kernel_reason("TCP_KEEPALIVE_TIMEOUT"), "laddr": CLIENT_ADDR, "raddr": SERVER_ADDR,
        }),
    );
}

/// One connection on loopback, traced (connect and close events): `server` gets the
/// accepted socket and `client` the connected one, each in a forked process (`tt-end-srv`,
/// `tt-end-cli`) with a pipe between them; each says whether all went as it should. With
/// `rcvbuf`, the listener's receive buffer, set before the connection comes (which takes
/// its buffer and its window scale from the listener). Returns the trace once every close
/// has settled, and the server's and the client's pids.
fn on_loopback(
    rcvbuf: i32,
    server: impl FnOnce(i32, [i32; 2]) -> bool,
    client: impl FnOnce(i32, [i32; 2]) -> bool,
) -> (common::Finished, i32, i32) {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    assert!(
        rcvbuf == 0 || set_int(lfd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, rcvbuf),
        "SO_RCVBUFFORCE"
    );
    let trace =
        Trace::new(&["-e", "connect,close,reset", "--port", &addr.port().to_string()]).start();
    let (between, sa) = (pipe(), sockaddr_of(addr));
    let server = fork_with(c"tt-end-srv", move || {
        let c = raw::accept(lfd);
        i32::from(c < 0 || !server(c, between))
    });
    let client = fork_with(c"tt-end-cli", move || {
        let s = raw::connect(&sa, libc::AF_INET);
        i32::from(s < 0 || !client(s, between))
    });
    assert_eq!((wait_child(server), wait_child(client)), (0, 0), "server, client");
    close_all(&[lfd, between[0], between[1]]);
    wait_port_settled(addr.port());
    (trace.stop(), server, client)
}

// Raw-call helpers, for forked children.

/// Sends one byte down `pipe`.
fn signal(pipe: [i32; 2]) -> bool {
    // SAFETY: a one-byte write to our pipe.
    unsafe { libc::write(pipe[1], b"g".as_ptr().cast(), 1) == 1 }
}

/// Waits for one byte on `pipe`; false when none came in `PATIENCE_MS`.
fn wait_for(pipe: [i32; 2]) -> bool {
    let mut poll = libc::pollfd { fd: pipe[0], events: libc::POLLIN, revents: 0 };
    let mut byte = [0u8; 1];
    // SAFETY: one valid pollfd; a one-byte read into our buffer.
    unsafe {
        libc::poll(&raw mut poll, 1, PATIENCE_MS) == 1
            && libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) == 1
    }
}

/// Polls `done` every 10 ms; false when it did not hold within `PATIENCE_MS`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..PATIENCE_MS / 10 {
        if done() {
            return true;
        }
        // SAFETY: a plain sleep.
        unsafe { libc::usleep(10_000) };
    }
    false
}

/// A socket's queue by ioctl: `FIONREAD`, received and not read; `TIOCOUTQ`, written and
/// not acknowledged.
fn queued(fd: i32, request: libc::Ioctl) -> Option<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: the ioctl writes one int.
    (unsafe { libc::ioctl(fd, request, &raw mut n) } == 0).then_some(n)
}

/// Closes `fd` with a reset (SO_LINGER on, zero time).
fn abort(fd: i32) -> bool {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid option buffer; our socket.
    unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&raw const linger).cast(), 8) == 0
            && libc::close(fd) == 0
    }
}

fn close(fd: i32) -> bool {
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) == 0 }
}

/// Waits for data that never comes: true when the read fails with `errno`.
fn read_fails_with(fd: i32, want: i32) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte read into our buffer.
    unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) == -1 && errno() == want }
}

fn errno() -> i32 {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn close_all(fds: &[i32]) {
    for &fd in fds {
        close(fd);
    }
}

// The link between two namespaces.

/// The server's side of the link (with the drop rule) and the client's.
const SERVER_ADDR: &str = "192.168.78.1";
const CLIENT_ADDR: &str = "192.168.78.2";
/// The first exchange, and what the client writes once the link is dark.
const REQUEST: usize = 1_000;
const REPLY: usize = 2_000;
const IN_THE_DARK: usize = 10_000;

/// When the link goes dark, and what the client does then.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
enum Dark {
    /// From the start: the client's SYNs never arrive.
    BeforeConnect,
    /// After a first exchange: the client writes `IN_THE_DARK` bytes and waits.
    BeforeWrite,
    /// After a first exchange: the client turns keepalive on and waits.
    WhileIdle,
    /// From the start, and answered: each of the client's SYNs gets an ICMP host
    /// unreachable back.
    Rejected,
}

impl Dark {
    /// Whether the rule is there before the client connects.
    fn is_dark_from_the_start(self) -> bool {
        matches!(self, Self::BeforeConnect | Self::Rejected)
    }
}

/// The pipes the processes of `over_a_link_gone_dark` talk by.
#[derive(Clone, Copy)]
struct Pipes {
    in_netns: [i32; 2],
    link_ready: [i32; 2],
    exchanged: [i32; 2],
    gone_dark: [i32; 2],
    may_close: [i32; 2],
}

/// Makes the two namespaces and the link; the client connects to the server, and the
/// link goes dark (`dark` says when) until the client's socket has timed out; then the
/// server aborts its end. Returns the trace of it all (connect and close events), the
/// client's pid and the server's port.
fn over_a_link_gone_dark(dark: Dark) -> (common::Finished, i32, u16) {
    let _serial = serial();
    // A port per case, below the ephemeral range (the namespaces are private: the port
    // only keeps the trace to this test's connections).
    let port = 12_000 + (std::process::id() % 2_000) as u16 * 4 + dark as u16;
    let (nft, ip) = (tool_path("TT_NFT", "nft", "nftables"), tool_path("TT_IP", "ip", "iproute2"));
    let rules = temp_file(
        &format!("tt-end-{port}.nft"),
        &format!(
            "table inet tt {{\n  chain in {{\n    type filter hook input priority 0; policy accept;\n    \
             ip saddr {CLIENT_ADDR} tcp dport {port} counter {verdict}\n  }}\n}}\n",
            verdict = if dark == Dark::Rejected { "reject with icmp type host-unreachable" } else { "drop" },
        ),
    );
    let server_ip = temp_file(
        &format!("tt-end-{port}-server.ip"),
        &format!("link set lo up\naddr add {SERVER_ADDR}/24 dev tt-e1\nlink set tt-e1 up\n"),
    );
    let client_ip = temp_file(
        &format!("tt-end-{port}-client.ip"),
        &format!("link set lo up\naddr add {CLIENT_ADDR}/24 dev tt-e0\nlink set tt-e0 up\n"),
    );
    let load = [nft.as_ptr(), c"-f".as_ptr(), rules.as_ptr(), std::ptr::null()];
    let configure_server = [ip.as_ptr(), c"-batch".as_ptr(), server_ip.as_ptr(), std::ptr::null()];
    let configure_client = [ip.as_ptr(), c"-batch".as_ptr(), client_ip.as_ptr(), std::ptr::null()];
    // `ip link add ... netns PID`: the client's end goes to the client's namespace, named
    // by its pid (put in by the leader); NULL-terminated.
    let mut add_link = [std::ptr::null(); 12];
    add_link[0] = ip.as_ptr();
    add_link[1..10].copy_from_slice(
        &[c"link", c"add", c"tt-e1", c"type", c"veth", c"peer", c"name", c"tt-e0", c"netns"]
            .map(CStr::as_ptr),
    );
    let addr = sockaddr_of(format!("{SERVER_ADDR}:{port}").parse().expect("addr"));
    let p = Pipes {
        in_netns: pipe(),
        link_ready: pipe(),
        exchanged: pipe(),
        gone_dark: pipe(),
        may_close: pipe(),
    };
    let report = pipe();
    let (mut client_buf, client_data) = (vec![0u8; 16 * 1024], vec![b'c'; 16 * 1024]);
    let (mut server_buf, server_data) = (vec![0u8; 16 * 1024], vec![b's'; 16 * 1024]);
    let trace =
        Trace::new(&["-e", "connect,close,reset,drop", "--port", &port.to_string()]).start();
    let list = [
        nft.as_ptr(),
        c"list".as_ptr(),
        c"table".as_ptr(),
        c"inet".as_ptr(),
        c"tt".as_ptr(),
        std::ptr::null(),
    ];

    // The leader lives in the server's namespace: it makes the link, listens, and loads
    // the rule when the link is to go dark.
    let leader = fork_with(c"tt-end-ns", move || {
        // SAFETY: raw system calls in a forked child.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return 70;
            }
            let client = fork_with(c"tt-end-cli", || {
                client_side(dark, p, &configure_client, &addr, &mut client_buf, &client_data)
            });
            if !wait_for(p.in_netns) {
                return 71;
            }
            let mut pid_text = [0u8; 12];
            add_link[10] = decimal(client as u32, &mut pid_text);
            if run(&add_link) != 0
                || run(&configure_server) != 0
                || (dark.is_dark_from_the_start() && run(&load) != 0)
            {
                return 72;
            }
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if libc::bind(l, (&raw const addr.0).cast(), addr.1) != 0 || libc::listen(l, 16) != 0 {
                return 73;
            }
            let server = (!dark.is_dark_from_the_start()).then(|| {
                fork_with(c"tt-end-srv", || server_side(l, p, &mut server_buf, &server_data))
            });
            if libc::write(report[1], (&raw const client).cast(), 4) != 4 || !signal(p.link_ready) {
                return 74;
            }
            if server.is_some()
                && (!wait_for(p.exchanged) || run(&load) != 0 || !signal(p.gone_dark))
            {
                return 75;
            }
            let client_status = wait_child(client);
            let server_status = server.map_or(0, |server| {
                signal(p.may_close);
                wait_child(server)
            });
            // What the rule dropped, by its own counter.
            let dropped = packets_counted(&list).unwrap_or(u64::MAX);
            if libc::write(report[1], (&raw const dropped).cast(), 8) != 8 {
                return 76;
            }
            if client_status != 0 {
                client_status
            } else {
                server_status
            }
        }
    });
    let status = wait_child(leader);
    close_all(&[report[1]]);
    let (mut client, mut dropped) = (0i32, 0u64);
    // SAFETY: reads of the pid and count the leader wrote, or of the end of the pipe when
    // it failed before (every side gives up within PATIENCE_MS).
    assert_eq!(
        unsafe { libc::read(report[0], (&raw mut client).cast(), 4) },
        4,
        "the leader failed early (status {status})"
    );
    assert_eq!(
        unsafe { libc::read(report[0], (&raw mut dropped).cast(), 8) },
        8,
        "the leader failed late (status {status})"
    );
    assert_eq!(status, 0, "the run over the dark link failed");
    let Pipes { in_netns, link_ready, exchanged, gone_dark, may_close } = p;
    close_all(&[in_netns, link_ready, exchanged, gone_dark, may_close].concat());
    close_all(&[report[0]]);
    // The client's CLOSE came before its read() failed; the server's abort is
    // synchronous. Nothing can be left in a softirq, but make sure.
    common::wait_out_softirqs();
    let done = trace.stop();
    assert_drops_counted(&done, port, dark, dropped);
    (done, client, port)
}

/// The drop events of a dark link: every segment the rule dropped, summed over them, for
/// the kernel's reason (Linux 5.17+), at the server's input, owned by the server where the
/// segment found its socket (once connected: early demux) and by none before.
fn assert_drops_counted(done: &common::Finished, port: u16, dark: Dark, dropped: u64) {
    assert!(dropped > 0 && dropped != u64::MAX, "the rule's counter: {dropped}");
    // Others may come as the namespaces go (a queue's drops, once the link is gone).
    let drops: Vec<&Value> = done
        .events
        .iter()
        .filter(|e| e["type"] == "drop" && e["reason"] == "NETFILTER_DROP")
        .collect();
    let owner = if dark.is_dark_from_the_start() { Value::Null } else { json!("tt-end-srv") };
    for drop in &drops {
        assert_fields(
            drop,
            &json!({
                "direction": "in", "reason": "NETFILTER_DROP", "comm": owner,
                "laddr": SERVER_ADDR, "lport": port, "raddr": CLIENT_ADDR,
            }),
        );
    }
    let counted: u64 = drops.iter().map(|d| d["count"].as_u64().expect("a count")).sum();
    assert_eq!(counted, dropped, "{drops:#?}");
}

/// The client, in a namespace of its own with its retries lowered: connects, and once
/// the link is dark, waits for its socket to time out.
fn client_side(
    dark: Dark,
    p: Pipes,
    configure: &[*const libc::c_char],
    addr: &(libc::sockaddr_storage, libc::socklen_t),
    buf: &mut [u8],
    data: &[u8],
) -> i32 {
    // SAFETY: raw system calls in a forked child.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 || !signal(p.in_netns) {
        return 40;
    }
    // Two SYNs: kernels with `tcp_syn_linear_timeouts` (6.18 on the host; not 6.1) add
    // that many resends, 1 s apart, to `tcp_syn_retries`. Data retransmitted for about 3 s.
    if !write_sysctl(c"/proc/sys/net/ipv4/tcp_syn_retries", b"1", false)
        || !write_sysctl(c"/proc/sys/net/ipv4/tcp_syn_linear_timeouts", b"0", true)
        || !write_sysctl(c"/proc/sys/net/ipv4/tcp_retries2", b"3", false)
    {
        return 41;
    }
    if !wait_for(p.link_ready) || run(configure) != 0 {
        return 42;
    }
    let s = raw::connect(addr, libc::AF_INET);
    match dark {
        Dark::BeforeConnect => return if s == -libc::ETIMEDOUT { 0 } else { 43 },
        Dark::Rejected => return if s == -libc::EHOSTUNREACH { 0 } else { 43 },
        Dark::BeforeWrite | Dark::WhileIdle => {}
    }
    if s < 0
        || !raw::write_exactly(s, data, REQUEST)
        || !raw::read_exactly(s, buf, REPLY)
        || !wait_for(p.gone_dark)
    {
        return 44;
    }
    let ready = match dark {
        Dark::BeforeWrite => raw::write_exactly(s, data, IN_THE_DARK),
        _ => keepalive(s),
    };
    if !ready || !read_fails_with(s, libc::ETIMEDOUT) {
        return 45;
    }
    // SAFETY: closing our socket.
    unsafe { libc::close(s) };
    0
}

/// The server: answers the request, says so once its reply is acknowledged (then it has
/// nothing to resend, and stays silent while the link is dark), and aborts when told.
fn server_side(l: i32, p: Pipes, buf: &mut [u8], data: &[u8]) -> i32 {
    let mut poll = libc::pollfd { fd: l, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let c =
        if unsafe { libc::poll(&raw mut poll, 1, PATIENCE_MS) } == 1 { raw::accept(l) } else { -1 };
    if c < 0 || !raw::read_exactly(c, buf, REQUEST) || !raw::write_exactly(c, data, REPLY) {
        return 80;
    }
    if !eventually(|| queued(c, libc::TIOCOUTQ) == Some(0))
        || !signal(p.exchanged)
        || !wait_for(p.may_close)
        || !abort(c)
    {
        return 81;
    }
    0
}

/// Keepalive on `fd`: a probe after 1 s idle, then every 1 s, and 2 unanswered end it.
fn keepalive(fd: i32) -> bool {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1)
        && set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 2)
        && set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)
        && set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1)
}

/// Sets an int socket option.
fn set_int(fd: i32, level: i32, name: i32, value: libc::c_int) -> bool {
    // SAFETY: a valid int option buffer.
    unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), 4) == 0 }
}
