//! Every failure a user can cause is one line on stderr with a documented exit code (2
//! usage, 1 run time) and never a panic, including when stdout or stderr cannot be written.

mod common;

use std::net::TcpListener;

use common::{in_vm, run_to_end, serial};

/// `nobody`: not root, no capabilities.
const NOBODY: u32 = 65_534;

#[test]
fn every_failure_is_one_line_with_its_exit_code() {
    let _serial = serial();
    // A family no hook can use on this kernel: the host has no kprobes; Debian's 6.1 has
    // no sock_send_length tracepoint for per-call byte counting.
    let no_family: &[&str] = if in_vm() {
        &["--probe", "tracepoint", "--bytes", "calls"]
    } else {
        &["--probe", "kprobe"]
    };
    let cases: &[(&[&str], Option<u32>, i32, &str)] = &[
        (&["--bogus"], None, 2, "tcptrace: unexpected argument '--bogus' found (see --help)"),
        (&["--port", "70000"], None, 2, "tcptrace: invalid value '70000' for '--port <PORTS>'"),
        (&["--port", "0"], None, 2, "tcptrace: invalid value '0' for '--port <PORTS>'"),
        (&["--rport", "8100-8000"], None, 2, "tcptrace: invalid value '8100-8000' for '--rport <PORTS>': \"8100-8000\" is an empty range"),
        (&["-4", "-6"], None, 2, "tcptrace: the argument '--ipv4' cannot be used with '--ipv6'"),
        (&["--min-latency", "fast"], None, 2, "tcptrace: invalid value 'fast' for '--min-latency <DURATION>'"),
        (&["--cgroup", "/nonexistent/unit"], None, 2, "tcptrace: unknown cgroup path /nonexistent/unit: No such file or directory"),
        (&["--cgroup", "/tmp"], Some(NOBODY), 2, "tcptrace: unknown cgroup path /tmp: not in a cgroup v2 file system (see --help)"),
        (&["-p1", "-p2", "-p3", "-p4", "-p5", "-p6", "-p7", "-p8", "-p9"], None, 2, "tcptrace: at most 8 --pid values (see --help)"),
        (&["-p", "abc"], None, 2, "tcptrace: invalid value 'abc' for '--pid <PID>'"),
        (&["-p", "-1"], None, 2, "tcptrace: invalid value '-1' for '--pid <PID>'"),
        (&["--port", "-80"], None, 2, "tcptrace: invalid value '-80' for '--port <PORTS>': \"-80\" is not a port or a range of ports"),
        (&["-e", "bogus"], None, 2, "tcptrace: invalid value 'bogus' for '--events <LIST>'"),
        (&["--probe", "uprobe"], None, 2, "tcptrace: invalid value 'uprobe' for '--probe <FAMILY>'"),
        (&["--ring-buffer", "2K"], None, 2, "tcptrace: invalid value '2K' for '--ring-buffer <SIZE>': must be a power of two"),
        (&["--max-connections", "10"], None, 2, "tcptrace: invalid value '10' for '--max-connections <N>'"),
        (&["-d", "soon"], None, 2, "tcptrace: invalid value 'soon' for '--duration <DURATION>'"),
        (&["-n", "0"], None, 2, "tcptrace: invalid value '0' for '--count <N>'"),
        (&["-o", "xml"], None, 2, "tcptrace: invalid value 'xml' for '--output <FORMAT>'"),
        (&["completions", "tcsh"], None, 2, "tcptrace: invalid value 'tcsh' for '<SHELL>'"),
        (&["serve", "--max-series", "0"], None, 2, "tcptrace: invalid value '0' for '--max-series <N>'"),
        (&["serve", "--labels", "pid,bogus"], None, 2, "tcptrace: invalid value 'bogus' for '--labels <LABEL,...>'"),
        (&["serve", "--listen", "nowhere"], None, 2, "tcptrace: invalid value 'nowhere' for '--listen <ADDR:PORT>'"),
        (
            &["serve", "--listen", "localhost:9433"],
            None,
            2,
            "tcptrace: invalid value 'localhost:9433' for '--listen <ADDR:PORT>': \"localhost:9433\" is not an IP address and port (like 127.0.0.1:9433 or [::1]:9433) (see --help)\n",
        ),
        // What clap says on the lines after the first stays, on the one line.
        (&["completions"], None, 2, "tcptrace: the following required arguments were not provided: <SHELL> (see --help)\n"),
        (&["-o", "xml"], None, 2, "tcptrace: invalid value 'xml' for '--output <FORMAT>' [possible values: table, plain, json, csv] (see --help)\n"),
        (&["--ring-buffer", "2G"], None, 2, "tcptrace: invalid value '2G' for '--ring-buffer <SIZE>': larger than 1G (see --help)\n"),
        (&["--min-latency", "5ps"], None, 2, "tcptrace: invalid value '5ps' for '--min-latency <DURATION>': unknown unit \"ps\" in \"5ps\" (use ns, us, ms, s, m or h)"),
        // A bare number is seconds to -d, milliseconds to tcpconnlat: refused for latency.
        (&["--min-latency", "10"], None, 2, "tcptrace: invalid value '10' for '--min-latency <DURATION>': \"10\" has no unit (like 10ms, 10us or 10s) (see --help)\n"),
        // Options that act on events left out by -e would do nothing: refused.
        (&["--failed", "-e", "close"], None, 2, "tcptrace: --failed applies to connect events, and -e leaves them out (see --help)\n"),
        (&["--min-latency", "1ms", "-e", "accept,close"], None, 2, "tcptrace: --min-latency applies to connect events, and -e leaves them out (see --help)\n"),
        (&["--bytes", "calls", "-e", "connect"], None, 2, "tcptrace: --bytes calls applies to close events, and -e leaves them out (see --help)\n"),
        // A newline in a path stays on the one line.
        (&["--cgroup", "/nonexistent/a\nb"], None, 2, "tcptrace: unknown cgroup path /nonexistent/a\\nb: No such file or directory"),
        (&["--btf", "/nonexistent/a\nb"], None, 2, "tcptrace: --btf /nonexistent/a\\nb: No such file or directory"),
        // Options of the trace alone are refused by top and serve, not ignored.
        (&["-o", "json", "top"], None, 2, "tcptrace: --output does not apply to `tcptrace top` (see --help)\n"),
        (&["-e", "close", "-n", "3", "serve"], None, 2, "tcptrace: --events, --count do not apply to `tcptrace serve` (see --help)\n"),
        (&["--failed", "top"], None, 2, "tcptrace: --failed does not apply to `tcptrace top` (see --help)\n"),
        (&["--min-latency", "5s", "serve"], None, 2, "tcptrace: --min-latency does not apply to `tcptrace serve` (see --help)\n"),
        (&["serve"], Some(NOBODY), 1, "tcptrace: tracing needs root, or CAP_BPF and CAP_PERFMON"),
        (&[], Some(NOBODY), 1, "tcptrace: tracing needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_BPF and CAP_PERFMON)"),
        // A --btf that names no file is a usage error, like a bad --cgroup; one that is not
        // BTF is found when it is read.
        (&["--btf", "/nonexistent/vmlinux"], None, 2, "tcptrace: --btf /nonexistent/vmlinux: No such file or directory (os error 2) (see --help)\n"),
        (&["--btf", "/"], None, 2, "tcptrace: --btf /: not a file (see --help)\n"),
        (&["--btf", "/bin/sh"], None, 1, "tcptrace: /bin/sh is not valid BTF\n"),
        (&["--netns", "1"], None, 2, "tcptrace: --netns 1: no process or `ip netns` name is in a network namespace with that inode number (see --help)\n"),
        (&["--netns", "0"], None, 2, "tcptrace: --netns 0: not a namespace inode number (1 to 4294967295) (see --help)\n"),
        (&["--netns", "/proc/self/ns/mnt"], None, 2, "tcptrace: --netns /proc/self/ns/mnt: not a network namespace (see --help)\n"),
        (&["--netns", "tt-no-such-netns"], None, 2, "tcptrace: --netns tt-no-such-netns: no such `ip netns` name (in /run/netns) or file (see --help)\n"),
        (no_family, None, 1, "tcptrace: hook "),
    ];
    for (args, uid, code, start) in cases {
        let (got, out, err) = run_to_end(args, *uid);
        assert_eq!(got, *code, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(start), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?}: {err}");
    }
    // A port that is taken: refused after loading, in one line, and nothing left attached.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (got, out, err) = run_to_end(&["serve", "--listen", &addr], None);
    assert_eq!((got, out.as_str()), (1, ""), "{err}");
    assert_eq!(
        err,
        format!("tcptrace: cannot listen on {addr}: Address already in use (os error 98)\n")
    );
    // The hook that fails says why each family was refused.
    let (_, _, err) = run_to_end(no_family, None);
    assert!(err.contains("no hook family attaches on this kernel"), "{err}");
}

