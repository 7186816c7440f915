//! The command line as a user meets it: `--count`, `--duration`, `-T`, `--no-header`, CSV,
//! a reader that goes away, signals, completions and the man page. tests/errors.rs has the
//! failures a user can cause.

mod common;

use std::{io::BufRead, net::TcpListener};

use common::{run_to_end, serial, Peer, PeerSetup, Trace};

/// `nobody`: not root, no capabilities.
const NOBODY: u32 = 65_534;

fn peer(comm: &'static std::ffi::CStr) -> PeerSetup<'static> {
    PeerSetup { comm, uid: NOBODY, empty_netns: false }
}

/// A loopback listener and its port, as the filters take it.
fn listener_and_port() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    (listener, port)
}

/// Connects `n` times in turn, each from a new process; returns their pids.
fn connects(listener: &TcpListener, n: usize) -> Vec<i32> {
    let addr = listener.local_addr().expect("addr");
    (0..n)
        .map(|_| {
            let p = Peer::connector(peer(c"tt-cli-peer"), addr);
            let pid = p.pid;
            assert_eq!(p.go_and_wait(), 0);
            pid
        })
        .collect()
}

/// What `tcptrace -o FORMAT ARGS -e connect --port P` printed around `n` connects (each
/// from a new process) to a fresh listener on port P, once it exited on its own, with 0.
struct ConnectRun {
    port: String,
    pids: Vec<i32>,
    out: String,
    stderr: Vec<String>,
}

impl ConnectRun {
    /// The pids of the events printed, one JSON object a line.
    fn json_pids(&self) -> Vec<i64> {
        self.out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("JSON")["pid"]
                    .as_i64()
                    .expect("pid")
            })
            .collect()
    }

    /// The pids of the first `n` connects.
    fn first_pids(&self, n: usize) -> Vec<i64> {
        self.pids[..n].iter().map(|&p| i64::from(p)).collect()
    }
}

/// Asserts that the summary on `stderr` counts `n` events, all connects.
fn assert_connects_counted(stderr: &[String], n: usize) {
    let summary = common::summary_in(stderr);
    let n = n as u64;
    let want = common::Summary {
        events: n,
        by_type: tracer_common::summary::ByType { connect: n, ..Default::default() },
        ..summary
    };
    assert_eq!(summary, want, "{stderr:?}");
}

fn trace_connects(format: &str, args: &[&str], n: usize) -> ConnectRun {
    let (listener, port) = listener_and_port();
    let mut all = args.to_vec();
    all.extend(["-e", "connect", "--port", &port]);
    let trace = Trace::new(&all).format(format).start();
    let pids = connects(&listener, n);
    let (code, out, stderr) = trace.wait_for_exit();
    assert_eq!(code, Some(0), "{stderr:?}");
    ConnectRun { port, pids, out, stderr }
}

#[test]
fn count_prints_that_many_events_then_exits_zero() {
    let _serial = serial();
    let run = trace_connects("json", &["-n", "2"], 3);
    assert_eq!(run.json_pids(), run.first_pids(2));
    assert_connects_counted(&run.stderr, 2);
}

#[test]
fn duration_stops_on_its_own_with_the_summary() {
    let _serial = serial();
    // Long enough for a fork and a connect on the emulated VM.
    let run = trace_connects("json", &["-d", if common::in_vm() { "6s" } else { "2s" }], 1);
    assert_eq!(run.json_pids(), run.first_pids(1), "one JSON line: {}", run.out);
    assert_connects_counted(&run.stderr, 1);
}

/// `-d` ends `top` and `serve` too, each with its closing line on stderr.
#[test]
fn duration_ends_top_and_serve_too() {
    let _serial = serial();
    let probe = common::probe();
    let runs: [(&[&str], &str); 2] = [
        (&["top", "-b", "-i", "200ms"], "tcptrace: lost 0 ("),
        (&["serve", "--listen", "127.0.0.1:0"], "tcptrace: "),
    ];
    for (args, last) in runs {
        // `timeout`: were -d ignored, the run would end there, with 124.
        let out = std::process::Command::new("timeout")
            .arg("60")
            .arg(common::tcptrace_bin())
            .args(["-d", "1s", "--probe", &probe])
            .args(args)
            .output()
            .expect("run timeout");
        let stderr: Vec<String> =
            String::from_utf8_lossy(&out.stderr).lines().map(String::from).collect();
        if args[0] == "top" && !common::calls_mode_available() {
            common::assert_calls_mode_refused(&stderr);
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr:?}");
        let end = stderr.last().map_or("", String::as_str);
        assert!(
            end.starts_with(last) && end.contains("lost 0 (ring buffer full 0,"),
            "{args:?}: {stderr:?}"
        );
    }
}

