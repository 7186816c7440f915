//! The whole life of a connection on the running kernel, with the hook family from
//! `TT_PROBE`: accept, close (exact bytes both ways of counting, lifetime, who closed
//! first), state sequences, retransmits, connections older than tcptrace, a load test, and
//! a start, a stop and Ctrl-C under churn.

mod common;

use std::ffi::CStr;

use common::{
    assert_calls_mode_refused, calls_mode_available, effective_family, fork_with, in_vm, listen_v4,
    own_netns, raw, serial, sockaddr_of, wait_accept_queue, wait_child, wait_port_settled,
    wait_syn_resent, Finished, Trace,
};
use serde_json::Value;

const CLIENT_SENDS: usize = 1_000_003;
const SERVER_SENDS: usize = 77_777;

struct Transfer {
    server_pid: i32,
    client_pid: i32,
    server_port: u16,
}

/// A server process and a client process: the client sends CLIENT_SENDS bytes, the server
/// replies SERVER_SENDS bytes, then one side closes first and the other follows.
fn transfer(server_closes_first: bool, server_port: u16, lfd: i32) -> Transfer {
    let mut server_buf = vec![0u8; 64 * 1024];
    let server_data = vec![b's'; 64 * 1024];
    let server_pid = fork_with(c"tt-server", move || {
        let c = raw::accept(lfd);
        if c < 0
            || !raw::read_exactly(c, &mut server_buf, CLIENT_SENDS)
            || !raw::write_exactly(c, &server_data, SERVER_SENDS)
        {
            return 10;
        }
        if !server_closes_first && raw::read_to_eof(c, &mut server_buf) != Some(0) {
            return 11;
        }
        // SAFETY: closing our fd.
        unsafe { libc::close(c) };
        0
    });
    let addr = sockaddr_of(format!("127.0.0.1:{server_port}").parse().expect("addr"));
    let mut client_buf = vec![0u8; 64 * 1024];
    let client_data = vec![b'c'; 64 * 1024];
    let client_pid = fork_with(c"tt-client", move || {
        let s = raw::connect(&addr, libc::AF_INET);
        if s < 0 || !raw::write_exactly(s, &client_data, CLIENT_SENDS) {
            return 20;
        }
        if server_closes_first {
            if raw::read_to_eof(s, &mut client_buf) != Some(SERVER_SENDS) {
                return 21;
            }
        } else if !raw::read_exactly(s, &mut client_buf, SERVER_SENDS) {
            return 22;
        }
        // SAFETY: closing our fd.
        unsafe { libc::close(s) };
        0
    });
    assert_eq!(wait_child(client_pid), 0, "client failed");
    assert_eq!(wait_child(server_pid), 0, "server failed");
    Transfer { server_pid, client_pid, server_port }
}

fn only<'a>(events: Vec<&'a Value>, what: &str) -> &'a Value {
    assert_eq!(events.len(), 1, "want exactly one {what}, got {events:?}");
    events[0]
}

fn assert_closes(done: &Finished, t: &Transfer, server_closes_first: bool, bytes_from: &str) {
    let connect = only(done.of("connect", t.client_pid), "connect from the client");
    let client_port = connect["lport"].as_u64().expect("lport");

    let accept = only(done.of("accept", t.server_pid), "accept by the server");
    assert_eq!(accept["comm"], "tt-server");
    assert_eq!(accept["laddr"], "127.0.0.1");
    assert_eq!(accept["lport"], t.server_port);
    assert_eq!(accept["rport"], client_port);

    let (client_closer, server_closer) =
        if server_closes_first { ("remote", "local") } else { ("local", "remote") };
    let client = only(done.of("close", t.client_pid), "close of the client's connection");
    assert_eq!(client["comm"], "tt-client");
    assert_eq!(client["direction"], "active");
    assert_eq!(client["lport"], client_port);
    assert_eq!(client["rport"], t.server_port);
    assert_eq!(client["bytes_sent"], CLIENT_SENDS);
    assert_eq!(client["bytes_received"], SERVER_SENDS);
    assert_eq!(client["closed_by"], client_closer);
    assert_eq!(client["bytes_from"], bytes_from);
    assert!(client["lifetime_ns"].as_u64().expect("lifetime known") > 0);

    let server = only(done.of("close", t.server_pid), "close of the server's connection");
    assert_eq!(server["comm"], "tt-server");
    assert_eq!(server["direction"], "passive");
    assert_eq!(server["lport"], t.server_port);
    assert_eq!(server["rport"], client_port);
    assert_eq!(server["bytes_sent"], SERVER_SENDS);
    assert_eq!(server["bytes_received"], CLIENT_SENDS);
    assert_eq!(server["closed_by"], server_closer);
    assert_eq!(server["bytes_from"], bytes_from);
    assert!(server["lifetime_ns"].as_u64().expect("lifetime known") > 0);
    // All in this test's network namespace.
    for e in [connect, accept, client, server] {
        assert_eq!(e["netns"], own_netns(), "{e}");
    }
}