/// Nothing panics when stdout or stderr cannot be written (a full disk, a reader gone):
/// the one-line error where there is somewhere to write it, and the usual exit codes.
#[test]
fn a_full_or_closed_output_stream_never_panics() {
    let _serial = serial();
    let probe = common::probe();
    let run = |args: &[&str], stdout: std::process::Stdio, stderr: std::process::Stdio| {
        let out = std::process::Command::new(common::tcptrace_bin())
            .args(["--probe", &probe])
            .args(args)
            .stdout(stdout)
            .stderr(stderr)
            .output()
            .expect("run tcptrace");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let full = || std::process::Stdio::from(std::fs::File::create("/dev/full").expect("/dev/full"));
    let piped = std::process::Stdio::piped;
    let (code, err) = run(&["completions", "bash"], full(), piped());
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "tcptrace: writing to stdout: No space left on device (os error 28)\n")
    );
    // The trace's events, and top's snapshots: said what was being written.
    let (code, err) = run(&["-d", "1"], full(), piped());
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "tcptrace: writing the events to stdout: No space left on device (os error 28)\n"
        )
    );
    if common::calls_mode_available() {
        // After its usual last line, what was lost (nothing).
        let (code, err) = run(&["top", "-b", "-n", "1", "-i", "100ms"], full(), piped());
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(code, Some(1), "{err}");
        assert!(lines.len() == 2 && lines[0].starts_with("tcptrace: lost 0 ("), "{err}");
        assert_eq!(
            lines[1],
            "tcptrace: writing the snapshots to stdout: No space left on device (os error 28)"
        );
    }
    // Usage errors, the trace's own lines (-v, the summary) and top's: nowhere to go.
    assert_eq!(run(&["-p", "x"], piped(), full()).0, Some(2));
    assert_eq!(run(&["-v", "-d", "1"], std::process::Stdio::null(), full()).0, Some(0));
    // top: refused (1) where per-call counting cannot attach, as elsewhere.
    let top = if common::calls_mode_available() { 0 } else { 1 };
    assert_eq!(run(&["top", "-b", "-n", "1"], std::process::Stdio::null(), full()).0, Some(top));
}