#[test]
fn csv_has_a_header_row_unless_told_not_to() {
    let _serial = serial();
    for header in [true, false] {
        let run = trace_connects(
            "csv",
            if header { &["-n", "1"] } else { &["-n", "1", "--no-header"] },
            1,
        );
        let mut lines: Vec<&str> = run.out.lines().collect();
        if header {
            assert_eq!(
                lines.remove(0).split(',').take(4).collect::<Vec<_>>(),
                ["type", "time", "time_ns", "pid"]
            );
        }
        assert_eq!(lines.len(), 1, "{}", run.out);
        let cells: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(cells.len(), 43, "{}", run.out);
        assert_eq!(cells[0], "connect");
        assert_eq!(cells[3], run.pids[0].to_string());
        assert_eq!(cells[5], NOBODY.to_string());
        assert_eq!(cells[6], "tt-cli-peer");
        assert_eq!(cells[10], "127.0.0.1");
        assert_eq!(cells[11], run.port);
        assert_eq!(cells[12], common::own_netns().to_string());
        assert_eq!(cells[14], "ok");
        assert_eq!(cells[19], "1", "one SYN sent");
    }
}

/// `tcptrace | head -1`: the reader goes away, tcptrace exits 0 without a word.
#[test]
fn a_reader_that_goes_away_ends_tcptrace_quietly() {
    let _serial = serial();
    let (listener, port) = listener_and_port();
    let mut trace = Trace::new(&["-e", "connect", "--port", &port]).format("plain").start();
    let mut reader = std::io::BufReader::new(trace.take_stdout());
    let mut header = String::new();
    reader.read_line(&mut header).expect("read the header");
    assert!(header.starts_with("TIME EVENT PID"), "{header}");
    drop(reader);
    // Each connect makes a line to write into the closed pipe; the first write fails.
    connects(&listener, 2);
    let (code, _, stderr) = trace.wait_for_exit();
    assert_eq!(code, Some(0), "{stderr:?}");
    // Nothing but what -v (which the harness passes) always says at exit.
    assert!(
        stderr.iter().all(|l| l.starts_with("tcptrace: connections tracked at exit")),
        "{stderr:?}"
    );

    // On a quiet machine no write fails: tcptrace notices the reader's end by itself.
    let mut trace = Trace::new(&["-e", "connect", "--port", &port]).format("plain").start();
    let mut reader = std::io::BufReader::new(trace.take_stdout());
    let mut header = String::new();
    reader.read_line(&mut header).expect("read the header");
    drop(reader);
    let (code, _, stderr) = trace.wait_for_exit();
    assert_eq!(code, Some(0), "{stderr:?}");
    assert!(
        stderr.iter().all(|l| l.starts_with("tcptrace: connections tracked at exit")),
        "{stderr:?}"
    );
}

#[test]
fn completions_and_man_page_come_from_the_command_line_definition() {
    for (shell, marker) in
        [("bash", "_tcptrace()"), ("zsh", "#compdef tcptrace"), ("fish", "complete -c tcptrace")]
    {
        let (code, out, err) = run_to_end(&["completions", shell], Some(NOBODY));
        assert_eq!((code, err.as_str()), (0, ""), "{shell}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(out.contains("ring-buffer") && out.contains("max-connections"), "{shell}: {out}");
    }
    let (code, out, err) = run_to_end(&["man"], Some(NOBODY));
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains(".TH tcptrace 1"), "{out}");
    assert!(out.contains("\\-\\-ring\\-buffer") && out.contains("EXAMPLES"), "{out}");
    // The subcommands' own options are on the one page, which names no other.
    for option in ["\\-\\-max\\-series", "\\-\\-listen", "\\-\\-interval", "\\-\\-iterations"] {
        assert!(out.contains(option), "{option}: {out}");
    }
    assert!(out.contains(".SH \"TCPTRACE TOP\"") && !out.contains("tcptrace\\-top(1)"), "{out}");
}

/// `-T`: the time column counts seconds from tcptrace's start.
#[test]
fn relative_times_count_from_the_start() {
    let _serial = serial();
    let started = std::time::Instant::now();
    let run = trace_connects("plain", &["-T", "--no-header", "-n", "1"], 1);
    let elapsed = started.elapsed().as_secs_f64();
    let out = &run.out;
    let fields: Vec<&str> = out.split_whitespace().collect();
    let seconds: f64 = fields[0].parse().expect("seconds");
    assert!(fields[0].split_once('.').is_some_and(|(_, frac)| frac.len() == 9), "{out}");
    // After tcptrace's start (which came after `started`), before now: not Unix time.
    assert!(seconds > 0.0 && seconds <= elapsed, "{seconds} s vs {elapsed} s: {out}");
    assert_eq!((fields[1], fields[2]), ("connect", run.pids[0].to_string().as_str()));
}

