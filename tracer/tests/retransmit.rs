//! Retransmits on a lossy veth link between two private network namespaces: the server's
//! namespace has an nftables input hook that drops packets going to the test's port: data
//! packets (never a SYN or FIN, whose backed-off timers would make the tests slow, not
//! better), or the handshake's last ACK.
//! Input, not the sender's output: a packet dropped at the sender's own output hook is an
//! error returned to TCP, which sends it again as new data, never as a retransmission.
//!
//! - A 4 MB transfer where 10% of the data packets are dropped at random (`numgen
//!   random`): every retransmit event carries the sending process and the right ports and
//!   addresses, and both the close event's count and the last retransmit event's running
//!   count equal the kernel's own (`TCP_INFO` `tcpi_total_retrans`, read by the client just
//!   before it closes).
//! - One small request whose first copy is dropped (`numgen inc`: the first data packet
//!   only): with nothing more to send and no ACK coming, the sender's tail loss probe timer
//!   sends it again. Exactly one retransmit event, marked as a tail loss probe.
//! - A handshake whose last ACK is dropped (the first pure ACK to the port), with a client
//!   that stays silent past the listener's SYN-ACK timeout: exactly one retransmit event,
//!   the listener's SYN-ACK resend, owner-less, with the half-open connection's ends, and
//!   the count the connection's close event then starts from.

mod common;

use std::ffi::CStr;

use common::{
    own_netns, raw, serial, sockaddr_of,
    tools::{decimal, run, temp_file, tool_path},
    wait_child, Trace,
};

/// Server side of the link (the namespace with the drop rule) and client side.
const SERVER_ADDR: &str = "192.168.77.1";
const CLIENT_ADDR: &str = "192.168.77.2";

/// The outcome of `over_lossy_link`.
struct Run {
    client: i32,
    server: i32,
    kernel_count: u32,
    /// The inode numbers of the client's and the server's network namespaces.
    client_netns: u64,
    server_netns: u64,
}

