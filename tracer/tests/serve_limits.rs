//! `tcptrace serve` at its limits: its own connections are left out, a reset storm is
//! counted exactly without crediting any connection with it, label sets stop at
//! `--max-series` with the drops counted, a full connection table shows as a loss,
//! connections that never finish a request are closed, and SIGHUP ends it cleanly.
//! Scraped straight from `/metrics`.

mod common;

use std::collections::BTreeSet;

use common::{serial, sum, Serve};

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// tcptrace's own connections, here the scrapes it serves, are left out on its side:
/// only the scraper's (active) side is counted, never an accepted or owner-less one.
#[test]
fn its_own_connections_are_left_out() {
    let _serial = serial();
    let port = closed_port();
    let serve = Serve::start_on(&format!("127.0.0.1:{port}"), &["--port", &port.to_string()], &[]);
    for _ in 0..3 {
        serve.scrape();
    }
    let s = serve.scrape_until("three scrapes closed", |s| {
        sum(s, "tcptrace_connections_closed_total", &[]) >= 3.0
    });
    let closes: Vec<_> =
        s.iter().filter(|x| x.name == "tcptrace_connections_closed_total").collect();
    assert!(
        closes.iter().all(|x| x.labels.get("direction").map(String::as_str) == Some("active")
            && x.labels.contains_key("comm")),
        "{closes:#?}"
    );
    assert_eq!(
        sum(&s, "tcptrace_connections_opened_total", &[("direction", "passive")]),
        0.0,
        "{s:#?}"
    );
    assert_eq!(sum(&s, "tcptrace_open_connections", &[("direction", "passive")]), 0.0, "{s:#?}");
    // A hang-up ends it as cleanly as SIGTERM: the summary, and exit 0.
    let (code, stderr) = serve.end_with(libc::SIGHUP);
    assert_eq!(code, Some(0), "{stderr:?}");
    assert!(
        stderr.iter().any(|l| l.starts_with("tcptrace: ") && l.contains(" events")),
        "{stderr:?}"
    );
}

/// A storm of 20,000 refused connects to one closed port: every reset received is counted,
/// exactly. The first of each CPU's second are events with their own labels (the process,
/// the service port); those counted together in the kernel past the budget span
/// connections, so they count under `service_port="many"`, with no process.
#[test]
fn a_reset_storm_counts_every_reset_and_credits_no_connection_with_the_storm() {
    const CONNECTS: u32 = 20_000;
    let _serial = serial();
    let port = closed_port();
    let started = std::time::Instant::now();
    let serve = Serve::start(&["--port", &port.to_string()], &[]);
    for _ in 0..CONNECTS {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => panic!("port {port} should be closed: {other:?}"),
        }
    }
    let received = [("direction", "received")];
    let s = serve.scrape_until("every reset counted", |s| {
        sum(s, "tcptrace_resets_total", &received) == f64::from(CONNECTS)
    });
    let resets: Vec<_> = s
        .iter()
        .filter(|x| x.name == "tcptrace_resets_total" && x.labels["direction"] == "received")
        .collect();
    for series in &resets {
        let storm = series.labels["service_port"] == "many";
        let labels: Vec<&str> = series.labels.keys().map(String::as_str).collect();
        if storm {
            assert_eq!(labels, ["direction", "reason", "service_port"], "{series:?}");
        } else {
            // This test's thread (its name, as the kernel keeps 15 bytes of it).
            assert_eq!(series.labels.get("comm").map(String::as_str), Some("a_reset_storm_c"));
        }
    }
    // The budget's events, at most: 1,000 a CPU a second.
    let seconds = started.elapsed().as_secs() + 2;
    // SAFETY: sysconf reads a number.
    let cpus = u64::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }).expect("cpus");
    let one_by_one: f64 =
        resets.iter().filter(|x| x.labels["service_port"] != "many").map(|x| x.value).sum();
    assert!(one_by_one <= (1_000 * cpus * seconds) as f64, "{one_by_one} in {seconds} s");
    assert_eq!(sum(&s, "tcptrace_events_lost_total", &[]), 0.0);
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
}

/// 5,000 distinct remote ports with `--labels rport --max-series 1000`: 1,000 label sets
/// are kept and the events of the other 4,000 (each its reset received and its failed
/// connect) are counted as dropped.
#[test]
fn label_sets_stop_at_max_series_and_the_rest_are_counted() {
    const PORTS: u16 = 5000;
    const FIRST: u16 = 20000;
    let _serial = serial();
    let range = format!("{FIRST}-{}", FIRST + PORTS - 1);
    let serve = Serve::start(
        &["--rport", &range, "--ring-buffer", "8M"],
        &["--labels", "rport", "--max-series", "1000"],
    );
    let mut refused = 0;
    for port in FIRST..FIRST + PORTS {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
            other => panic!("port {port} should be closed: {other:?}"),
        }
    }
    assert_eq!(refused, PORTS);
    let s = serve.scrape_until("every refusal recorded or dropped", |s| {
        let recorded =
            sum(s, "tcptrace_connections_opened_total", &[]) + sum(s, "tcptrace_resets_total", &[]);
        recorded + sum(s, "tcptrace_series_dropped_total", &[]) == 2.0 * f64::from(PORTS)
    });
    assert_eq!(sum(&s, "tcptrace_label_sets", &[]), 1000.0);
    assert_eq!(sum(&s, "tcptrace_resets_total", &[("direction", "received")]), 1000.0);
    assert_eq!(sum(&s, "tcptrace_series_dropped_total", &[]), 8000.0);
    let ports: BTreeSet<&String> = s
        .iter()
        .filter(|x| x.name == "tcptrace_connect_failures_total")
        .map(|x| &x.labels["rport"])
        .collect();
    assert_eq!(ports.len(), 1000);
    assert_eq!(sum(&s, "tcptrace_events_lost_total", &[]), 0.0);
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
    let warned = stderr.iter().filter(|l| l.contains("--max-series 1000 reached")).count();
    assert_eq!(warned, 1, "one warning, not one per drop: {stderr:?}");
}

