//! How a connection ends when its link goes dark: the `end` of close and connect events,
//! with which retries ran out and the bytes left behind, each case made for real and every
//! field checked at once (tests/end.rs has the ends on loopback).
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
//! Before the link goes dark, the other side's data has been acknowledged (it waits for
//! TIOCOUTQ to reach 0, and says so through a pipe): a server with nothing to resend stays
//! silent in the dark.

mod common;

use std::ffi::CStr;

use common::{
    events::{assert_fields, kernel_reason, only, resets_sent_by},
    fork_with, raw, serial,
    sides::*,
    sockaddr_of,
    tools::{decimal, packets_counted, pipe, run, temp_file, tool_path, write_sysctl},
    wait_child, Trace,
};
use serde_json::{json, Value};

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

#[test]
fn unanswered_keepalive_probes_end_in_a_keepalive_timeout() {
    let (done, client, _) = over_a_link_gone_dark(Dark::WhileIdle);
    assert_fields(
        only(&done.of("close", client)),
        &json!({
            "pid": client, "comm": "tt-end-cli", "direction": "active", "closed_by": "local",
            "end": "timeout", "errno": 110, "error": "ETIMEDOUT", "timeout": "keepalive",
            // The reset the keepalive timer sent first: the kernel's name (6.10+), or told.
            "reason": "TCP_KEEPALIVE_TIMEOUT", "reason_inferred": !common::kernel_gives_reset_reasons(),
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