fn transitions(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}->{}",
                e["old_state"].as_str().unwrap_or("?"),
                e["new_state"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn assert_state_sequences(done: &Finished, t: &Transfer, server_closes_first: bool) {
    let client: Vec<&Value> = done.of("state", t.client_pid);
    let active_close = ["ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2", "FIN_WAIT2->CLOSE"];
    let passive_close = ["ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK", "LAST_ACK->CLOSE"];
    let (client_close, server_close) = if server_closes_first {
        (passive_close, active_close)
    } else {
        (active_close, passive_close)
    };
    let mut want: Vec<String> = vec!["CLOSE->SYN_SENT".into(), "SYN_SENT->ESTABLISHED".into()];
    want.extend(client_close.iter().map(ToString::to_string));
    assert_eq!(transitions(&client), want, "client (active open)");
    let client_port = client.last().expect("client states")["lport"].clone();

    // The server's child socket: identified by its ports (its owner is unknown until the
    // accept, which comes after the handshake).
    // On 6.1 the child's birth (LISTEN -> SYN_RECV) is traced before its peer address is
    // copied in, so that one event has remote port 0; this test makes one connection only.
    let mut server: Vec<&Value> = done
        .events
        .iter()
        .filter(|e| {
            e["type"] == "state"
                && e["lport"] == t.server_port
                && (e["rport"] == client_port || (e["rport"] == 0 && e["old_state"] == "LISTEN"))
        })
        .collect();
    // The handshake's last ACK and the first data segment, handled at once on two CPUs,
    // can make two children (each `tcp_check_req` clones one): the one that loses the race
    // into the established hash is closed at once, never a connection. Its SYN_RECV ->
    // CLOSE (and its birth, where seen) are real changes, rare, and not this connection's.
    let is = |e: &&Value, old: &str, new: &str| e["old_state"] == old && e["new_state"] == new;
    if let Some(i) = server.iter().position(|e| is(e, "SYN_RECV", "CLOSE")) {
        server.remove(i);
        if server.iter().filter(|e| is(e, "LISTEN", "SYN_RECV")).count() == 2 {
            let born = server.iter().position(|e| is(e, "LISTEN", "SYN_RECV")).unwrap_or(0);
            server.remove(born);
        }
    }
    // The child is born in SYN_RECV by inet_sk_set_state(), which only the tracepoint sees;
    // tcp_set_state() (fentry, kprobe) starts at SYN_RECV -> ESTABLISHED.
    let mut want: Vec<String> = Vec::new();
    if effective_family() == "tracepoint" {
        want.push("LISTEN->SYN_RECV".into());
    }
    want.push("SYN_RECV->ESTABLISHED".into());
    want.extend(server_close.iter().map(ToString::to_string));
    assert_eq!(transitions(&server), want, "server (passive open)");
    assert!(
        server.iter().skip(2).all(|e| e["pid"] == t.server_pid),
        "after accept the owner is known: {server:?}"
    );
    assert!(
        client.iter().chain(&server).all(|e| e["netns"] == own_netns()),
        "{client:?} {server:?}"
    );
}

/// One transfer watched by three tracers at once: socket byte counters, per-call byte
/// counters, and state events; the same traffic for all of them.
fn full_story(server_closes_first: bool) {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    let port = addr.port().to_string();
    let by_socket = Trace::new(&["-e", "connect,accept,close", "--port", &port]).start();
    let by_calls = Trace::new(&["-e", "connect,accept,close", "--bytes", "calls", "--port", &port])
        .try_start();
    let states = Trace::new(&["-e", "state", "--port", &port]).start();
    let t = transfer(server_closes_first, addr.port(), lfd);
    // SAFETY: closing our listener.
    unsafe { libc::close(lfd) };
    // The last steps to CLOSE run in softirq, maybe after both processes exited.
    wait_port_settled(addr.port());

    assert_closes(&by_socket.stop(), &t, server_closes_first, "socket");
    match by_calls {
        Ok(trace) => {
            assert!(calls_mode_available(), "per-call counting attached where it should not");
            assert_closes(&trace.stop(), &t, server_closes_first, "calls");
        }
        Err(stderr) => assert_calls_mode_refused(&stderr),
    }
    assert_state_sequences(&states.stop(), &t, server_closes_first);
}

#[test]
fn transfer_where_the_server_closes_first() {
    full_story(true);
}

#[test]
fn transfer_where_the_client_closes_first() {
    full_story(false);
}

/// A SYN dropped because the listener's accept queue is full is retransmitted by the
/// client's kernel: a deterministic retransmit with no packet filter.
#[test]
fn retransmitted_syns_are_reported_and_counted_like_tcp_info() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(0); // the accept queue holds one connection
    let port = addr.port().to_string();
    let trace = Trace::new(&["-e", "connect,close,retransmit", "--port", &port]).start();
    let sa = sockaddr_of(addr);
    let mut buf = [0u8; 16];
    let first = fork_with(c"tt-first", move || {
        let s = raw::connect(&sa, libc::AF_INET);
        if s < 0 || raw::read_to_eof(s, &mut buf).is_none() {
            return 30;
        }
        0
    });
    wait_accept_queue(lfd, 1);
    let second = fork_with(c"tt-rtx", move || {
        // The queue is full: this SYN is dropped and retransmitted until there is room.
        let s = raw::connect(&sa, libc::AF_INET);
        if s < 0 {
            return 100;
        }
        let Some(retrans) = raw::total_retrans(s) else { return 101 };
        // SAFETY: closing our fd.
        unsafe { libc::close(s) };
        retrans as i32
    });
    // Let the first SYN retransmission (after 1 s) happen against the full queue, then
    // make room.
    wait_syn_resent(addr.port());
    for _ in 0..2 {
        // SAFETY: accepting and closing on our own listener.
        unsafe {
            let c = raw::accept(lfd);
            assert!(c >= 0, "accept failed");
            libc::close(c);
        }
    }
    assert_eq!(wait_child(first), 0);
    let kernel_count = wait_child(second);
    assert!(
        (1..100).contains(&kernel_count),
        "TCP_INFO total_retrans of the second client: {kernel_count}"
    );
    // SAFETY: closing our listener.
    unsafe { libc::close(lfd) };
    // The clients' last steps to CLOSE run in softirq, maybe after they exited.
    wait_port_settled(addr.port());
    let done = trace.stop();

    let retransmits = done.of("retransmit", second);
    let close = only(done.of("close", second), "close of the retransmitting client");
    for r in &retransmits {
        assert_eq!(r["comm"], "tt-rtx");
        assert_eq!(r["rport"], addr.port());
        assert_eq!(r["lport"], close["lport"]);
    }
    // The SYNs the full queue dropped. After TCP_INFO was read, the client's close may
    // still resend its FIN (a slow VM can miss the ACK within the RTO): those come after
    // the SYNs, in a state of an active or simultaneous close, and count in the close.
    let (syns, fins): (Vec<&Value>, Vec<&Value>) =
        retransmits.iter().partition(|r| r["state"] == "SYN_SENT");
    assert!(!syns.is_empty(), "no SYN retransmit event for pid {second}: {:?}", done.events);
    assert!(
        retransmits[..syns.len()].iter().all(|r| r["state"] == "SYN_SENT"),
        "a retransmit between the SYNs: {retransmits:?}"
    );
    for f in &fins {
        let state = f["state"].as_str().expect("a state");
        assert!(
            ["FIN_WAIT1", "CLOSING", "LAST_ACK"].contains(&state),
            "not a SYN nor a FIN: {f:?}"
        );
    }
    let count = |e: &Value| e["total_retrans"].as_i64().expect("a count");
    let kernel_count = i64::from(kernel_count);
    let last_syn = count(syns.last().expect("one at least"));
    let fins_seen = fins.len() as i64;
    // One event per retransmission, each with the kernel's count so far; unless the
    // kernel skipped a hook run (its recursion guard, see tracer-ebpf/src/state/mod.rs),
    // which tcptrace must then have reported as lost.
    if done.lost() == 0 {
        assert_eq!(
            last_syn, kernel_count,
            "last SYN retransmit vs TCP_INFO, nothing reported lost: {retransmits:?}"
        );
        assert_eq!(
            count(close),
            kernel_count + fins_seen,
            "close event vs TCP_INFO and the FINs resent after it"
        );
        for (i, f) in fins.iter().enumerate() {
            assert_eq!(count(f), kernel_count + i as i64 + 1, "{fins:?}");
        }
    } else {
        assert!(last_syn <= kernel_count, "{retransmits:?}");
        assert!(count(close) >= kernel_count + fins_seen, "close event vs TCP_INFO: {close:?}");
    }
}

