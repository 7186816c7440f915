//! `tcptrace serve` scraped by a real Prometheus (Debian's `prometheus`): after a known
//! amount of traffic, Prometheus's own query API must show the counters moved by exactly
//! that much; then every PromQL expression of the Grafana dashboard in `deploy/` runs
//! against it and must return data (a panel that shows nothing fails).
//!
//! Environment: `TT_PROMETHEUS` names the binary (the VM ships it as `/tt/prometheus-server`);
//! otherwise `/usr/bin/prometheus`.

mod common;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{http_get, listen_v4, serial, HeldExchange, Peer, PeerSetup, Serve};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../deploy/grafana/tcptrace-dashboard.json");
const CONNECTIONS: usize = 3;
const CLIENT_SENDS: usize = 5000;
const SERVER_SENDS: usize = 1200;
const FAILED: usize = 4;

/// A Prometheus server on loopback scraping one target every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let bin = std::env::var("TT_PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
        assert!(std::path::Path::new(&bin).exists(), "{bin} missing (apt-get install prometheus)");
        let dir = std::env::temp_dir().join(format!("tt-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tcptrace\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("log file"))
            .spawn()
            .expect("start prometheus");
        let mut p = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !std::net::TcpStream::connect(p.addr)
            .is_ok_and(|_| http_get(p.addr, "/-/ready").0 == 200)
        {
            let exited = p.child.try_wait().expect("poll prometheus");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "prometheus not ready ({exited:?}): {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// An instant query: the API's `data.result` (an error if the query failed).
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let (status, body) =
            http_get(self.addr, &format!("/api/v1/query?query={}", percent_encode(promql)));
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {}", v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The single value of a scalar-like query (`sum(...)`), 0 when there is no series.
    fn value(&self, promql: &str) -> f64 {
        let result = self.query(promql).unwrap_or_else(|e| panic!("{promql}: {e}"));
        result
            .first()
            .and_then(|r| r["value"][1].as_str())
            .map_or(0.0, |v| v.parse().expect("a number"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// SYN retransmissions, made without a lossy link: a listener with a backlog of 0 holds
/// one unaccepted connection, so the kernel drops the next SYN (its accept queue is full).
/// Once that SYN has gone again, one connection is accepted and the next SYN gets through.
/// Made by this thread under the name `RETRANSMITTER` (the acceptor's too), and closed
/// so that nothing is left to resend: returns the kernel's own final count over the four
/// sockets (`tcpi_total_retrans`), what Prometheus must show for that name (and for the
/// listener's SYN-ACKs resent, had there been any).
fn syn_retransmits(listener: i32, addr: SocketAddr) -> u32 {
    use std::os::fd::IntoRawFd;
    let mut old_name = [0u8; 16];
    // SAFETY: prctl on this thread, with a 16-byte buffer and a NUL-terminated name.
    unsafe {
        libc::prctl(libc::PR_GET_NAME, old_name.as_mut_ptr());
        libc::prctl(libc::PR_SET_NAME, RETRANSMITTER.as_ptr());
    }
    let first = std::net::TcpStream::connect(addr).expect("first connect").into_raw_fd();
    common::wait_accept_queue(listener, 1);
    // A thread takes its creator's name.
    let second = std::thread::spawn(move || {
        std::net::TcpStream::connect(addr).expect("second connect").into_raw_fd()
    });
    common::wait_syn_resent(addr.port());
    // SAFETY: accepting on our own listener.
    let accepted = unsafe { libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert!(accepted >= 0);
    let second = second.join().expect("second connect thread");
    // SAFETY: as above.
    let accepted_second =
        unsafe { libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert!(accepted_second >= 0);
    let retransmits =
        common::close_counted(first, accepted) + common::close_counted(second, accepted_second);
    assert!(retransmits >= 1, "the SYN was never dropped");
    // SAFETY: closing our own listener; the thread's name back, from the buffer above.
    unsafe {
        libc::close(listener);
        libc::prctl(libc::PR_SET_NAME, old_name.as_ptr());
    }
    retransmits
}

/// The host's retransmission counters (`nstat`'s names), for a failure's message.
fn retransmit_counters() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for file in ["/proc/net/snmp", "/proc/net/netstat"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // Pairs of lines: the names, then the values, each after its "Prefix:".
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            for (name, value) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
                if ["RetransSegs", "TCPSynRetrans", "TCPRetransFail", "TCPLostRetransmit"]
                    .contains(&name)
                {
                    out.push((name.to_string(), value.parse().unwrap_or(0)));
                }
            }
        }
    }
    out
}

/// The name of the task that makes and accepts the retransmitting connections.
const RETRANSMITTER: &std::ffi::CStr = c"ttpr";

/// Every PromQL expression in the dashboard: panel targets, and the template variables'
/// queries (`label_values(m, l)` is Grafana's, so it runs as `group by (l) (m)`).
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, x) in map {
                    match (k.as_str(), x) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard["panels"], &mut exprs);
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let query = var["query"]
            .as_object()
            .and_then(|q| q["query"].as_str())
            .or_else(|| var["query"].as_str())
            .unwrap_or("");
        if let Some(args) = query.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
            let (metric, label) = args.rsplit_once(',').expect("label_values(metric, label)");
            exprs.push(format!("group by ({}) ({})", label.trim(), metric.trim()));
        }
    }
    exprs
        .into_iter()
        .map(|e| {
            let mut e = e
                .replace("$__rate_interval", "1m")
                .replace("${__rate_interval}", "1m")
                .replace("$__interval", "15s");
            for var in ["instance", "comm", "service_port"] {
                e = e
                    .replace(&format!("${{{var}:regex}}"), ".*")
                    .replace(&format!("${{{var}}}"), ".*")
                    .replace(&format!("${var}"), ".*");
            }
            e
        })
        .collect()
}

#[test]
fn prometheus_sees_exact_counts_and_every_dashboard_panel_has_data() {
    let _serial = serial();
    let (listener, addr) = listen_v4(16);
    let (rtx_listener, rtx_addr) = listen_v4(0);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let ports = [addr.port(), closed, rtx_addr.port()].map(|p| p.to_string());
    // --drops: the dashboard's drops panel has data too (the refused SYNs, which reach no
    // socket, are dropped as NO_SOCKET).
    let serve = Serve::start(
        &["--port", &ports[0], "--port", &ports[1], "--port", &ports[2]],
        &["--drops"],
    );
    let prometheus = Prometheus::start(serve.addr);

    let held: Vec<HeldExchange> = (0..CONNECTIONS)
        .map(|_| {
            HeldExchange::start(listener, addr, (c"ttpc", c"ttps"), CLIENT_SENDS, SERVER_SENDS)
        })
        .collect();
    for _ in 0..FAILED {
        let peer = Peer::connector(
            PeerSetup { comm: c"ttpf", uid: 0, empty_netns: false },
            ([127, 0, 0, 1], closed).into(),
        );
        assert_eq!(peer.go_and_wait(), libc::ECONNREFUSED);
    }
    for h in held {
        assert!(h.close(), "the exchange failed");
    }
    let kernel_before = retransmit_counters();
    let retransmits = syn_retransmits(rtx_listener, rtx_addr);

    let n = CONNECTIONS as f64;
    // The kernel's count holds the listener's SYN-ACKs resent, if any: owner-less, under
    // the listener's port.
    let retransmitted = format!(
        r#"sum(tcptrace_retransmitted_segments_total{{comm="ttpr"}} or tcptrace_retransmitted_segments_total{{kind="syn_ack",service_port="{}"}})"#,
        rtx_addr.port()
    );
    let expected: [(&str, f64); 8] = [
        (
            r#"sum(tcptrace_connections_opened_total{comm="ttpc",direction="active",result="ok"})"#,
            n,
        ),
        (r#"sum(tcptrace_connections_opened_total{comm="ttps",direction="passive"})"#, n),
        (
            r#"sum(tcptrace_connect_failures_total{comm="ttpf",errno="ECONNREFUSED"})"#,
            FAILED as f64,
        ),
        (r#"sum(tcptrace_resets_total{comm="ttpf",direction="received"})"#, FAILED as f64),
        (r#"sum(tcptrace_sent_bytes_total{comm="ttpc"})"#, n * CLIENT_SENDS as f64),
        (r#"sum(tcptrace_received_bytes_total{comm="ttpc"})"#, n * SERVER_SENDS as f64),
        // Orderly closes: both FINs.
        (r#"sum(tcptrace_connections_closed_total{comm="ttpc",end="fin"})"#, n),
        // Every kind: the kernel counts tail loss probes among its retransmissions.
        (&retransmitted, f64::from(retransmits)),
    ];
    // Prometheus scrapes every second: wait until every figure has arrived, then it must
    // be exact (a counter past its figure fails here too).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: Vec<f64> = expected.iter().map(|(q, _)| prometheus.value(q)).collect();
        if got.iter().zip(&expected).all(|(g, (_, want))| g >= want) {
            for (g, (q, want)) in got.iter().zip(&expected) {
                assert_eq!(g, want, "{q}");
            }
            break;
        }
        if Instant::now() >= deadline {
            // What tcptrace itself counted, to tell a scrape problem from an event the
            // kernel side missed, reported as lost, or dropped by the port filter.
            let own: Vec<String> = serve
                .scrape()
                .iter()
                .filter(|s| {
                    ["retransmit", "lost", "opened", "filtered"].iter().any(|w| s.name.contains(w))
                })
                .map(|s| format!("{s:?}"))
                .collect();
            // And the host's own retransmit counters over the same time (other traffic
            // included): a resend that failed to leave shows as TCPRetransFail.
            let kernel: Vec<String> = retransmit_counters()
                .iter()
                .zip(&kernel_before)
                .map(|((k, now), (_, then))| format!("{k} +{}", now.saturating_sub(*then)))
                .collect();
            panic!(
                "Prometheus never saw the traffic: {got:?} (wanted {:?})\ntcptrace's own: {own:#?}\nthe host's counters since: {kernel:?}\n{}",
                expected.map(|e| e.1),
                prometheus.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Rates need two samples of each new series within the 1m window.
    std::thread::sleep(Duration::from_secs(3));

    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "too few queries found: {queries:?}");
    let empty: Vec<String> = queries
        .iter()
        .filter_map(|q| match prometheus.query(q) {
            Ok(r) if !r.is_empty() => None,
            Ok(_) => Some(format!("{q}: no data")),
            Err(e) => Some(format!("{q}: {e}")),
        })
        .collect();
    assert!(empty.is_empty(), "dashboard queries without data:\n{}", empty.join("\n"));

    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:?}");
}
