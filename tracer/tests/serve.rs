//! `tcptrace serve`: the metrics move by exactly what the traffic did (opens, closes, ends,
//! bytes, drops), and SIGTERM ends it cleanly. Scraped straight from `/metrics`;
//! tests/serve_limits.rs has its limits, tests/prometheus.rs scrapes through a real
//! Prometheus.

mod common;

use std::collections::BTreeSet;

use common::{
    effective_family, fork_with, listen_v4, serial, sockaddr_of, sum, tools::PrivateRules,
    wait_child, HeldExchange, Peer, PeerSetup, Serve,
};

const CONNECTIONS: usize = 3;
const CLIENT_SENDS: usize = 3000;
const SERVER_SENDS: usize = 700;
const FAILED: usize = 2;

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn counters_move_by_exactly_the_traffic_made() {
    let _serial = serial();
    let (listener, addr) = listen_v4(16);
    let closed = closed_port();
    let (lport, cport) = (addr.port().to_string(), closed.to_string());
    let serve = Serve::start(&["--port", &lport, "--port", &cport], &["--labels", "pid,lport"]);
    assert_eq!(common::http_get(serve.addr, "/healthz"), (200, "ok\n".to_string()));

    let held: Vec<HeldExchange> = (0..CONNECTIONS)
        .map(|_| {
            HeldExchange::start(listener, addr, (c"ttsc", c"ttss"), CLIENT_SENDS, SERVER_SENDS)
        })
        .collect();
    let open = serve.scrape_until("three connections open each way", |s| {
        sum(s, "tcptrace_open_connections", &[("direction", "active")]) == CONNECTIONS as f64
            && sum(s, "tcptrace_open_connections", &[("direction", "passive")])
                == CONNECTIONS as f64
    });
    // One label set per process: the pid label is the connecting or accepting process.
    for h in &held {
        let (client, server) = (h.client.to_string(), h.server.to_string());
        let one_client =
            [("comm", "ttsc"), ("pid", client.as_str()), ("direction", "active"), ("result", "ok")];
        assert_eq!(sum(&open, "tcptrace_connections_opened_total", &one_client), 1.0, "{open:#?}");
        let one_server = [
            ("comm", "ttss"),
            ("pid", server.as_str()),
            ("lport", lport.as_str()),
            ("direction", "passive"),
        ];
        assert_eq!(sum(&open, "tcptrace_connections_opened_total", &one_server), 1.0, "{open:#?}");
    }

    let refusals: Vec<i32> = (0..FAILED)
        .map(|_| {
            let peer = Peer::connector(
                PeerSetup { comm: c"ttfail", uid: 0, empty_netns: false },
                ([127, 0, 0, 1], closed).into(),
            );
            peer.go_and_wait()
        })
        .collect();
    assert_eq!(refusals, vec![libc::ECONNREFUSED; FAILED]);
    for h in held {
        assert!(h.close(), "the exchange failed");
    }
    let s = serve.scrape_until("every connection closed", |s| {
        sum(s, "tcptrace_connections_closed_total", &[]) == 2.0 * CONNECTIONS as f64
            && sum(s, "tcptrace_connect_failures_total", &[]) == FAILED as f64
    });

    let n = CONNECTIONS as f64;
    let count = |name: &str, with: &[(&str, &str)]| sum(&s, name, with);
    assert_eq!(
        count(
            "tcptrace_connections_opened_total",
            &[("comm", "ttsc"), ("direction", "active"), ("result", "ok")]
        ),
        n
    );
    assert_eq!(
        count(
            "tcptrace_connections_opened_total",
            &[("comm", "ttss"), ("direction", "passive"), ("result", "ok")]
        ),
        n
    );
    assert_eq!(
        count("tcptrace_connections_opened_total", &[("comm", "ttfail"), ("result", "failed")]),
        FAILED as f64
    );
    assert_eq!(
        count("tcptrace_connections_opened_total", &[]),
        2.0 * n + FAILED as f64,
        "nothing else counted"
    );
    assert_eq!(
        count(
            "tcptrace_connect_failures_total",
            &[("comm", "ttfail"), ("errno", "ECONNREFUSED"), ("service_port", "ephemeral")]
        ),
        FAILED as f64
    );
    // Bytes, both ways, exactly as sent.
    assert_eq!(count("tcptrace_sent_bytes_total", &[("comm", "ttsc")]), n * CLIENT_SENDS as f64);
    assert_eq!(
        count("tcptrace_received_bytes_total", &[("comm", "ttsc")]),
        n * SERVER_SENDS as f64
    );
    assert_eq!(
        count("tcptrace_sent_bytes_total", &[("comm", "ttss"), ("lport", &lport)]),
        n * SERVER_SENDS as f64
    );
    assert_eq!(
        count("tcptrace_received_bytes_total", &[("comm", "ttss")]),
        n * CLIENT_SENDS as f64
    );
    assert_eq!(count("tcptrace_connect_latency_seconds_count", &[("comm", "ttsc")]), n);
    assert_eq!(
        count("tcptrace_connect_latency_seconds_bucket", &[("comm", "ttsc"), ("le", "+Inf")]),
        n
    );
    assert_eq!(count("tcptrace_connection_lifetime_seconds_count", &[("direction", "active")]), n);
    assert_eq!(count("tcptrace_connection_lifetime_seconds_count", &[("direction", "passive")]), n);
    // Both sides close at once here, so which one started is a race: not checked.
    assert_eq!(
        count("tcptrace_connections_closed_total", &[("comm", "ttsc"), ("direction", "active")]),
        n
    );
    assert_eq!(
        count("tcptrace_connections_closed_total", &[("comm", "ttss"), ("direction", "passive")]),
        n
    );
    // Orderly: both FINs, and nothing lost either way.
    assert_eq!(count("tcptrace_connections_closed_total", &[("end", "fin")]), 2.0 * n);
    assert_eq!(count("tcptrace_bytes_lost_total", &[]), 0.0);
    assert!(
        s.iter().any(|x| x.name == "tcptrace_bytes_lost_total"
            && x.labels.get("kind").map(String::as_str) == Some("unread")),
        "{s:#?}"
    );
    assert_eq!(count("tcptrace_open_connections", &[]), 0.0);
    // Each refused connect received one reset (the kernel gives a reason only for those sent).
    assert_eq!(
        count(
            "tcptrace_resets_total",
            &[("comm", "ttfail"), ("direction", "received"), ("reason", "none")]
        ),
        FAILED as f64
    );
    // Three handshakes, two refusals, two sides of three connections closing.
    assert_eq!(
        count("tcptrace_state_transitions_total", &[("from", "SYN_SENT"), ("to", "ESTABLISHED")]),
        n
    );
    assert_eq!(
        count("tcptrace_state_transitions_total", &[("from", "SYN_SENT"), ("to", "CLOSE")]),
        FAILED as f64
    );
    assert_eq!(
        count("tcptrace_state_transitions_total", &[("from", "SYN_RECV"), ("to", "ESTABLISHED")]),
        n
    );
    // Counted in the kernel, filtered there too: each side of an exchange passes through
    // five changes (from CLOSE or LISTEN to CLOSE), a refused connect through two, and
    // nothing else on the machine is counted. The child's birth, LISTEN -> SYN_RECV, is
    // made by inet_sk_set_state(), which only the tracepoint sees (not tcp_set_state()).
    // The handshake's last ACK and the first data, handled at once on two CPUs, can make
    // a second child, closed at once (SYN_RECV -> CLOSE; see lifecycle.rs): rare, real.
    let twins = count("tcptrace_state_transitions_total", &[("from", "SYN_RECV"), ("to", "CLOSE")]);
    assert!(twins <= n, "more children closed in SYN_RECV than connections: {twins}");
    let births = if effective_family() == "tracepoint" { n + twins } else { 0.0 };
    assert_eq!(count("tcptrace_state_transitions_total", &[("from", "LISTEN")]), births);
    assert_eq!(
        count("tcptrace_state_transitions_total", &[]),
        9.0 * n + births + twins + 2.0 * FAILED as f64
    );
    assert_eq!(count("tcptrace_events_lost_total", &[]), 0.0);
    assert_eq!(count("tcptrace_series_dropped_total", &[]), 0.0);
    // Which family each hook took, as -v says it.
    let hooks: BTreeSet<(String, String)> = s
        .iter()
        .filter(|x| x.name == "tcptrace_hook_info")
        .map(|x| (x.labels["hook"].clone(), x.labels["family"].clone()))
        .collect();
    let family = effective_family();
    let expected: BTreeSet<(String, String)> =
        ["state", "connect", "accept", "retransmit", "reset"]
            .iter()
            .map(|h| ((*h).to_string(), family.clone()))
            .collect();
    assert_eq!(hooks, expected);
    // A client that asks for the classic text format alone gets it, with the same samples
    // (but the count of tcptrace's own connections filtered out, which each scrape moves).
    let (status, classic) = common::http_get_accepting(serve.addr, "/metrics", "text/plain");
    assert_eq!(status, 200, "{classic}");
    assert!(
        classic.contains("\n# TYPE tcptrace_connections_opened_total counter\n")
            && !classic.contains("# EOF"),
        "{classic}"
    );
    // In order: the kernel's state counts come out of a hash map.
    let settled = |samples: Vec<common::Sample>| -> BTreeSet<String> {
        samples
            .into_iter()
            .filter(|x| x.name != "tcptrace_events_filtered_total")
            .map(|x| format!("{x:?}"))
            .collect()
    };
    assert_eq!(settled(common::parse_samples(&classic)), settled(serve.scrape()));

    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
    assert!(stderr.iter().all(|l| !l.contains("panicked")), "{stderr:?}");
    // The summary, as the trace gives it: every connect (3 + 2 refused), accept (3) and
    // close (3 + 3), each refusal's reset received and, where seen, sent; state changes,
    // counted in the kernel, are no events.
    let (connects, accepts, closes) = (CONNECTIONS + FAILED, CONNECTIONS, 2 * CONNECTIONS);
    let resets = FAILED * if common::no_socket_resets_seen() { 2 } else { 1 };
    let summary = common::summary_in(&stderr);
    let by_type = tracer_common::summary::ByType {
        accept: accepts as u64,
        close: closes as u64,
        connect: connects as u64,
        reset: resets as u64,
        ..Default::default()
    };
    let events = connects + accepts + closes + resets;
    assert_eq!(
        (summary.events, summary.by_type, summary.lost),
        (events as u64, by_type, 0),
        "{stderr:?}"
    );
}