/// A connection established before tcptrace started still gets its close event, with
/// what the socket knows (exact bytes) and no invented owner or lifetime.
#[test]
fn connections_older_than_tcptrace_still_get_a_close_event() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    let sa = sockaddr_of(addr);
    let mut fds = [0; 2];
    // SAFETY: a pipe to tell the client when to go on.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let mut buf = vec![0u8; 8192];
    let data = vec![b'o'; 8192];
    let client = fork_with(c"tt-old", move || {
        let s = raw::connect(&sa, libc::AF_INET);
        let mut go = [0u8; 1];
        if s < 0 || !raw::read_exactly(fds[0], &mut go, 1) {
            return 40;
        }
        if !raw::write_exactly(s, &data, 5_000) || !raw::read_exactly(s, &mut buf, 3_000) {
            return 41;
        }
        // SAFETY: closing our fd.
        unsafe { libc::close(s) };
        0
    });
    // Accepted before tcptrace starts.
    let conn = raw::accept(lfd);
    assert!(conn >= 0);
    let trace = Trace::new(&["-e", "close", "--port", &addr.port().to_string()]).start();
    assert!(raw::write_exactly(fds[1], b"g", 1));
    let mut buf = vec![0u8; 8192];
    assert!(raw::read_exactly(conn, &mut buf, 5_000));
    assert!(raw::write_exactly(conn, &[b'p'; 3_000], 3_000));
    assert_eq!(raw::read_to_eof(conn, &mut buf), Some(0));
    // SAFETY: closing our fds.
    unsafe {
        libc::close(conn);
        libc::close(lfd);
    }
    assert_eq!(wait_child(client), 0);
    wait_port_settled(addr.port());
    let done = trace.stop();

    let closes: Vec<&Value> = done.events.iter().filter(|e| e["type"] == "close").collect();
    assert_eq!(closes.len(), 2, "{:?} {:?}", done.events, done.stderr);
    let client_side = closes.iter().find(|e| e["rport"] == addr.port()).expect("client side");
    let server_side = closes.iter().find(|e| e["lport"] == addr.port()).expect("server side");
    for (side, sent, received, closer) in
        [(client_side, 5_000, 3_000, "local"), (server_side, 3_000, 5_000, "remote")]
    {
        assert_eq!(side["pid"], Value::Null, "nobody saw this connection open: {side}");
        assert_eq!(side["comm"], Value::Null);
        assert_eq!(side["lifetime_ns"], Value::Null);
        assert_eq!(side["direction"], "unknown");
        assert_eq!(side["bytes_sent"], sent);
        assert_eq!(side["bytes_received"], received);
        assert_eq!(side["closed_by"], closer);
    }
}