/// Sets up the two namespaces and the veth link, with `rules` (an nft script) in the
/// server's; the client connects, waits `pause`, and sends `request` bytes, the server
/// replies `reply` bytes; once the
/// leader has removed the rules (so that the close is lossless) the client closes its
/// side, the server its own at the client's FIN, and the client reads its final
/// `tcpi_total_retrans` once the server's FIN has come. Reports their pids and that count.
fn over_lossy_link(
    port: u16,
    rules: &str,
    pause: std::time::Duration,
    request: usize,
    reply: usize,
) -> Run {
    // Buffers for the forked sides, which must not allocate.
    let mut server_buf = vec![0u8; 64 * 1024];
    let server_data = vec![b's'; 64 * 1024];
    let mut client_buf = vec![0u8; 64 * 1024];
    let client_data = vec![b'c'; 64 * 1024];
    let nft = tool_path("TT_NFT", "nft", "nftables");
    let ip = tool_path("TT_IP", "ip", "iproute2");
    let rules = temp_file(&format!("tt-lossy-{port}.nft"), rules);
    let server_side = temp_file(
        &format!("tt-lossy-{port}-server.ip"),
        &format!("link set lo up\naddr add {SERVER_ADDR}/24 dev tt-b\nlink set tt-b up\n"),
    );
    let client_side = temp_file(
        &format!("tt-lossy-{port}-client.ip"),
        &format!("link set lo up\naddr add {CLIENT_ADDR}/24 dev tt-a\nlink set tt-a up\n"),
    );
    let load = [nft.as_ptr(), c"-f".as_ptr(), rules.as_ptr(), std::ptr::null()];
    let flush = [nft.as_ptr(), c"flush".as_ptr(), c"ruleset".as_ptr(), std::ptr::null()];
    let configure_server =
        [ip.as_ptr(), c"-batch".as_ptr(), server_side.as_ptr(), std::ptr::null()];
    let configure_client =
        [ip.as_ptr(), c"-batch".as_ptr(), client_side.as_ptr(), std::ptr::null()];
    let addr = sockaddr_of(format!("{SERVER_ADDR}:{port}").parse().expect("addr"));
    let pause_us = u32::try_from(pause.as_micros()).expect("a pause under an hour");

    // Pipes, all made before the fork: [read, write].
    let mut pipes = [[0; 2]; 6];
    for p in &mut pipes {
        // SAFETY: a valid two-int array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    }
    let [in_netns, link_ready, data_done, may_close, report, counted] = pipes;

    // The leader lives in the server's namespace: it makes the link, loads and later
    // flushes the rules, and listens.
    let leader = common::fork_with(c"tt-lossy-ns", move || {
        // SAFETY: raw system calls in a forked child.
        unsafe {
            let mut byte = [0u8; 1];
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return 70;
            }
            let client = common::fork_with(c"tt-lossy-cli", || {
                let mut byte = [0u8; 1];
                if libc::unshare(libc::CLONE_NEWNET) != 0
                    || libc::write(in_netns[1], byte.as_ptr().cast(), 1) != 1
                {
                    return 240;
                }
                if !raw::read_exactly(link_ready[0], &mut byte, 1) || run(&configure_client) != 0 {
                    return 241;
                }
                let s = raw::connect(&addr, libc::AF_INET);
                if s < 0 {
                    return 242;
                }
                if pause_us > 0 {
                    libc::usleep(pause_us);
                }
                if !raw::write_exactly(s, &client_data, request)
                    || !raw::read_exactly(s, &mut client_buf, reply)
                {
                    return 243;
                }
                if libc::write(data_done[1], byte.as_ptr().cast(), 1) != 1
                    || !raw::read_exactly(may_close[0], &mut byte, 1)
                {
                    return 244;
                }
                // Our FIN first, and the server's at our EOF, which acknowledges ours: then
                // nothing of ours is left to resend (a count read before could miss a FIN
                // that a slow machine resends), and the socket has reached CLOSE.
                if libc::shutdown(s, libc::SHUT_WR) != 0
                    || raw::read_to_eof(s, &mut client_buf) != Some(0)
                {
                    return 247;
                }
                let Some(retrans) = raw::total_retrans(s) else { return 245 };
                libc::close(s);
                let report = [u64::from(retrans), own_netns()];
                if libc::write(counted[1], report.as_ptr().cast(), 16) != 16 {
                    return 246;
                }
                0
            });
            if !raw::read_exactly(in_netns[0], &mut byte, 1) {
                return 71;
            }
            let mut pid_text = [0u8; 12];
            let add_link = [
                ip.as_ptr(),
                c"link".as_ptr(),
                c"add".as_ptr(),
                c"tt-b".as_ptr(),
                c"type".as_ptr(),
                c"veth".as_ptr(),
                c"peer".as_ptr(),
                c"name".as_ptr(),
                c"tt-a".as_ptr(),
                c"netns".as_ptr(),
                decimal(client as u32, &mut pid_text),
                std::ptr::null(),
            ];
            if run(&add_link) != 0 || run(&configure_server) != 0 || run(&load) != 0 {
                return 72;
            }
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let one: libc::c_int = 1;
            libc::setsockopt(l, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&raw const one).cast(), 4);
            if libc::bind(l, (&raw const addr.0).cast(), addr.1) != 0 || libc::listen(l, 16) != 0 {
                return 73;
            }
            let server = common::fork_with(c"tt-lossy-srv", || {
                let c = libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut());
                if c < 0
                    || !raw::read_exactly(c, &mut server_buf, request)
                    || !raw::write_exactly(c, &server_data, reply)
                {
                    return 80;
                }
                if raw::read_to_eof(c, &mut server_buf) != Some(0) {
                    return 81;
                }
                libc::close(c);
                0
            });
            let pids = [client as u64, server as u64, own_netns()];
            libc::write(report[1], pids.as_ptr().cast(), 24);
            if libc::write(link_ready[1], byte.as_ptr().cast(), 1) != 1
                || !raw::read_exactly(data_done[0], &mut byte, 1)
            {
                return 74;
            }
            if run(&flush) != 0 || libc::write(may_close[1], byte.as_ptr().cast(), 1) != 1 {
                return 75;
            }
            let client_status = wait_child(client);
            let server_status = wait_child(server);
            if client_status != 0 {
                client_status
            } else {
                server_status
            }
        }
    });
    let mut pids = [0u64; 3];
    let mut counted_report = [0u64; 2];
    // SAFETY: our ends of the pipes; the leader wrote 24 bytes, the client 16; then close all.
    unsafe {
        libc::close(report[1]);
        libc::close(counted[1]);
        assert_eq!(
            libc::read(report[0], pids.as_mut_ptr().cast(), 24),
            24,
            "the leader failed early"
        );
        assert_eq!(wait_child(leader), 0, "the transfer over the lossy link failed");
        assert_eq!(libc::read(counted[0], counted_report.as_mut_ptr().cast(), 16), 16);
        for p in pipes {
            libc::close(p[0]);
            libc::close(p[1]);
        }
    }
    Run {
        client: pids[0] as i32,
        server: pids[1] as i32,
        kernel_count: counted_report[0] as u32,
        client_netns: counted_report[1],
        server_netns: pids[2],
    }
}

/// Both processes are gone; the last ACK of a lossless close is microseconds behind them.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn test_port() -> u16 {
    20_000 + (std::process::id() % 10_000) as u16
}

/// An nft script dropping the packets to `port` that `matching` picks, in the server's
/// input hook.
fn drop_rule(port: u16, matching: &str) -> String {
    format!(
        "table inet tt {{\n  chain in {{\n    type filter hook input priority 0; policy accept;\n    \
         tcp dport {port} {matching} drop\n  }}\n}}\n"
    )
}

