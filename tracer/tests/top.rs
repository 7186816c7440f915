//! `tcptrace top` in batch mode (stdout not a terminal), on exact byte counts: a client
//! and a server (two processes) exchange 1,000,003 and 77,777 bytes and keep the
//! connection open; a snapshot must show both ends open with exactly those totals, each
//! under its own pid; after they close, a snapshot shows both closed with the same totals.
//! Where per-call counting cannot attach (the tracepoint family before Linux 6.3), `top`
//! must refuse with one line, and that is what is checked there.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use common::{
    assert_calls_mode_refused, calls_mode_available, in_vm, listen_v4, serial, HeldExchange, Trace,
};

const CLIENT_SENDS: usize = 1_000_003;
const SERVER_SENDS: usize = 77_777;

/// One row of a batch snapshot, by column name.
fn rows_of(snapshot: &[String]) -> Vec<std::collections::HashMap<&str, &str>> {
    let Some(header) = snapshot.get(1) else { return Vec::new() };
    let names: Vec<&str> = header.split_whitespace().collect();
    snapshot[2..]
        .iter()
        .map(|line| names.iter().copied().zip(line.split_whitespace()).collect())
        .collect()
}

/// Traffic on a port the filter leaves out, in this process, all through a test: one
/// connection older than top, and one top sees open; no row of either may show.
struct Bystander {
    stop: Arc<AtomicBool>,
    open_another: mpsc::Sender<()>,
    opened: mpsc::Receiver<()>,
    thread: JoinHandle<usize>,
}

impl Bystander {
    /// Starts with the older connection.
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let pair = |listener: &TcpListener| {
            let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            (client, listener.accept().expect("accept").0)
        };
        let mut pairs = vec![pair(&listener)];
        let (stop, (open_another, asked), (done, opened)) =
            (Arc::new(AtomicBool::new(false)), mpsc::channel(), mpsc::channel());
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut rounds_with_both = 0;
            let mut buf = [0u8; 100];
            while !stopping.load(Ordering::Relaxed) {
                if asked.try_recv().is_ok() {
                    pairs.push(pair(&listener));
                }
                for (client, server) in &mut pairs {
                    client.write_all(&buf).expect("bystander sends");
                    server.read_exact(&mut buf).expect("bystander receives");
                    server.write_all(&buf).expect("bystander replies");
                    client.read_exact(&mut buf).expect("bystander reads the reply");
                }
                if pairs.len() == 2 {
                    rounds_with_both += 1;
                    if rounds_with_both == 1 {
                        // The one wait in `open_another`.
                        let _ = done.send(());
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            rounds_with_both
        });
        Self { stop, open_another, opened, thread }
    }

    /// Opens the second connection, and returns once it has carried bytes.
    fn open_another(&self) {
        self.open_another.send(()).expect("bystander running");
        self.opened
            .recv_timeout(Duration::from_secs(30))
            .expect("the bystander's second connection carried bytes");
    }

    /// How many rounds both connections exchanged bytes in.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("bystander thread")
    }
}

/// Batch snapshots, each a Vec of lines, from a reader thread.
fn snapshots(trace: &mut Trace) -> mpsc::Receiver<Vec<String>> {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let stdout = trace.take_stdout();
    std::thread::spawn(move || {
        let mut current = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.is_empty() {
                if tx.send(std::mem::take(&mut current)).is_err() {
                    break;
                }
            } else {
                current.push(line);
            }
        }
    });
    rx
}