/// A client that resets its connection while it waits in the accept queue: accept()
/// still returns it, already closed. Both sides' ends are reported, the accept too, and
/// nothing stays tracked (an entry made for the dead child would never be removed, and the
/// next socket at its address would inherit it).
#[test]
fn a_connection_reset_before_its_accept_leaves_nothing_tracked() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    let port = addr.port();
    let trace = Trace::new(&["-e", "connect,accept,close", "--port", &port.to_string()]).start();
    let s = raw::connect(&sockaddr_of(addr), libc::AF_INET);
    assert!(s >= 0, "connect: {s}");
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: valid option buffer; our fd. SO_LINGER 0 makes close() send a reset.
    unsafe {
        assert_eq!(
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as u32
            ),
            0
        );
        libc::close(s);
    }
    wait_port_settled(port);
    // The child it returns is already reset.
    let conn = raw::accept(lfd);
    assert!(conn >= 0, "accept");
    // SAFETY: closing our fds.
    unsafe {
        libc::close(conn);
        libc::close(lfd);
    }
    let done = trace.stop();
    let me = std::process::id() as i32;
    let tracked = common::tracked_at_exit(&done.stderr);
    assert_eq!(tracked, 0, "left tracked: {:?} {:?}", done.stderr, done.events);
    let connect = only(done.of("connect", me), "the connect");
    assert_eq!(connect["rport"], port);
    let client_port = connect["lport"].as_u64().expect("lport");
    assert_eq!(only(done.of("accept", me), "the accept")["rport"], client_port);
    let client_close = only(done.of("close", me), "the client's close");
    assert_eq!(client_close["closed_by"], "local");
    let server_close = only(
        done.events.iter().filter(|e| e["type"] == "close" && e["lport"] == port).collect(),
        "the server side's close",
    );
    assert_eq!(server_close["rport"], client_port);
    assert_eq!(server_close["closed_by"], "remote");
    assert_eq!(done.events.len(), 4, "{:?}", done.events);
}

