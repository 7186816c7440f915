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
//! tests/dark.rs has the ends over a link gone dark: timeouts and unreachable answers.
//!
//! Before a side resets the connection, the other side's data has
//! been acknowledged (it waits for TIOCOUTQ to reach 0, and says so through a pipe): a
//! reset that overtakes a delayed ACK leaves it unprocessed, and the counts would depend
//! on the delayed-ACK timer; and a server with nothing to resend stays silent in the dark.

mod common;

use common::{
    events::{assert_fields, kernel_reason, only},
    fork_with, kernel_gives_reset_reasons, listen_v4, raw, serial,
    sides::*,
    sockaddr_of,
    tools::pipe,
    wait_child, wait_port_settled, Trace,
};
use serde_json::{json, Value};

#[test]
fn issue_32_close_with_unread_data_sends_a_reset_abort_on_close() {
    let (done, server, client) = abort_on_close("connect,close,reset");
    assert_abort_on_close_closes(&done, server, client);
    assert_one_reset_each_way(&done, (server, client), "TCP_ABORT_ON_CLOSE");
}

/// The kernel's reason reaches the close event when reset events are not asked for too
/// (on 6.10+ the reset hook runs for it, and its events go no further than the join).
#[test]
fn the_close_has_the_kernel_s_reason_without_reset_events() {
    let (done, server, client) = abort_on_close("close");
    assert_abort_on_close_closes(&done, server, client);
    assert_eq!(
        done.events.iter().filter(|e| e["type"] != "close").count(),
        0,
        "{:#?}",
        done.events
    );
    let hooks: Vec<&String> =
        done.stderr.iter().filter(|l| l.starts_with("tcptrace: hook reset: ")).collect();
    if kernel_gives_reset_reasons() {
        assert!(
            hooks.len() == 1
                && hooks[0].contains("(only for the kernel's reset reasons on close events)"),
            "-v says why the reset hook is there: {:?}",
            done.stderr
        );
    } else {
        assert_eq!(hooks.len(), 0, "nothing to join before 6.10: {:?}", done.stderr);
    }
}

/// `reason_inferred` of a close that sent a reset: false where the kernel names it (6.10+).
fn inferred() -> Value {
    json!(!kernel_gives_reset_reasons())
}

/// Issue 32's abortive close: the client writes 500,000 bytes, the server reads 100,000,
/// waits until all has arrived, and closes. Traced with `events`.
fn abort_on_close(events: &str) -> (common::Finished, i32, i32) {
    const WRITTEN: usize = 500_000;
    const READ: usize = 100_000;
    let (mut buf, data) = (vec![0u8; 64 * 1024], vec![b'c'; 64 * 1024]);
    // Room for all the client writes, unread.
    on_loopback_with(
        events,
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
    )
}

fn assert_abort_on_close_closes(done: &common::Finished, server: i32, client: i32) {
    assert_fields(
        only(&done.of("close", server)),
        &json!({
            "pid": server, "comm": "tt-end-srv", "direction": "passive", "closed_by": "local",
            "end": "reset_sent", "errno": null, "error": null, "reason": "TCP_ABORT_ON_CLOSE", "reason_inferred": inferred(), "timeout": null,
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
            "end": "reset_sent", "errno": null, "error": null, "reason": "TCP_STATE", "reason_inferred": inferred(), "timeout": null,
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
            // Drops not watched: not known, never 0.
            "syns_dropped": null, "syn_drop_reason": null,
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

/// A storm: 20,000 connects to a port nobody listens on, as fast as they go, each refused:
/// a reset sent (its SYN reached no socket) and one received. Each CPU sends at most 1,000
/// reset events a second; the kernel counts the rest by direction, reason and addresses,
/// reported at most once a second a key. The events stay bounded, their counts add up to
/// exactly one reset each way a connect, and nothing is lost.
#[test]
fn a_reset_storm_is_bounded_and_its_counts_are_exact() {
    const CONNECTS: u64 = 20_000;
    let _serial = serial();
    let closed =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let port = closed.port();
    let started = std::time::Instant::now();
    let trace = Trace::new(&["-e", "reset", "--port", &port.to_string()]).start();
    let sa = sockaddr_of(closed);
    let storm = fork_with(c"tt-end-storm", move || {
        for _ in 0..CONNECTS {
            if raw::connect(&sa, libc::AF_INET) != -libc::ECONNREFUSED {
                return 1;
            }
        }
        0
    });
    assert_eq!(wait_child(storm), 0, "a connect was not refused");
    let done = trace.stop();
    let seconds = started.elapsed().as_secs() + 2;
    // SAFETY: sysconf reads a number.
    let cpus = u64::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }).expect("cpus");
    let resets: Vec<&Value> = done.events.iter().filter(|e| e["type"] == "reset").collect();
    // The budget's events, and one a second for each of the two keys past it.
    let bound = 1_000 * cpus * seconds + 2 * seconds;
    assert!(
        resets.len() as u64 <= bound && (resets.len() as u64) < 2 * CONNECTS,
        "{} reset events in {seconds} s on {cpus} CPUs",
        resets.len()
    );
    let sum = |direction: &str| -> u64 {
        resets
            .iter()
            .filter(|e| e["direction"] == direction)
            .map(|e| e["count"].as_u64().expect("a count"))
            .sum()
    };
    for received in resets.iter().filter(|e| e["direction"] == "received") {
        assert_fields(
            received,
            &json!({
                "pid": storm, "comm": "tt-end-storm", "state": "SYN_SENT", "reason": null,
                "laddr": "127.0.0.1", "raddr": "127.0.0.1", "rport": port,
            }),
        );
    }
    assert_eq!(sum("received"), CONNECTS, "resets received; {}", done.summary());
    let seen = common::no_socket_resets_seen();
    for sent in resets.iter().filter(|e| e["direction"] == "sent") {
        assert_fields(
            sent,
            &json!({
                "pid": null, "state": null, "reason": kernel_reason("NO_SOCKET"),
                "laddr": "127.0.0.1", "lport": port, "raddr": "127.0.0.1",
            }),
        );
    }
    assert_eq!(sum("sent"), if seen { CONNECTS } else { 0 }, "resets sent; {}", done.summary());
    assert_eq!(done.lost(), 0, "{}", done.summary());
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
    on_loopback_with("connect,close,reset", rcvbuf, server, client)
}

/// `on_loopback`, traced with `events`.
fn on_loopback_with(
    events: &str,
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
    let trace = Trace::new(&["-e", events, "--port", &addr.port().to_string()]).start();
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