#[test]
fn batch_snapshots_show_exact_totals_for_open_and_closed_connections() {
    let _serial = serial();
    let (listener, addr) = listen_v4(16);
    let port = addr.port().to_string();
    let bystander = Bystander::start();
    let mut trace = match Trace::new(&["--port", &port]).top(&["-b", "-i", "300ms"]).try_start() {
        Ok(trace) => trace,
        Err(stderr) => {
            bystander.stop();
            return assert_calls_mode_refused(&stderr);
        }
    };
    assert!(calls_mode_available(), "top attached where per-call counting cannot");
    let rx = snapshots(&mut trace);
    bystander.open_another();

    let before_connect = Instant::now();
    let exchange = HeldExchange::start(
        listener,
        addr,
        (c"tt-top-cli", c"tt-top-srv"),
        CLIENT_SENDS,
        SERVER_SENDS,
    );
    let (client, server) = (exchange.client, exchange.server);

    let deadline = Instant::now() + Duration::from_secs(120);
    let next = |rx: &mpsc::Receiver<Vec<String>>| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a snapshot in time")
    };
    // Until a snapshot shows the exchange complete on both open ends.
    let ends = |snapshot: &[String], state: &str| -> Option<(String, String)> {
        let rows = rows_of(snapshot);
        let client_row =
            rows.iter().find(|r| r["PID"] == client.to_string() && r["STATE"] == state)?;
        let server_row =
            rows.iter().find(|r| r["PID"] == server.to_string() && r["STATE"] == state)?;
        let complete = client_row["TX_BYTES"] == CLIENT_SENDS.to_string()
            && client_row["RX_BYTES"] == SERVER_SENDS.to_string()
            && server_row["TX_BYTES"] == SERVER_SENDS.to_string()
            && server_row["RX_BYTES"] == CLIENT_SENDS.to_string();
        complete.then(|| (format!("{client_row:?}"), format!("{server_row:?}")))
    };
    let open = loop {
        let snapshot = next(&rx);
        if let Some(found) = ends(&snapshot, "open") {
            break (found, snapshot);
        }
    };
    let (_, snapshot) = &open;
    let open_for_at_most = before_connect.elapsed().as_millis();
    // The snapshot's first line: the time, the connection count, the events lost (none).
    let first: Vec<&str> = snapshot[0].split_whitespace().collect();
    assert_eq!(first[1..], ["connections", "2", "lost", "0"], "{snapshot:?}");
    let rows = rows_of(snapshot);
    let client_row = rows.iter().find(|r| r["PID"] == client.to_string()).expect("client row");
    assert_eq!(client_row["COMM"], "tt-top-cli");
    assert_eq!(client_row["RPORT"], port);
    assert_eq!(client_row["RADDR"], "127.0.0.1");
    let server_row = rows.iter().find(|r| r["PID"] == server.to_string()).expect("server row");
    assert_eq!(server_row["COMM"], "tt-top-srv");
    assert_eq!(server_row["LPORT"], port);
    assert_eq!(rows.len(), 2, "only this port's two ends: {snapshot:?}");
    // AGE_MS: since each end's handshake ended, which was after `before_connect`.
    let age_ms = |r: &std::collections::HashMap<&str, &str>| {
        r["AGE_MS"].parse::<u128>().expect("AGE_MS is a number")
    };
    let open_ages = [age_ms(client_row), age_ms(server_row)];
    assert!(
        open_ages.iter().all(|a| *a <= open_for_at_most),
        "{open_ages:?} > {open_for_at_most} ms: {snapshot:?}"
    );

    assert!(exchange.close(), "the exchange failed");
    loop {
        let snapshot = next(&rx);
        if ends(&snapshot, "closed").is_some() {
            // A closed row's AGE_MS is the whole life: at least the age shown while open.
            let lived_at_most = before_connect.elapsed().as_millis();
            let rows = rows_of(&snapshot);
            for (pid, open_age) in [client, server].into_iter().zip(open_ages) {
                let row = rows
                    .iter()
                    .find(|r| r["PID"] == pid.to_string() && r["STATE"] == "closed")
                    .expect("closed row");
                assert!(
                    (open_age..=lived_at_most).contains(&age_ms(row)),
                    "{pid}: {open_age}..={lived_at_most} ms: {snapshot:?}"
                );
            }
            break;
        }
        // Until then, the open rows must still be right.
        for r in rows_of(&snapshot) {
            assert!(
                r["PID"] == client.to_string() || r["PID"] == server.to_string(),
                "a stranger: {snapshot:?}"
            );
        }
    }
    let done = trace.stop();
    assert!(bystander.stop() > 1, "the bystander's connections carried nothing while top ran");
    assert!(done.status.success(), "{:?}", done.stderr);
    assert!(
        done.stderr.last().is_some_and(|l| l.starts_with("tcptrace: lost 0 (ring buffer full 0,")),
        "{:?}",
        done.stderr
    );
}

/// `-n` ends top after that many snapshots; `-s total` orders by bytes both ways.
#[test]
fn iterations_and_sort_order() {
    let _serial = serial();
    // One listener each: the two servers must not take each other's client.
    let (small_listener, small_addr) = listen_v4(16);
    let (big_listener, big_addr) = listen_v4(16);
    let ports = [small_addr.port().to_string(), big_addr.port().to_string()];
    // The second snapshot must come after both exchanges: a fork and 300 KB through
    // per-call hooks take seconds on the emulated VM.
    let interval = if in_vm() { "5s" } else { "1s" };
    let trace = match Trace::new(&["--port", &ports[0], "--port", &ports[1]])
        .top(&["-b", "-i", interval, "-n", "2", "-s", "total"])
        .try_start()
    {
        Ok(trace) => trace,
        Err(stderr) => return assert_calls_mode_refused(&stderr),
    };
    let small = HeldExchange::start(
        small_listener,
        small_addr,
        (c"tt-top-small", c"tt-top-s-srv"),
        1_000,
        10,
    );
    let big =
        HeldExchange::start(big_listener, big_addr, (c"tt-top-big", c"tt-top-b-srv"), 300_000, 10);
    let (code, out, stderr) = trace.wait_for_exit();
    // Newest first: `big`'s processes hold a copy of `small`'s pipe (see HeldExchange).
    assert!(big.close() && small.close());
    assert_eq!(code, Some(0), "{stderr:?}");
    let snapshots: Vec<Vec<String>> = out
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.lines().map(String::from).collect())
        .collect();
    assert_eq!(snapshots.len(), 2, "{out}");
    let last = rows_of(&snapshots[1]);
    let mut comms: Vec<&str> = last.iter().map(|r| r["COMM"]).collect();
    // Both ends of a connection have the same total (one's tx is the other's rx).
    comms[..2].sort_unstable();
    comms[2..].sort_unstable();
    assert_eq!(comms, ["tt-top-b-srv", "tt-top-big", "tt-top-s-srv", "tt-top-small"], "{out}");
}