/// An abortive close (SO_LINGER 0) with per-call counting: the close event waits for the
/// socket's destruction, and by then tcp_disconnect() has cleared the remote end, the RTT
/// and the retransmit count. The event still has them as they were at CLOSE, with the
/// bytes (and so the port filter still keeps it).
#[test]
fn an_abortive_close_keeps_its_remote_end_with_per_call_counting() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    let port = addr.port();
    let Some(trace) = Trace::new(&["-e", "close", "--bytes", "calls", "--port", &port.to_string()])
        .start_per_call()
    else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    let (s, conn) = connected_after_sending(lfd, &sockaddr_of(addr), 1_000, &mut buf);
    let client_port = common::local_port(s);
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: valid buffers; our fds. SO_LINGER 0 makes close() abort the connection.
    unsafe {
        assert_eq!(
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as u32
            ),
            0
        );
        libc::close(s);
    }
    assert_eq!(raw::read_to_eof(conn, &mut buf), None, "the reset reaches the server");
    // SAFETY: closing our fds.
    unsafe {
        libc::close(conn);
        libc::close(lfd);
    }
    wait_port_settled(port);
    let done = trace.stop();
    let client = only(
        done.events.iter().filter(|e| e["type"] == "close" && e["lport"] == client_port).collect(),
        "the client's close",
    );
    assert_eq!(client["rport"], port, "{client}");
    assert_eq!(client["raddr"], "127.0.0.1", "{client}");
    assert_eq!(
        (&client["bytes_sent"], &client["bytes_received"]),
        (&1_000.into(), &0.into()),
        "{client}"
    );
    assert_eq!(
        (&client["bytes_from"], &client["closed_by"]),
        (&"calls".into(), &"local".into()),
        "{client}"
    );
    assert_ne!(client["srtt_us"], 0, "{client}");
}

/// A connection from a new socket to our listener `lfd` at `target`, over which the
/// client sent `bytes` that the server read (into `buf`): (client, server).
fn connected_after_sending(
    lfd: i32,
    target: &(libc::sockaddr_storage, libc::socklen_t),
    bytes: usize,
    buf: &mut [u8],
) -> (i32, i32) {
    let s = raw::connect(target, libc::AF_INET);
    assert!(s >= 0, "connect: {s}");
    let conn = raw::accept(lfd);
    assert!(conn >= 0, "accept");
    assert!(raw::write_exactly(s, &[b'a'; 4096], bytes) && raw::read_exactly(conn, buf, bytes));
    (s, conn)
}

