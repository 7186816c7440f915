//! `tcptrace top` in a real terminal: tmux runs it, the test makes traffic, reads the
//! screen (`capture-pane`) and presses keys (`send-keys`). Host only: the VM has no tmux;
//! the kernel side it reads is the one tests/top.rs checks, byte for byte, on every
//! kernel and family.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{listen_v4, probe, serial, tcptrace_bin, HeldExchange};

fn tmux(args: &[&str]) -> (bool, String) {
    let out = Command::new("tmux").args(args).output().expect("tmux (apt-get install tmux)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the screen satisfies `want`; returns it.
fn screen_until(session: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, screen) = tmux(&["capture-pane", "-p", "-t", session]);
        if want(&screen) {
            return screen;
        }
        assert!(Instant::now() < deadline, "no {what} on the screen:\n{screen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The screen line of a process, by comm.
fn line_of<'a>(screen: &'a str, comm: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.split_whitespace().nth(1) == Some(comm))
}

#[test]
fn the_live_table_shows_connections_sorts_filters_and_quits() {
    let _serial = serial();
    let (listener, addr) = listen_v4(16);
    let session = format!("tt-top-{}", std::process::id());
    let command = format!(
        "{} --probe {} --port {} top -i 300ms",
        tcptrace_bin().display(),
        probe(),
        addr.port()
    );
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(
        tmux(&["new-session", "-d", "-s", &session, "-x", "200", "-y", "40", &command]).0,
        "tmux new-session"
    );
    screen_until(&session, "status line", |s| s.contains("tcptrace top:"));

    let exchange =
        HeldExchange::start(listener, addr, (c"tt-tui-cli", c"tt-tui-srv"), 1_000_003, 77_777);
    // 1,000,003 B is 976.6 KiB, 77,777 B is 76.0 KiB: each end's totals, under its pid.
    let screen = screen_until(&session, "both ends with their totals", |s| {
        line_of(s, "tt-tui-cli").is_some_and(|l| l.contains("976.6KiB") && l.contains("76.0KiB"))
            && line_of(s, "tt-tui-srv")
                .is_some_and(|l| l.contains("976.6KiB") && l.contains("76.0KiB"))
    });
    let client_line = line_of(&screen, "tt-tui-cli").expect("client line");
    assert_eq!(
        client_line.split_whitespace().next(),
        Some(exchange.client.to_string().as_str()),
        "{screen}"
    );
    assert!(client_line.contains(&format!("127.0.0.1:{}", addr.port())), "{screen}");
    let server_line = line_of(&screen, "tt-tui-srv").expect("server line");
    assert_eq!(
        server_line.split_whitespace().next(),
        Some(exchange.server.to_string().as_str()),
        "{screen}"
    );

    // s: the next sort key.
    assert!(screen.contains("sorted by rate"), "{screen}");
    tmux(&["send-keys", "-t", &session, "s"]);
    screen_until(&session, "the tx sort", |s| s.contains("sorted by tx rate"));

    // /: a filter that keeps the server's line only.
    tmux(&["send-keys", "-t", &session, "/"]);
    tmux(&["send-keys", "-t", &session, "-l", "tt-tui-srv"]);
    tmux(&["send-keys", "-t", &session, "Enter"]);
    let filtered = screen_until(&session, "the filter", |s| {
        s.contains("\"tt-tui-srv\"") && line_of(s, "tt-tui-cli").is_none()
    });
    assert!(line_of(&filtered, "tt-tui-srv").is_some(), "{filtered}");
    assert!(filtered.contains("1 connections"), "{filtered}");

    // q: quits, and the session (whose only command it was) ends with it.
    tmux(&["send-keys", "-t", &session, "q"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmux(&["has-session", "-t", &session]).0 {
        assert!(Instant::now() < deadline, "tcptrace top did not quit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(exchange.close(), "the exchange failed");
}

/// Runs `top_args` under tmux, wrapped so that its exit status and stderr land in files;
/// returns the session name and the two paths.
fn start_top(name: &str, top_args: &str) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let session = format!("tt-{name}-{}", std::process::id());
    let dir = std::env::temp_dir();
    let rc = dir.join(format!("{session}.rc"));
    let err = dir.join(format!("{session}.err"));
    let _ = std::fs::remove_file(&rc);
    let command = format!(
        "sh -c '{} --probe {} {top_args} 2>{}; echo $? >{}'",
        tcptrace_bin().display(),
        probe(),
        err.display(),
        rc.display()
    );
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(
        tmux(&["new-session", "-d", "-s", &session, "-x", "200", "-y", "40", &command]).0,
        "tmux new-session"
    );
    (session, rc, err)
}

/// Waits for the wrapped command to end; its exit status and stderr.
fn ended(
    session: &str,
    rc: &std::path::Path,
    err: &std::path::Path,
    how: &str,
) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmux(&["has-session", "-t", session]).0 {
        if Instant::now() >= deadline {
            let _ = tmux(&["kill-session", "-t", session]);
            panic!("tcptrace top did not end {how}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let read =
        |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
    (read(rc), read(err))
}

/// Raw mode turns Ctrl-C into a key press (no SIGINT): it must still quit. `-n` ends the
/// view after that many readings, as `top -n` does. Either way the last line on stderr
/// says what was lost: nothing, here.
#[test]
fn ctrl_c_and_a_reading_count_end_the_live_table() {
    let _serial = serial();
    let (session, rc, err) = start_top("topc", "top -i 200ms");
    screen_until(&session, "status line", |s| s.contains("tcptrace top:"));
    tmux(&["send-keys", "-t", &session, "C-c"]);
    let (code, stderr) = ended(&session, &rc, &err, "on Ctrl-C");
    assert_eq!(code, "0", "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("tcptrace: lost 0 (ring buffer full 0,")),
        "{stderr}"
    );

    let (session, rc, err) = start_top("topn", "top -i 200ms -n 3");
    let (code, stderr) = ended(&session, &rc, &err, "after 3 readings (-n 3)");
    assert_eq!(code, "0", "{stderr}");
    assert!(stderr.lines().last().is_some_and(|l| l.starts_with("tcptrace: lost 0 (")), "{stderr}");
}