/// More connections open at once than `--max-connections` holds: the exporter counts the
/// ones the kernel's table forgot as lost (`connection_table_full`), at least what did not
/// fit while they are open, and says the exact number at exit: one per close that came
/// without its owner.
#[test]
fn a_full_connection_table_shows_as_a_loss() {
    const OPEN: usize = 1_500; // both ends tracked: 3,000 entries
    const TABLE: usize = 1_024;
    let _serial = serial();
    let limit = libc::rlimit { rlim_cur: 8192, rlim_max: 8192 };
    // SAFETY: a valid rlimit for our own process (two fds per connection).
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) }, 0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let serve =
        Serve::start(&["--port", &port.to_string(), "--max-connections", &TABLE.to_string()], &[]);
    let held: Vec<(std::net::TcpStream, std::net::TcpStream)> = (0..OPEN)
        .map(|_| {
            let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            (client, listener.accept().expect("accept").0)
        })
        .collect();
    let full = [("reason", "connection_table_full")];
    let while_open = serve.scrape_until("the table's drops counted", |s| {
        sum(s, "tcptrace_events_lost_total", &full) >= (2 * OPEN - TABLE) as f64
    });
    drop(held);
    common::wait_port_settled(port);
    let s = serve.scrape_until("every connection closed", |s| {
        sum(s, "tcptrace_connections_closed_total", &[]) == 2.0 * OPEN as f64
    });
    let ownerless: f64 = s
        .iter()
        .filter(|x| x.name == "tcptrace_connections_closed_total" && !x.labels.contains_key("comm"))
        .map(|x| x.value)
        .sum();
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
    let summary = common::summary_in(&stderr);
    let forgotten = common::forgotten_in(&summary) as f64;
    assert_eq!(ownerless, forgotten, "{summary}");
    assert!(sum(&while_open, "tcptrace_events_lost_total", &full) <= forgotten, "{summary}");
    // Nothing else was lost.
    let other_losses: f64 = s
        .iter()
        .filter(|x| {
            x.name == "tcptrace_events_lost_total"
                && x.labels.get("reason").is_some_and(|r| r != "connection_table_full")
        })
        .map(|x| x.value)
        .sum();
    assert_eq!(other_losses, 0.0, "{summary}");
}

/// Clients that open connections and never finish a request cannot keep them, nor take the
/// exporter's file descriptors, nor keep a scrape out: at most 128 connections are served
/// at once, each new one beyond that closes the oldest (said once on stderr), a request's
/// headers must come within 10 s (the connection is closed after that).
#[test]
fn connections_that_never_finish_a_request_are_closed() {
    use std::io::{Read, Write};
    let _serial = serial();
    let serve = Serve::start_on("127.0.0.1:0", &[], &[]);
    let connect = || {
        let s = std::net::TcpStream::connect(serve.addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(40))).expect("timeout");
        s
    };
    // Half a request line on each: every slot taken.
    let mut holders: Vec<std::net::TcpStream> = (0..128)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"GET /metr").expect("send");
            s
        })
        .collect();
    // A scrape now is served, at once (well before the holders' 10 s are up)...
    let asked = std::time::Instant::now();
    let (status, body) = common::http_get(serve.addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "the scrape waited {:?}",
        asked.elapsed()
    );
    // ...and the oldest holder was closed for it: end of stream, or a reset.
    let mut oldest = holders.remove(0);
    let end = oldest.read(&mut [0u8; 64]).map_err(|e| e.kind());
    assert!(
        matches!(end, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "the oldest holder: {end:?}"
    );
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "the oldest holder stayed {:?}",
        asked.elapsed()
    );
    // Each other holder's connection ends (whatever the server says first); one still
    // open after 40 s fails the read with WouldBlock.
    for (i, mut held) in holders.into_iter().enumerate() {
        let end = held.read_to_end(&mut Vec::new()).map_err(|e| e.kind());
        assert!(
            !matches!(end, Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
            "holder {i}: {end:?}"
        );
    }
    let (status, body) = common::http_get(serve.addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
    let warnings = stderr
        .iter()
        .filter(|l| l.starts_with("tcptrace: more than 128 HTTP connections at once"))
        .count();
    assert_eq!(warnings, 1, "{stderr:?}");
}