/// A socket that connects again after `connect(AF_UNSPEC)` (an abortive disconnect), with
/// per-call counting: the first connection's close event waits for the socket's
/// destruction, which never comes before the second connection starts on the same socket.
/// It is sent then, with the first connection's own bytes; the second has its own.
#[test]
fn a_socket_that_connects_again_after_a_disconnect_has_both_closes_with_per_call_counting() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    let port = addr.port();
    let Some(trace) =
        Trace::new(&["-e", "connect,close", "--bytes", "calls", "--port", &port.to_string()])
            .start_per_call()
    else {
        return;
    };
    let target = sockaddr_of(addr);
    let mut buf = vec![0u8; 4096];
    let (s, first) = connected_after_sending(lfd, &target, 1_000, &mut buf);
    let first_port = common::local_port(s);
    let unspec =
        libc::sockaddr { sa_family: libc::AF_UNSPEC as libc::sa_family_t, sa_data: [0; 14] };
    // SAFETY: connect on our own socket with valid addresses.
    unsafe {
        assert_eq!(
            libc::connect(s, &raw const unspec, size_of::<libc::sockaddr>() as u32),
            0,
            "disconnect"
        );
    }
    assert_eq!(raw::read_to_eof(first, &mut buf), None, "the reset reaches the server");
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::connect(s, (&raw const target.0).cast(), target.1), 0, "connect again");
    }
    let second = raw::accept(lfd);
    assert!(second >= 0, "accept again");
    assert!(
        raw::write_exactly(s, &[b'b'; 4096], 2_000) && raw::read_exactly(second, &mut buf, 2_000)
    );
    let second_port = common::local_port(s);
    // SAFETY: closing our fds.
    unsafe {
        libc::close(s);
        assert_eq!(raw::read_to_eof(second, &mut buf), Some(0), "the client's FIN");
        for fd in [first, second, lfd] {
            libc::close(fd);
        }
    }
    wait_port_settled(port);
    let done = trace.stop();
    let me = std::process::id() as i32;
    let connects: Vec<_> = done.of("connect", me).iter().map(|e| e["lport"].clone()).collect();
    assert_eq!(connects, [first_port, second_port], "{:?}", done.events);
    let closes: Vec<_> = done
        .of("close", me)
        .iter()
        .filter(|e| e["rport"] == port)
        .map(|e| {
            (
                e["lport"].clone(),
                e["bytes_sent"].clone(),
                e["closed_by"].clone(),
                e["bytes_from"].clone(),
            )
        })
        .collect();
    let want = |lport: u16, sent: u64| (lport.into(), sent.into(), "local".into(), "calls".into());
    assert_eq!(closes, [want(first_port, 1_000), want(second_port, 2_000)], "{:?}", done.events);
    assert_eq!(done.lost(), 0, "{}", done.summary());
}

/// A connection that ends in LAST_ACK with its FIN never acknowledged: the peer shuts
/// down its side, stops reading with its window full, and the client closes with data
/// still queued, so its FIN waits behind that data until TCP_USER_TIMEOUT kills the
/// socket. Its close event must count exactly the data the peer acknowledged, which is
/// all the peer holds in its receive queue: no FIN to take off.
#[test]
fn close_in_last_ack_with_the_fin_unacknowledged_counts_only_acknowledged_data() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(1);
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on our listener with a valid int; accepted sockets inherit it.
    unsafe {
        assert_eq!(
            libc::setsockopt(lfd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&raw const small).cast(), 4),
            0
        )
    };
    let trace = Trace::new(&["-e", "close", "--port", &addr.port().to_string()]).start();
    let sa = sockaddr_of(addr);
    let client = fork_with(c"tt-unacked", move || {
        let s = raw::connect(&sa, libc::AF_INET);
        let mut buf = [0u8; 64];
        let timeout_ms: libc::c_uint = 300;
        // SAFETY: setsockopt with valid ints, fcntl and write on our own fd.
        unsafe {
            if s < 0
                || libc::setsockopt(
                    s,
                    libc::IPPROTO_TCP,
                    libc::TCP_USER_TIMEOUT,
                    (&raw const timeout_ms).cast(),
                    4,
                ) != 0
                || libc::setsockopt(
                    s,
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&raw const small).cast(),
                    4,
                ) != 0
            {
                return 70;
            }
            // The peer's FIN: this side is in CLOSE_WAIT.
            if raw::read_to_eof(s, &mut buf) != Some(0) {
                return 71;
            }
            // Fill the peer's receive window and our send buffer, then close: LAST_ACK,
            // with the FIN queued behind data that cannot go out.
            libc::fcntl(s, libc::F_SETFL, libc::O_NONBLOCK);
            let chunk = [b'u'; 4096];
            let mut written = 0;
            while libc::write(s, chunk.as_ptr().cast(), chunk.len()) > 0 {
                written += 1;
            }
            if written == 0 || *libc::__errno_location() != libc::EAGAIN {
                return 72;
            }
            libc::close(s);
        }
        0
    });
    // Accepted; then our side shut down, and nothing read.
    let conn = raw::accept(lfd);
    assert!(conn >= 0);
    // SAFETY: shutdown of our own fd.
    assert_eq!(unsafe { libc::shutdown(conn, libc::SHUT_WR) }, 0);
    assert_eq!(wait_child(client), 0, "client failed");
    let client_port = common::peer_port(conn);
    // The client's socket is gone once its user timeout fired (a second or two).
    common::wait_until("the client's socket to time out", || {
        !common::port_in_proc_net_tcp(client_port)
    });
    common::wait_out_softirqs();
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD into a valid int on our own fd.
    assert_eq!(unsafe { libc::ioctl(conn, libc::FIONREAD, &raw mut queued) }, 0);
    let done = trace.stop();
    // SAFETY: closing our fds.
    unsafe {
        libc::close(conn);
        libc::close(lfd);
    }
    assert!(queued > 0, "the client sent nothing before closing");
    let close = only(done.of("close", client), "close of the client's connection");
    assert_eq!(close["lport"], client_port);
    assert_eq!(close["bytes_sent"], queued, "{close}");
    assert_eq!(close["bytes_received"], 0);
    assert_eq!(close["closed_by"], "remote");
}

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
    let counted = common::events_in(summary);
    assert_eq!(events.len(), counted, "every event counted is printed: {summary}");
    assert!(
        events.iter().all(|e| e["pid"].is_null() || e["pid"] == churn),
        "an event with a pid other than the churn's"
    );
    let full = common::count_in(summary, "ring buffer full ");
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
    std::thread::sleep(std::time::Duration::from_millis(200)); // under way before the start
                                                               // The harness reads tcptrace's output only once it stops: a ring buffer that holds
                                                               // the whole run's events, as in the load test.
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
    let forgotten = |done: &Finished| common::forgotten_in(done.summary());
    // The small table: at least what did not fit was dropped, each one a close without
    // its owner, and nothing else lost.
    let dropped = forgotten(&small);
    assert!(dropped >= 2 * OPEN - SMALL_TABLE, "{}", small.summary());
    assert_eq!(ownerless(&small, small_port), dropped, "{}", small.summary());
    assert_eq!(small.lost(), dropped, "{}", small.summary());
    assert!(small.summary().contains("raise --max-connections"), "{}", small.summary());
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