/// Data packets: neither SYN, FIN nor RST, and longer than headers alone.
const DATA: &str = "tcp flags & (syn | fin | rst) == 0 meta length > 200";

/// No pause between the connect and the request.
const AT_ONCE: std::time::Duration = std::time::Duration::ZERO;

#[test]
fn retransmits_on_a_lossy_link_name_the_sender_and_match_tcp_info() {
    const CLIENT_SENDS: usize = 4_000_000;
    const SERVER_SENDS: usize = 30_000;
    let _serial = serial();
    let port = test_port();
    let trace =
        Trace::new(&["-e", "connect,accept,close,retransmit", "--port", &port.to_string()]).start();
    let Run { client, server, kernel_count, client_netns, server_netns } = over_lossy_link(
        port,
        &drop_rule(port, &format!("{DATA} numgen random mod 100 < 10")),
        AT_ONCE,
        CLIENT_SENDS,
        SERVER_SENDS,
    );
    settle();
    let done = trace.stop();
    assert!(kernel_count > 0, "10% loss made no retransmission: the netns rules did not apply");
    // Each side's events carry its own network namespace, neither this test's.
    assert!(
        client_netns != 0
            && server_netns != 0
            && client_netns != server_netns
            && client_netns != own_netns()
    );
    for (pid, netns) in [(client, client_netns), (server, server_netns)] {
        let events: Vec<_> = done.events.iter().filter(|e| e["pid"] == pid).collect();
        assert!(events.len() >= 2, "{:?}", done.events);
        for e in events {
            assert_eq!(e["netns"], netns, "{e}");
        }
    }

    let close = done.of("close", client);
    assert_eq!(close.len(), 1, "{:?}", done.events);
    let close = close[0];
    assert_eq!(close["comm"], "tt-lossy-cli");
    assert_eq!(close["laddr"], CLIENT_ADDR);
    assert_eq!(close["raddr"], SERVER_ADDR);
    assert_eq!(close["rport"], port);
    assert_eq!(close["bytes_sent"], CLIENT_SENDS);
    assert_eq!(close["bytes_received"], SERVER_SENDS);
    assert_eq!(close["total_retrans"], kernel_count, "close event vs TCP_INFO");

    let from_client = done.of("retransmit", client);
    assert!(!from_client.is_empty(), "no retransmit event from the client: {:?}", done.events);
    for r in &from_client {
        assert_eq!(r["comm"], "tt-lossy-cli");
        assert_eq!(r["laddr"], CLIENT_ADDR);
        assert_eq!(r["lport"], close["lport"]);
        assert_eq!(r["raddr"], SERVER_ADDR);
        assert_eq!(r["rport"], port);
        assert!(
            r["total_retrans"].as_u64().is_some_and(|n| (1..=u64::from(kernel_count)).contains(&n)),
            "{r}"
        );
    }
    // Every retransmission was seen, tail loss probes included: the running count of the
    // last one is the kernel's final count.
    let last = from_client.iter().filter_map(|r| r["total_retrans"].as_u64()).max();
    assert_eq!(
        last,
        Some(u64::from(kernel_count)),
        "retransmit events vs TCP_INFO: {from_client:?}"
    );
    // A tail loss probe resends one segment: its count is one more than the event before
    // (a recovery's retransmission, made on an ACK while the probe timer was due, once
    // passed for a probe, its count a whole batch ahead).
    let mut before = 0;
    for r in &from_client {
        let count = r["total_retrans"].as_u64().expect("a count");
        if r["tail_loss_probe"] == true {
            assert_eq!(
                count,
                before + 1,
                "a probe of more than one segment: {r} in {from_client:?}"
            );
        }
        before = count;
    }
    // Whatever else retransmitted on this port was the server, and says so.
    for r in done.events.iter().filter(|e| e["type"] == "retransmit" && e["pid"] != client) {
        assert_eq!(r["pid"], server, "retransmit with a stranger's pid: {r}");
        assert_eq!(r["lport"], port);
    }
}