/// Issue 32: a server that closes with data unread resets the connection. Its close counts
/// as `end="reset_sent"`, the client's as `end="reset_received"`, and exactly the bytes the
/// server never read count as lost (`kind="unread"`). What the client wrote is all either
/// acknowledged or lost unacknowledged: ACKs the server still owed when it reset are never
/// sent, so how the 50,000 bytes split between the two is the kernel's timing.
#[test]
fn an_abortive_close_counts_its_end_and_the_bytes_it_threw_away() {
    use std::io::{Read, Write};
    const WRITTEN: usize = 50_000;
    const READ: usize = 10_000;
    let _serial = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let serve = Serve::start(&["--port", &port.to_string()], &[]);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(&[7; WRITTEN]).expect("write");
    server.read_exact(&mut [0; READ]).expect("read");
    common::wait_until("every byte has arrived", || unread_in(&server) == WRITTEN - READ);
    drop(server); // data unread: the kernel resets the connection
    let reset = client.read(&mut [0; 16]).expect_err("the reset reaches the client");
    assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset);
    drop(client);
    let s = serve.scrape_until("both sides closed", |s| {
        sum(s, "tcptrace_connections_closed_total", &[]) == 2.0
    });
    assert_eq!(
        sum(
            &s,
            "tcptrace_connections_closed_total",
            &[("direction", "passive"), ("end", "reset_sent")]
        ),
        1.0,
        "{s:#?}"
    );
    assert_eq!(
        sum(
            &s,
            "tcptrace_connections_closed_total",
            &[("direction", "active"), ("end", "reset_received")]
        ),
        1.0,
        "{s:#?}"
    );
    assert_eq!(
        sum(&s, "tcptrace_bytes_lost_total", &[("kind", "unread")]),
        (WRITTEN - READ) as f64
    );
    let acked = sum(&s, "tcptrace_sent_bytes_total", &[]); // the server sent nothing
    assert_eq!(
        acked + sum(&s, "tcptrace_bytes_lost_total", &[("kind", "unacked")]),
        WRITTEN as f64,
        "{s:#?}"
    );
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
}