/// More threads asleep in accept() at once than a kretprobe has instances for (the kernel
/// gives one max(10, 2 x CPUs) and makes no more: each call holds one while it sleeps, and
/// a call that finds none is not seen returning). Thread pools that block in accept() are
/// common; every accept must still be reported, each with the thread that made it.
#[test]
fn accepts_by_many_threads_asleep_in_accept_are_all_reported() {
    let threads = more_than_kretprobe_instances();
    let _serial = serial();
    let (lfd, addr) = listen_v4(1024);
    let port = addr.port();
    let trace = Trace::new(&["-e", "accept", "--port", &port.to_string()]).start();
    let acceptors: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // The listener outlives every thread.
                let fd = raw::accept(lfd);
                // SAFETY: no preconditions.
                (unsafe { libc::gettid() }, fd)
            })
        })
        .collect();
    wait_until_asleep_in(libc::SYS_accept4, threads);
    let clients: Vec<i32> =
        (0..threads).map(|_| raw::connect(&sockaddr_of(addr), libc::AF_INET)).collect();
    assert!(clients.iter().all(|&c| c >= 0), "connect failed: {clients:?}");
    // Which thread accepted which client, by the client's port.
    let mut accepted: Vec<(i32, u16)> = acceptors
        .into_iter()
        .map(|t| {
            let (tid, fd) = t.join().expect("an acceptor panicked");
            assert!(fd >= 0, "accept failed");
            let client_port = common::peer_port(fd);
            // SAFETY: closing our fd.
            unsafe { libc::close(fd) };
            (tid, client_port)
        })
        .collect();
    for fd in clients.into_iter().chain([lfd]) {
        // SAFETY: closing our fds.
        unsafe { libc::close(fd) };
    }
    wait_port_settled(port);
    let done = trace.stop();
    let me = std::process::id() as i32;
    let mut reported: Vec<(i32, u16)> = done
        .of("accept", me)
        .iter()
        .map(|e| {
            (e["tid"].as_i64().expect("tid") as i32, e["rport"].as_u64().expect("rport") as u16)
        })
        .collect();
    accepted.sort_unstable();
    reported.sort_unstable();
    assert_eq!(reported, accepted, "{}", done.summary());
    assert_eq!(done.lost(), 0, "{}", done.summary());
}

/// Waits until `count` threads of this process sleep inside the system call `nr`:
/// `/proc/self/task/*/syscall` gives a thread's system call number only while it is blocked
/// in one ("running" otherwise), so each counted thread is past the hook at its entry.
fn wait_until_asleep_in(nr: libc::c_long, count: usize) {
    let nr = nr.to_string();
    let asleep = || {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("syscall"))
                            .is_ok_and(|s| s.split(' ').next() == Some(nr.as_str()))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    common::wait_until(&format!("{count} threads asleep in system call {nr}"), || {
        asleep() >= count
    });
}