/// A connection older than top shows what moved since top started, open and closed alike:
/// its close must not bring the bytes from before (the socket's own lifetime counters).
#[test]
fn a_connection_older_than_top_counts_only_what_moved_since_it_started() {
    const BEFORE: usize = 5_003;
    const SINCE: usize = 20_011;
    let _serial = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    let exchange =
        |client: &mut std::net::TcpStream, server: &mut std::net::TcpStream, n: usize| {
            use std::io::{Read, Write};
            let mut buf = vec![0u8; n];
            client.write_all(&vec![b'c'; n]).expect("client sends");
            server.read_exact(&mut buf).expect("server reads");
            server.write_all(&vec![b's'; n]).expect("server sends");
            client.read_exact(&mut buf).expect("client reads");
        };
    exchange(&mut client, &mut server, BEFORE);
    let mut trace =
        match Trace::new(&["--port", &port.to_string()]).top(&["-b", "-i", "300ms"]).try_start() {
            Ok(trace) => trace,
            Err(stderr) => return assert_calls_mode_refused(&stderr),
        };
    assert!(calls_mode_available(), "top attached where per-call counting cannot");
    let rx = snapshots(&mut trace);
    exchange(&mut client, &mut server, SINCE);
    let (client_port, me) =
        (client.local_addr().expect("addr").port().to_string(), std::process::id().to_string());
    let deadline = Instant::now() + Duration::from_secs(120);
    // Both ends, by their local port, in `state`, once they show `SINCE` bytes each way.
    let both = |snapshot: &[String], state: &str| -> bool {
        let rows = rows_of(snapshot);
        [client_port.as_str(), port.to_string().as_str()].into_iter().all(|lport| {
            rows.iter().any(|r| {
                r["LPORT"] == lport
                    && r["STATE"] == state
                    && r["PID"] == me
                    && r["TX_BYTES"] == SINCE.to_string()
                    && r["RX_BYTES"] == SINCE.to_string()
            })
        })
    };
    let mut seen = Vec::new();
    let mut wait_for = |state: &str| loop {
        let snapshot = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no {state} rows in time: {seen:?}"));
        // No row of this port may ever show the bytes from before top.
        for r in rows_of(&snapshot) {
            let total = |column: &str| r[column].parse::<usize>().expect("a byte count");
            assert!(total("TX_BYTES") <= SINCE && total("RX_BYTES") <= SINCE, "{snapshot:?}");
        }
        let done = both(&snapshot, state);
        seen = snapshot;
        if done {
            break;
        }
    };
    wait_for("open");
    // Closed: the close event waits for the socket's destruction, which its fd holds off.
    drop((client, server));
    wait_for("closed");
    // A hang-up ends it as cleanly as SIGINT.
    let done = trace.stop_with(libc::SIGHUP);
    assert!(done.status.success(), "{:?}", done.stderr);
}

/// Issue 32: a connection reset in front of top shows its resets. A server that closes
/// with data unread sends one, which its client receives: both closed rows say 1.
#[test]
fn a_reset_connection_shows_one_reset_on_each_closed_row() {
    use std::io::{Read, Write};
    let _serial = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut trace =
        match Trace::new(&["--port", &port.to_string()]).top(&["-b", "-i", "300ms"]).try_start() {
            Ok(trace) => trace,
            Err(stderr) => return assert_calls_mode_refused(&stderr),
        };
    let rx = snapshots(&mut trace);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    let client_port = client.local_addr().expect("addr").port().to_string();
    client.write_all(&[b'c'; 5_000]).expect("client sends");
    server.read_exact(&mut [0u8; 1_000]).expect("server reads a part");
    // The rest arrives before the server closes: unread, so the kernel resets.
    common::wait_until("the rest has arrived", || {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        unsafe { libc::ioctl(server.as_raw_fd(), libc::FIONREAD, &mut n) == 0 && n == 4_000 }
    });
    drop(server);
    assert_eq!(
        client.read(&mut [0u8; 16]).expect_err("reset").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(120);
    let resets = loop {
        let snapshot = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a snapshot in time");
        let rows = rows_of(&snapshot);
        let closed = |lport: &str| {
            rows.iter()
                .find(|r| r["LPORT"] == lport && r["STATE"] == "closed")
                .map(|r| r["RESETS"].to_string())
        };
        if let (Some(server), Some(client)) = (closed(&port.to_string()), closed(&client_port)) {
            break (server, client);
        }
    };
    assert_eq!(resets, ("1".to_string(), "1".to_string()), "server's sent, client's received");
    assert!(trace.stop().status.success());
}
