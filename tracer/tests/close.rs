//! Close events on the running kernel, with the hook family from `TT_PROBE`: exact bytes
//! both ways of counting, who closed first, and the closes that are hard to see: of a
//! connection older than tcptrace, an abortive close, a socket that connects again after a
//! disconnect, a FIN never acknowledged, receivers asleep in more calls than a kretprobe
//! has instances for.

mod common;

use common::{
    effective_family,
    events::{assert_fields, only_one},
    fork_with, listen_v4, more_than_kretprobe_instances, raw, serial, sockaddr_of, wait_child,
    wait_port_settled, wait_until_asleep_in, Trace,
};
use serde_json::{json, Value};

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
        // Nobody saw this connection open: no owner, no lifetime, no direction.
        assert_fields(
            side,
            &json!({
                "pid": null, "comm": null, "lifetime_ns": null, "direction": "unknown",
                "bytes_sent": sent, "bytes_received": received, "closed_by": closer,
            }),
        );
    }
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
    // SO_LINGER 0: close() sends a reset.
    assert!(common::sides::abort(s), "SO_LINGER 0 and close");
    assert_eq!(raw::read_to_eof(conn, &mut buf), None, "the reset reaches the server");
    // SAFETY: closing our fds.
    unsafe {
        libc::close(conn);
        libc::close(lfd);
    }
    wait_port_settled(port);
    let done = trace.stop();
    let client = only_one(
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
    let close = only_one(done.of("close", client), "close of the client's connection");
    assert_eq!(close["lport"], client_port);
    assert_eq!(close["bytes_sent"], queued, "{close}");
    assert_eq!(close["bytes_received"], 0);
    assert_eq!(close["closed_by"], "remote");
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
    assert_eq!(common::skipped_in(&done.summary()), short, "{}", done.summary());
    assert_eq!(done.lost(), short, "{}", done.summary());
    if effective_family() == "kprobe" {
        // More sleepers than instances: some calls had none (else this test shows nothing).
        assert!(short > 0, "{}", done.summary());
    } else {
        assert_eq!(short, 0, "{}", done.summary());
    }
}