/// Per-call byte counting with more threads asleep in recv() at once than a kretprobe has
/// instances for (the kprobe family counts what `tcp_recvmsg` returns with one): a call
/// that got none is never seen returning and its bytes are lost. Each such call must be
/// counted as a lost hook run, one for each connection whose received bytes fall short;
/// families without kretprobes lose nothing.
#[test]
fn per_call_counting_with_many_threads_asleep_in_recv_counts_what_it_misses() {
    const SENT: usize = 1_000;
    let threads = more_than_kretprobe_instances();
    let _serial = serial();
    let (lfd, addr) = listen_v4(1024);
    let port = addr.port();
    let Some(trace) = Trace::new(&["-e", "close", "--bytes", "calls", "--port", &port.to_string()])
        .start_per_call()
    else {
        return;
    };
    let clients: Vec<i32> =
        (0..threads).map(|_| raw::connect(&sockaddr_of(addr), libc::AF_INET)).collect();
    assert!(clients.iter().all(|&c| c >= 0), "connect failed: {clients:?}");
    let readers: Vec<_> = (0..threads)
        .map(|_| {
            // The connections are queued already.
            let fd = raw::accept(lfd);
            assert!(fd >= 0, "accept");
            std::thread::spawn(move || {
                // Everything up to the end of the stream, then the end itself (a call
                // that returns 0). recv(), not read(): the test's other threads sleep
                // in read() (tcptrace's output), and the wait below tells them apart.
                let mut buf = [0u8; 4096];
                let mut received = Some(0);
                loop {
                    // SAFETY: a valid buffer; our fd.
                    match unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) } {
                        0 => break,
                        n if n < 0 => {
                            received = None;
                            break;
                        }
                        n => received = received.map(|r| r + n as usize),
                    }
                }
                // SAFETY: closing our fd.
                unsafe { libc::close(fd) };
                received
            })
        })
        .collect();
    wait_until_asleep_in(libc::SYS_recvfrom, threads);
    for &c in &clients {
        assert!(raw::write_exactly(c, &[b'r'; SENT], SENT));
    }
    for c in clients.into_iter().chain([lfd]) {
        // SAFETY: closing our fds.
        unsafe { libc::close(c) };
    }
    for reader in readers {
        assert_eq!(reader.join().expect("a reader panicked"), Some(SENT));
    }
    wait_port_settled(port);
    let done = trace.stop();
    let closes = |local_port: bool| -> Vec<&Value> {
        done.events
            .iter()
            .filter(|e| {
                e["type"] == "close"
                    && (if local_port { e["lport"] == port } else { e["rport"] == port })
            })
            .collect()
    };
    let (servers, clients) = (closes(true), closes(false));
    assert_eq!((servers.len(), clients.len()), (threads, threads), "{}", done.summary());
    assert!(
        clients.iter().all(|c| c["bytes_sent"] == SENT && c["bytes_from"] == "calls"),
        "{clients:?}"
    );
    // Each server side received SENT bytes, counted, or lost with its call's return.
    assert!(
        servers.iter().all(|s| s["bytes_received"] == SENT || s["bytes_received"] == 0),
        "{servers:?}"
    );
    let short = servers.iter().filter(|s| s["bytes_received"] == 0).count();
    assert_eq!(common::skipped_in(done.summary()), short, "{}", done.summary());
    assert_eq!(done.lost(), short, "{}", done.summary());
    if effective_family() == "kprobe" {
        // More sleepers than instances: some calls had none (else this test shows nothing).
        assert!(short > 0, "{}", done.summary());
    } else {
        assert_eq!(short, 0, "{}", done.summary());
    }
}

/// More threads than a kretprobe has instances: the kernel gives one max(10, 2 x possible
/// CPUs) (`register_kretprobe`), so that many threads asleep in a call use them all up.
fn more_than_kretprobe_instances() -> usize {
    let possible =
        std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("possible CPUs");
    // Ranges like "0-3,8-11", or one CPU.
    let cpus: usize = possible
        .trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((first, last)) => {
                last.parse::<usize>().expect("a CPU number")
                    - first.parse::<usize>().expect("a CPU number")
                    + 1
            }
            None => 1,
        })
        .sum();
    10.max(2 * cpus) + 14
}