/// The flags no other test needs: `-t`, `-o table` into a pipe, `--max-connections`,
/// `--ring-buffer`; and SIGTERM ends a trace as cleanly as SIGINT.
#[test]
fn table_output_sizes_and_sigterm() {
    let _serial = serial();
    let (listener, port) = listener_and_port();
    let mut trace = Trace::new(&[
        "-t",
        "--max-connections",
        "2048",
        "--ring-buffer",
        "64K",
        "-e",
        "connect",
        "--port",
        &port,
    ])
    .format("table")
    .start();
    let mut reader = std::io::BufReader::new(trace.take_stdout());
    let pids = connects(&listener, 1);
    let mut header = String::new();
    let mut row = String::new();
    reader.read_line(&mut header).expect("header");
    reader.read_line(&mut row).expect("row");
    assert!(header.starts_with("TIME         EVENT      PID     COMM "), "{header}");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // HH:MM:SS.mmm, then the connect by the peer, to our port, with a human latency.
    assert_eq!(cells[0].len(), 12, "{row}");
    assert_eq!(&cells[1..4], ["connect", pids[0].to_string().as_str(), "tt-cli-peer"], "{row}");
    assert_eq!(cells[8], port, "{row}");
    assert!(cells[9] == "ok" && cells[10].starts_with("lat="), "{row}");
    trace.signal(libc::SIGTERM);
    let (code, _, stderr) = trace.wait_for_exit();
    assert_eq!(code, Some(0), "{stderr:?}");
    assert_connects_counted(&stderr, 1);
}

/// A hang-up (the terminal or ssh session gone, SIGHUP) ends a trace as cleanly as SIGINT:
/// the event already read reaches the output (here a pipe, as a file would), and the
/// summary says what was seen.
#[test]
fn sighup_ends_a_trace_cleanly() {
    let _serial = serial();
    let (listener, port) = listener_and_port();
    let trace = Trace::new(&["-e", "connect", "--port", &port]).start();
    let pids = connects(&listener, 1);
    // The event is in the ring buffer or already read; either way it must come out.
    std::thread::sleep(std::time::Duration::from_millis(300));
    trace.signal(libc::SIGHUP);
    let (code, stdout, stderr) = trace.wait_for_exit();
    assert_eq!(code, Some(0), "{stderr:?}");
    let events: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(
        (&events[0]["type"], &events[0]["pid"]),
        (&serde_json::json!("connect"), &serde_json::json!(pids[0])),
        "{stdout}"
    );
    assert_connects_counted(&stderr, 1);
}

/// The ring buffer's size: 1 MiB by default, 4 MiB when state events are asked for (they
/// multiply the records), and what `--ring-buffer` says whatever the events; `-v` says which.
#[test]
fn ring_buffer_size_follows_the_events_unless_given() {
    let _serial = serial();
    let cases: &[(&[&str], u64, &str)] = &[
        (&["-e", "connect,close"], 1 << 20, "tcptrace: ring buffer 1024 KiB (default)"),
        (&["-e", "close,state"], 4 << 20, "tcptrace: ring buffer 4096 KiB (default)"),
        (&["-e", "close,state", "--ring-buffer", "64K"], 64 << 10, "tcptrace: ring buffer 64 KiB"),
    ];
    for (args, bytes, said) in cases {
        let trace = Trace::new(args).start();
        assert_eq!(trace.ring_buffer_sizes(), vec![*bytes], "{args:?}");
        let done = trace.stop();
        assert!(done.stderr.iter().any(|l| l == said), "{args:?}: {:?}", done.stderr);
    }
}

/// A stop signal that comes while tcptrace is still loading (a supervisor's restart right
/// after a start) ends it as cleanly as one that comes later: once tracing, it exits 0
/// with its summary. tcptrace is stopped (SIGSTOP) as soon as it catches SIGTERM, which
/// must be before it has loaded a single program, signalled, and let go on.
#[test]
fn a_stop_signal_during_the_load_still_ends_the_trace_cleanly() {
    let _serial = serial();
    stopped_while_loading(&["-o", "json", "-e", "connect"]);
    stopped_while_loading(&["serve", "--listen", "127.0.0.1:0"]);
}

fn stopped_while_loading(args: &[&str]) {
    let mut child = std::process::Command::new(common::tcptrace_bin())
        .args(["--probe", &common::probe(), "--port", "9"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tcptrace");
    let pid = child.id() as i32;
    let catches_sigterm = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap_or(0));
        caught.is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !catches_sigterm() {
        assert!(
            std::time::Instant::now() < deadline && child.try_wait().expect("poll").is_none(),
            "tcptrace never caught SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let programs = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("its fds")
        .filter(|fd| {
            fd.as_ref()
                .ok()
                .and_then(|fd| std::fs::read_link(fd.path()).ok())
                .is_some_and(|l| l.as_os_str() == "anon_inode:bpf-prog")
        })
        .count();
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
        libc::kill(pid, libc::SIGCONT);
    }
    assert_eq!(programs, 0, "{args:?}: SIGTERM was caught only once the programs were loaded");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().expect("poll").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("tcptrace's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    let summary = common::Summary::find(stderr.lines());
    assert_eq!(summary.map(|s| s.events), Some(0), "{args:?}: {stderr}");
}