/// Issue 32: `serve --drops` counts the TCP segments the kernel drops, by its reason: a
/// client whose SYNs an nftables rule drops (in a private network namespace) adds exactly
/// the rule's own count to `tcptrace_drops_total{reason="NETFILTER_DROP"}`.
#[test]
fn drops_count_exactly_what_a_firewall_rule_dropped() {
    let _serial = serial();
    let port = 13_000 + (std::process::id() % 1_000) as u16;
    let serve = Serve::start(&["--port", &port.to_string()], &["--drops"]);
    let rules = PrivateRules::new(
        &format!("tt-serve-drop-{port}.nft"),
        "input",
        &format!("tcp dport {port} counter drop"),
    );
    let addr = sockaddr_of(format!("127.0.0.1:{port}").parse().expect("addr"));
    let client = fork_with(c"tt-serve-drop", move || {
        // SAFETY: raw system calls in a forked child.
        unsafe {
            if !rules.enter() {
                return 200;
            }
            // A SYN and its first resend (a second later), then connect() gives up.
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let patience = libc::timeval { tv_sec: 1, tv_usec: 500_000 };
            let size = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
            if libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&raw const patience).cast(),
                size,
            ) != 0
                || libc::connect(s, (&raw const addr.0).cast(), addr.1) == 0
            {
                return 201;
            }
            libc::close(s);
            // The rule's own count, as the exit status.
            rules.counted().filter(|&n| (1..200).contains(&n)).map_or(202, |n| n as i32)
        }
    });
    let dropped = wait_child(client);
    assert!((1..200).contains(&dropped), "the client failed: {dropped}");
    let s = serve.scrape_until("every drop counted", |s| {
        sum(s, "tcptrace_drops_total", &[]) >= f64::from(dropped)
    });
    assert_eq!(
        sum(
            &s,
            "tcptrace_drops_total",
            &[("reason", "NETFILTER_DROP"), ("service_port", &port.to_string())]
        ),
        f64::from(dropped),
        "{s:#?}"
    );
    assert_eq!(sum(&s, "tcptrace_drops_total", &[]), f64::from(dropped), "{s:#?}");
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
}

/// Bytes waiting in `socket`'s receive queue (FIONREAD).
fn unread_in(socket: &std::net::TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD");
    usize::try_from(n).unwrap_or(0)
}