#[test]
fn a_lost_last_segment_is_resent_by_a_tail_loss_probe_and_marked_so() {
    const REQUEST: usize = 1_000;
    const REPLY: usize = 100;
    let _serial = serial();
    let port = test_port() + 1;
    let trace = Trace::new(&["-e", "close,retransmit", "--port", &port.to_string()]).start();
    // `numgen inc` counts from 0: only the first data packet to the port is dropped.
    let Run { client, server, kernel_count, .. } = over_lossy_link(
        port,
        &drop_rule(port, &format!("{DATA} numgen inc mod 1000000 == 0")),
        AT_ONCE,
        REQUEST,
        REPLY,
    );
    settle();
    let done = trace.stop();
    assert!(kernel_count >= 1, "the request was not dropped: the netns rules did not apply");

    // The dropped request, resent by a probe: the client's first retransmission. A slow
    // machine can add more (an RTO when the probe's ACK came late, a FIN resent), each an
    // event of its own: as many as the kernel counted, and in its order.
    let from_client = done.of("retransmit", client);
    let counts: Vec<u64> = from_client.iter().filter_map(|r| r["total_retrans"].as_u64()).collect();
    // With tcptrace's stderr: its summary says whether an event was lost, and why.
    assert_eq!(
        counts,
        (1..=u64::from(kernel_count)).collect::<Vec<_>>(),
        "vs TCP_INFO's {kernel_count}: {from_client:?} {:?}",
        done.stderr
    );
    let r = from_client[0];
    assert_eq!(r["comm"], "tt-lossy-cli");
    assert_eq!(r["raddr"], SERVER_ADDR);
    assert_eq!(r["rport"], port);
    assert_eq!(r["state"], "ESTABLISHED");
    assert_eq!(r["tail_loss_probe"], true, "{r}");
    let close = done.of("close", client);
    assert_eq!(close.len(), 1, "{:?}", done.events);
    assert_eq!(close[0]["total_retrans"], kernel_count);
    assert_eq!(close[0]["bytes_sent"], REQUEST);
    // Whatever else retransmitted on this port was the server, and says so.
    for r in done.events.iter().filter(|e| e["type"] == "retransmit" && e["pid"] != client) {
        assert_eq!(r["pid"], server, "retransmit with a stranger's pid: {r}");
    }
}

/// The client's ACK that ends the handshake is dropped, and the client stays silent past
/// the listener's first SYN-ACK timeout (1 s): the listener resends its SYN-ACK for a
/// connection that has no socket yet, so no owner. The client answers the resent SYN-ACK
/// with an ACK (not dropped: only the first pure ACK is), which ends the handshake.
#[test]
fn a_lost_handshake_ack_makes_the_listener_resend_its_syn_ack() {
    const REQUEST: usize = 300;
    const REPLY: usize = 700;
    let _serial = serial();
    let port = test_port() + 2;
    let trace = Trace::new(&["-e", "close,retransmit", "--port", &port.to_string()]).start();
    // Pure ACKs (no data: headers alone); `numgen inc` counts only the packets that got
    // that far in the rule, so only the first one, the handshake's, is dropped.
    let first_ack = "tcp flags == ack meta length < 100 numgen inc mod 1000000 == 0";
    let Run { client, server, kernel_count, server_netns, .. } = over_lossy_link(
        port,
        &drop_rule(port, first_ack),
        std::time::Duration::from_secs(2),
        REQUEST,
        REPLY,
    );
    settle();
    let done = trace.stop();
    assert_eq!(kernel_count, 0, "the client resent nothing");
    let client_close = done.of("close", client);
    assert_eq!(client_close.len(), 1, "{:?}", done.events);
    let server_close = done.of("close", server);
    assert_eq!(server_close.len(), 1, "{:?}", done.events);
    // The connection starts with the listener's resend counted (`req->num_retrans` becomes
    // the new socket's `total_retrans`).
    assert_eq!(server_close[0]["total_retrans"], 1, "{:?} {:?}", server_close[0], done.stderr);
    assert_eq!(server_close[0]["bytes_received"], REQUEST);
    let retransmits: Vec<_> = done.events.iter().filter(|e| e["type"] == "retransmit").collect();
    assert_eq!(retransmits.len(), 1, "{retransmits:?} {:?}", done.stderr);
    let r = retransmits[0];
    assert_eq!(r["state"], "SYN_RECV");
    assert_eq!(r["pid"], serde_json::Value::Null, "{r}");
    assert_eq!(r["comm"], serde_json::Value::Null, "{r}");
    assert_eq!(r["laddr"], SERVER_ADDR);
    assert_eq!(r["lport"], port);
    assert_eq!(r["raddr"], CLIENT_ADDR);
    assert_eq!(r["rport"], client_close[0]["lport"]);
    assert_eq!(r["total_retrans"], 1);
    assert_eq!(r["tail_loss_probe"], false);
    // The request socket's namespace: the listener's.
    assert_eq!(r["netns"], server_netns, "{r}");
}

#[test]
fn decimal_writes_digits_without_allocating() {
    let mut buf = [0u8; 12];
    // SAFETY: `decimal` returns a pointer to a NUL-terminated string inside `buf`.
    let text = |n, buf: &mut [u8; 12]| {
        unsafe { CStr::from_ptr(decimal(n, buf)) }.to_str().expect("ascii").to_owned()
    };
    assert_eq!(text(0, &mut buf), "0");
    assert_eq!(text(4_294_967_295, &mut buf), "4294967295");
    assert_eq!(text(181, &mut buf), "181");
}
