//! `cargo xtask bench`: what tracing costs, measured, never guessed.
//!
//! Workloads run inside this process on loopback, bounded in time: connection churn
//! (connect, 64-byte request, 64-byte reply, close), request/response on kept-alive
//! connections, and a bulk transfer. Configurations run interleaved, round by round, so
//! drift and noise on a shared machine show as spread rather than bias: untraced; the
//! floor (empty counter programs attached as tcptrace attaches, by `cargo xtask floor`);
//! tcptrace with default events and with every event type, output to /dev/null;
//! libbpf-tools tcplife; a bpftrace script doing tcptrace's default work. CPU time is the workload's own
//! (getrusage) and the tracer's (from /proc), each per connection or transaction.
//! Writes BENCHMARKS.md and bench/results.json.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::workspace_root;

mod targets;

#[derive(clap::Args)]
pub(crate) struct Options {
    /// A short run (CI): fewer rounds, shorter windows; numbers are indicative only.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Only these configurations (by key: untraced, floor, floor-bt, floor-state, tcptrace,
    /// tcptrace-quiet, tcptrace-all, serve, tcplife, bpftrace), for experiments; writes to
    /// target/bench.
    #[arg(long, value_delimiter = ',')]
    pub(crate) configs: Vec<String>,
    /// Only this workload (churn, rr, bulk, refused); writes to target/bench.
    #[arg(long)]
    pub(crate) workload: Option<String>,
    /// Rounds (default 9, or 1 with --quick).
    #[arg(long)]
    pub(crate) rounds: Option<usize>,
}

impl Options {
    /// A run that is not the full benchmark: its report goes to target/bench.
    fn partial(&self) -> bool {
        self.quick || !self.configs.is_empty() || self.workload.is_some() || self.rounds.is_some()
    }

    /// The command that gives this run, for the report's first line.
    fn command_line(&self) -> String {
        let mut line = String::from("cargo xtask bench");
        if self.quick {
            line.push_str(" --quick");
        }
        if !self.configs.is_empty() {
            line.push_str(&format!(" --configs {}", self.configs.join(",")));
        }
        if let Some(w) = &self.workload {
            line.push_str(&format!(" --workload {w}"));
        }
        if let Some(n) = self.rounds {
            line.push_str(&format!(" --rounds {n}"));
        }
        line
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Churn,
    RequestResponse,
    Bulk,
    /// Connects to a closed port as fast as they go: each SYN reaches no socket, is
    /// dropped (NO_SOCKET) and answered with a reset, and the connect fails: a reset and
    /// drop storm, for the reset and drop hooks.
    Refused,
}

impl Workload {
    const fn name(self) -> &'static str {
        match self {
            Self::Churn => "churn",
            Self::RequestResponse => "request/response",
            Self::Bulk => "bulk",
            Self::Refused => "refused connects (reset and drop storm)",
        }
    }

    const fn key(self) -> &'static str {
        match self {
            Self::Churn => "churn",
            Self::RequestResponse => "rr",
            Self::Bulk => "bulk",
            Self::Refused => "refused",
        }
    }

    const fn unit(self) -> &'static str {
        match self {
            Self::Churn => "conn",
            Self::RequestResponse => "txn",
            Self::Bulk => "MiB",
            Self::Refused => "conn",
        }
    }
}

/// One tracer configuration: a command line, or none.
struct Config {
    key: &'static str,
    name: &'static str,
    command: Option<Vec<String>>,
}

/// A process name nothing in the benchmark has: `tcptrace-quiet`'s filter drops every event.
const QUIET_COMM: &str = "tt-no-such-comm";

fn configs(root: &Path) -> Vec<Config> {
    let tcptrace = root.join("target/release/tcptrace").display().to_string();
    let bt =
        |f: &str| vec!["bpftrace".to_string(), root.join("bench").join(f).display().to_string()];
    // The floor is this program itself (`cargo xtask floor`), which attaches empty programs
    // exactly as tcptrace attaches its own; bpftrace can only attach classic tracepoints.
    let xtask =
        std::env::current_exe().map_or_else(|_| "xtask".to_string(), |p| p.display().to_string());
    let mut list = vec![
        Config { key: "untraced", name: "untraced", command: None },
        Config {
            key: "floor",
            name: "floor (empty programs)",
            command: Some(vec![xtask, "floor".into()]),
        },
        Config {
            key: "floor-bt",
            name: "floor, bpftrace (classic tracepoints)",
            command: Some(bt("floor.bt")),
        },
        Config {
            key: "floor-state",
            name: "floor, state tracepoint only",
            command: Some(bt("floor-state.bt")),
        },
        Config {
            key: "tcptrace",
            name: "tcptrace (default events)",
            command: Some(vec![tcptrace.clone(), "-o".into(), "plain".into()]),
        },
        // The per-connection bookkeeping alone: every program runs and keeps its entries,
        // but the owner filter (matched by no process) drops every event in the kernel. What
        // a tracer that keeps one entry per connection and gives accepts their owner costs
        // before it reports anything: the lower bound of this design against the floor.
        Config {
            key: "tcptrace-quiet",
            name: "tcptrace, bookkeeping only (every event filtered out in the kernel)",
            command: Some(vec![
                tcptrace.clone(),
                "-o".into(),
                "plain".into(),
                "-c".into(),
                QUIET_COMM.into(),
            ]),
        },
        Config {
            key: "tcptrace-all",
            name: "tcptrace (all events)",
            command: Some(vec![
                tcptrace.clone(),
                "-o".into(),
                "plain".into(),
                "-e".into(),
                "all".into(),
            ]),
        },
        // The exporter: every event type's worth of metrics, state changes counted in the
        // kernel.
        Config {
            key: "serve",
            name: "tcptrace serve (exporter)",
            command: Some(vec![tcptrace, "serve".into(), "--listen".into(), "127.0.0.1:0".into()]),
        },
        Config {
            key: "tcplife",
            name: "tcplife (libbpf-tools)",
            command: Some(vec!["tcplife".into()]),
        },
        Config { key: "bpftrace", name: "bpftrace tcptrace.bt", command: Some(bt("tcptrace.bt")) },
    ];
    // Before/after in one run: TT_BENCH_BASELINE names another build of tcptrace.
    if let Ok(baseline) = std::env::var("TT_BENCH_BASELINE") {
        list.push(Config {
            key: "baseline",
            name: "tcptrace, baseline build (default events)",
            command: Some(vec![baseline.clone(), "-o".into(), "plain".into()]),
        });
        list.push(Config {
            key: "baseline-serve",
            name: "tcptrace serve, baseline build",
            command: Some(vec![baseline, "serve".into(), "--listen".into(), "127.0.0.1:0".into()]),
        });
    }
    list
}

/// Units of work done and the workload's CPU time over one window.
struct Sample {
    units: f64,
    seconds: f64,
    workload_cpu_us: f64,
    tracer_cpu_us: f64,
    /// Events the tracer handled, where it says (tcptrace's summary line).
    events: Option<u64>,
    /// Events the tracer says it lost (tcptrace's summary; the peers' "lost N events").
    lost: Option<u64>,
    /// Why, where the tracer says (tcptrace's summary): each reason with a loss, and how many.
    lost_why: Vec<(String, u64)>,
    /// What each of the tracer's programs ran during the window (bpf_stats).
    programs: Vec<crate::bpf_stats::ProgStats>,
    /// The tracer's peak resident set (VmHWM), read just before it is stopped.
    peak_rss_kib: Option<u64>,
}

fn rusage_self_us() -> f64 {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of a process, in µs, from /proc/<pid>/stat.
fn proc_cpu_us(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the comm.
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1e6 / hz
}

fn churn(window: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let listener = listener.try_clone()?;
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((mut c, _)) = listener.accept() {
                    if c.read_exact(&mut buf).is_ok() {
                        let _ = c.write_all(&buf);
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let done = done.clone();
        clients.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while start.elapsed() < window {
                if let Ok(mut s) = TcpStream::connect(addr) {
                    if s.write_all(&buf).is_ok() && s.read_exact(&mut buf).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for c in clients {
        let _ = c.join();
    }
    stop.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        let _ = TcpStream::connect(addr); // wake the accept loops
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(done.load(Ordering::Relaxed) as f64)
}

fn request_response(window: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let done = Arc::new(AtomicU64::new(0));
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    let start = Instant::now();
    for _ in 0..2 {
        let mut client = TcpStream::connect(addr)?;
        let (mut server, _) = listener.accept()?;
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        servers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while server.read_exact(&mut buf).is_ok() && server.write_all(&buf).is_ok() {}
        }));
        let done = done.clone();
        clients.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while start.elapsed() < window {
                if client.write_all(&buf).is_err() || client.read_exact(&mut buf).is_err() {
                    break;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for c in clients {
        let _ = c.join();
    }
    for s in servers {
        let _ = s.join();
    }
    Ok(done.load(Ordering::Relaxed) as f64)
}

fn bulk(window: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> u64 {
        let Ok((mut s, _)) = listener.accept() else { return 0 };
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut s = TcpStream::connect(addr)?;
    let buf = vec![7u8; 256 * 1024];
    let start = Instant::now();
    while start.elapsed() < window {
        s.write_all(&buf)?;
    }
    drop(s);
    let total = reader.join().unwrap_or(0);
    Ok(total as f64 / (1024.0 * 1024.0))
}

/// Refused connects, two threads of them (see `Workload::Refused`).
fn refused(window: Duration) -> Result<f64> {
    // A port just closed: nothing listens on it for the run.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                while start.elapsed() < window {
                    let refused = TcpStream::connect(addr)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
                    done.fetch_add(u64::from(refused), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(done.load(Ordering::Relaxed) as f64)
}

fn run_workload(w: Workload, window: Duration) -> Result<f64> {
    match w {
        Workload::Churn => churn(window),
        Workload::RequestResponse => request_response(window),
        Workload::Bulk => bulk(window),
        Workload::Refused => refused(window),
    }
}

/// Starts a tracer, its stderr into `stderr`, and waits until it has attached (a fixed
/// settle time: the peers give no uniform readiness signal; tcptrace's own start-up time
/// is measured separately).
fn start_tracer(command: &[String], stderr: &Path) -> Result<Child> {
    let child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr)?)
        .spawn()
        .with_context(|| format!("starting {}", command[0]))?;
    std::thread::sleep(Duration::from_millis(1_500));
    Ok(child)
}

fn stop_tracer(mut child: Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// What a tracer said on stderr, where it says them.
struct TracerCounts {
    events: Option<u64>,
    lost: Option<u64>,
    lost_why: Vec<(String, u64)>,
}

fn tracer_counts(stderr: &str) -> TracerCounts {
    let number_after = |line: &str, word: &str| -> Option<u64> {
        let rest = &line[line.find(word)? + word.len()..];
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    // tcptrace's summary, read with the type it is written with.
    if let Some(summary) = tracer_common::summary::Summary::find(stderr.lines()) {
        let lost_why = summary.lost_by_reason.named().into_iter().filter(|&(_, n)| n > 0);
        return TracerCounts {
            events: Some(summary.events),
            lost: Some(summary.lost),
            lost_why: lost_why.map(|(reason, n)| (reason.to_string(), n)).collect(),
        };
    }
    // libbpf-tools: "lost N events on CPU #C"; bpftrace: "Lost N events".
    let lost: u64 =
        stderr.lines().filter_map(|l| number_after(&l.to_ascii_lowercase(), "lost")).sum();
    TracerCounts { events: None, lost: Some(lost), lost_why: Vec::new() }
}

fn sample(config: &Config, w: Workload, window: Duration) -> Result<Sample> {
    let stderr_path = std::env::temp_dir().join("tcptrace-bench-tracer.stderr");
    let baseline = crate::bpf_stats::snapshot();
    let tracer = config.command.as_deref().map(|c| start_tracer(c, &stderr_path)).transpose()?;
    let pid = tracer.as_ref().map(Child::id);
    let tracer_before = pid.map_or(0.0, proc_cpu_us);
    let progs_before = crate::bpf_stats::snapshot();
    let cpu_before = rusage_self_us();
    let start = Instant::now();
    let units = run_workload(w, window)?;
    let seconds = start.elapsed().as_secs_f64();
    let workload_cpu_us = rusage_self_us() - cpu_before;
    let tracer_cpu_us = pid.map_or(0.0, proc_cpu_us) - tracer_before;
    let mut progs_after = crate::bpf_stats::snapshot();
    progs_after.retain(|id, _| !baseline.contains_key(id));
    let programs = crate::bpf_stats::delta(&progs_before, &progs_after);
    let mut counts = TracerCounts { events: None, lost: None, lost_why: Vec::new() };
    let peak_rss_kib = pid.and_then(peak_rss_kib);
    if let Some(t) = tracer {
        stop_tracer(t);
        counts = tracer_counts(&std::fs::read_to_string(&stderr_path).unwrap_or_default());
    }
    let TracerCounts { events, lost, lost_why } = counts;
    Ok(Sample {
        units,
        seconds,
        workload_cpu_us,
        tracer_cpu_us,
        events,
        lost,
        lost_why,
        programs,
        peak_rss_kib,
    })
}

/// Losses by reason over `samples`, in the order tcptrace names them.
fn loss_reasons_summed(samples: &[Sample]) -> Vec<(String, u64)> {
    let mut summed: Vec<(String, u64)> = Vec::new();
    for (reason, n) in samples.iter().flat_map(|s| &s.lost_why) {
        match summed.iter_mut().find(|(r, _)| r == reason) {
            Some((_, total)) => *total += n,
            None => summed.push((reason.clone(), *n)),
        }
    }
    summed
}

/// Per program name over all rounds: (name, ns per run, runs per unit of work).
fn program_costs(samples: &[Sample]) -> Vec<(String, f64, f64)> {
    let mut by_name: std::collections::BTreeMap<&str, (u64, u64)> =
        std::collections::BTreeMap::new();
    for p in samples.iter().flat_map(|s| &s.programs) {
        let e = by_name.entry(&p.name).or_default();
        e.0 += p.run_time_ns;
        e.1 += p.run_cnt;
    }
    let units: f64 = samples.iter().map(|s| s.units).sum::<f64>().max(1.0);
    let mut list: Vec<(String, f64, f64)> = by_name
        .into_iter()
        .map(|(name, (ns, runs))| {
            (name.to_string(), ns as f64 / runs.max(1) as f64, runs as f64 / units)
        })
        .collect();
    list.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
    list
}

/// Microseconds per unit of work spent in programs, from `program_costs`.
fn program_us_per_unit(costs: &[(String, f64, f64)]) -> f64 {
    costs.iter().map(|(_, ns, per_unit)| ns * per_unit).sum::<f64>() / 1000.0
}

/// (min, median, max).
fn spread(v: Vec<f64>) -> (f64, f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, median(v), hi)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match (v.get(n / 2), n % 2) {
        (Some(&hi), 0) => (v[n / 2 - 1] + hi) / 2.0,
        (Some(&mid), _) => mid,
        (None, _) => 0.0,
    }
}

/// TIME_WAIT sockets of IPv4 TCP (`tw` in /proc/net/sockstat), and the kernel's cap on
/// them (`net.ipv4.tcp_max_tw_buckets`).
fn time_wait_sockets() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp = stat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = tcp.split_whitespace();
    let tw = words.by_ref().skip_while(|w| *w != "tw").nth(1)?.parse().ok()?;
    let cap = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some((tw, cap))
}

/// Runs untraced churn until the TIME_WAIT table stops filling (nine tenths of the cap,
/// or no growth over a window), at most `limit`: the state a server under churn is in,
/// and the same for every churn sample after it.
fn fill_time_wait_table(limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last = 0;
    while let Some((tw, cap)) = time_wait_sockets() {
        if tw * 10 >= cap * 9 || (tw > 0 && tw <= last) || start.elapsed() >= limit {
            eprintln!("xtask: churn starts with {tw} TIME_WAIT sockets (the cap is {cap}), after {:.0} s of warm-up", start.elapsed().as_secs_f64());
            return Ok(());
        }
        last = tw;
        churn(Duration::from_secs(2))?;
    }
    Ok(())
}

/// Milliseconds from starting tcptrace to "tracing", and its peak RSS in KiB.
fn tcptrace_startup(root: &Path) -> Result<(f64, u64)> {
    let start = Instant::now();
    let mut child = Command::new(root.join("target/release/tcptrace"))
        .args(["-v", "-o", "plain"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !seen.contains("tracing;") {
        let n = stderr.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let rss = peak_rss_kib(child.id()).unwrap_or(0);
    stop_tracer(child);
    Ok((ms, rss))
}

/// A process's peak resident set so far (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub(crate) fn run(opts: &Options) -> Result<()> {
    let root = workspace_root();
    crate::run_cmd(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "tracer",
    ]))?;
    // More, shorter rounds rather than fewer long ones: the machine's speed drifts between
    // rounds, and a median over more paired rounds holds still better.
    // Nine rounds: with seven, a median's 90% interval spanned several µs per connection.
    let (rounds, window) =
        if opts.quick { (1, Duration::from_millis(1_500)) } else { (9, Duration::from_secs(3)) };
    let rounds = opts.rounds.unwrap_or(rounds);
    let mut configs = configs(&root);
    if opts.configs.is_empty() {
        // floor-state is for experiments (it showed that the syscall tracepoints are not
        // what the floor costs); floor-bt, the floor as bpftrace attaches it (and as the
        // issue first measured it), is in the full run only, to keep --quick within CI's
        // budget for it.
        configs.retain(|c| c.key != "floor-state" && (c.key != "floor-bt" || !opts.quick));
    } else {
        // Untraced stays: every figure is relative to it.
        configs.retain(|c| c.key == "untraced" || opts.configs.iter().any(|k| k == c.key));
    }
    let mut workloads =
        vec![Workload::Churn, Workload::RequestResponse, Workload::Bulk, Workload::Refused];
    if let Some(w) = &opts.workload {
        workloads.retain(|x| x.key() == w);
        anyhow::ensure!(!workloads.is_empty(), "no workload {w:?} (churn, rr, bulk, refused)");
    }
    // samples[workload][config] = one Sample per round
    let mut samples: Vec<Vec<Vec<Sample>>> =
        workloads.iter().map(|_| configs.iter().map(|_| Vec::new()).collect()).collect();
    // One workload at a time, its configurations interleaved round by round: churn leaves
    // TIME_WAIT sockets behind for a minute, and a connect costs more the more there are
    // (2 µs per connection more at 28,000 than at none, here). Rounds of all three
    // workloads gave the churn block's first sample, untraced, a table emptied during the
    // other two, and every configuration after it a fuller one: a bias of 1-2 µs per
    // connection against all of them. Churn now runs in one block, from a full table.
    for (wi, w) in workloads.iter().enumerate() {
        if *w == Workload::Churn {
            fill_time_wait_table(if opts.quick {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(45)
            })?;
        }
        for round in 0..rounds {
            // Each round starts one configuration further along, so that none always runs
            // right after the same other one: what a tracer leaves behind as it exits (or
            // the machine's rhythm) is spread over all of them, as noise the intervals show,
            // instead of falling on one as bias.
            let n = configs.len();
            for ci in (0..n).map(|i| (i + round) % n) {
                let c = &configs[ci];
                let s = sample(c, *w, window)?;
                eprintln!(
                    "xtask: bench round {} {} / {}: {:.0} {}/s",
                    round + 1,
                    w.name(),
                    c.name,
                    s.units / s.seconds,
                    w.unit()
                );
                samples[wi][ci].push(s);
            }
        }
    }
    // Per-program cost in a pass of its own: kernel.bpf_stats_enabled adds two clock reads
    // to every program run, a cost the rounds above must not carry (a tracer with more
    // program runs per connection would pay more of it).
    let mut profiles: Vec<Vec<Vec<Sample>>> =
        workloads.iter().map(|_| configs.iter().map(|_| Vec::new()).collect()).collect();
    {
        let _stats = crate::bpf_stats::enable();
        // --quick profiles churn only, to stay well under its two minutes.
        for (wi, w) in
            workloads.iter().enumerate().filter(|(_, w)| !opts.quick || **w == Workload::Churn)
        {
            for (ci, c) in configs.iter().enumerate().filter(|(_, c)| c.command.is_some()) {
                profiles[wi][ci].push(sample(c, *w, window.min(Duration::from_secs(2)))?);
            }
        }
    }
    let (startup_ms, rss_kib) = tcptrace_startup(&root)?;
    let runs = Runs { samples: &samples, profiles: &profiles, rounds, window };
    report(&root, &workloads, &configs, &runs, startup_ms, rss_kib, opts)
}

/// What one run measured: `samples[workload][config]`, one per round, with bpf_stats off;
/// `profiles`, the same layout, one short sample each with bpf_stats on.
struct Runs<'a> {
    samples: &'a [Vec<Vec<Sample>>],
    profiles: &'a [Vec<Vec<Sample>>],
    rounds: usize,
    window: Duration,
}

/// Per-round figures of one workload, paired with the untraced sample of the same round.
struct Rounds<'a> {
    samples: &'a [Vec<Sample>],
}

impl Rounds<'_> {
    fn rate(s: &Sample) -> f64 {
        s.units / s.seconds
    }

    fn cpu_per_unit(s: &Sample) -> f64 {
        s.workload_cpu_us / s.units.max(1.0)
    }

    fn tracer_per_unit(s: &Sample) -> f64 {
        s.tracer_cpu_us / s.units.max(1.0)
    }

    /// Round `r` of config `ci`: rate relative to untraced, minus one.
    fn vs_untraced(&self, ci: usize, r: usize) -> f64 {
        Self::rate(&self.samples[ci][r]) / Self::rate(&self.samples[0][r]) - 1.0
    }

    /// Round `r` of config `ci`: workload CPU added per unit.
    fn added(&self, ci: usize, r: usize) -> f64 {
        Self::cpu_per_unit(&self.samples[ci][r]) - Self::cpu_per_unit(&self.samples[0][r])
    }

    /// Round `r` of config `ci`: workload CPU added plus the tracer's, per unit.
    fn total_added(&self, ci: usize, r: usize) -> f64 {
        self.added(ci, r) + Self::tracer_per_unit(&self.samples[ci][r])
    }

    /// The median over the rounds `pick` of `f(round)`.
    fn median_of(pick: &[usize], f: impl Fn(usize) -> f64) -> f64 {
        median(pick.iter().map(|&r| f(r)).collect())
    }

    /// Median total added of `ours` over that of `theirs`, over the rounds `pick`; NaN
    /// when theirs is not above zero (a ratio to nothing).
    fn cpu_ratio(&self, ours: usize, theirs: usize, pick: &[usize]) -> f64 {
        let t = Self::median_of(pick, |r| self.total_added(theirs, r));
        if t > 0.0 {
            Self::median_of(pick, |r| self.total_added(ours, r)) / t
        } else {
            f64::NAN
        }
    }
}

fn report(
    root: &Path,
    workloads: &[Workload],
    configs: &[Config],
    runs: &Runs<'_>,
    startup_ms: f64,
    rss_kib: u64,
    opts: &Options,
) -> Result<()> {
    let Runs { samples, profiles, rounds, window } = *runs;
    let partial = opts.partial();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut md = format!(
        "# Benchmarks\n\nMeasured by `{}` on Linux {kernel}, {cpus} CPUs; {rounds} round(s) of {:.1} s per workload and configuration, interleaved. \
         On this kernel only the tracepoint family attaches (no kprobes, no fentry), so every tcptrace hook runs as a tracepoint.\n\n\
         CPU per unit is the workload's own user+system time (getrusage) and the tracer process's (from /proc), per connection, transaction or MiB. \
         Each round runs every configuration in turn, each round starting one further along (so none always follows the same one), and 'vs untraced' and 'added' are paired: the median, over rounds, of each \
         sample's difference from the untraced sample of its own round (min-max in brackets). The machine's speed drifts by 10% and more between \
         rounds on these shared machines; pairing takes that drift out, and the CPU columns are the steadier figures. \
         Churn starts from a full TIME_WAIT table (a warm-up of untraced churn fills it): a connect costs more the more TIME_WAIT \
         sockets there are, so every configuration must meet the same table.\n\n\
         tcptrace start-up to hooks attached: {startup_ms:.0} ms; peak RSS at start-up: {:.1} MiB (under load: the table's column).\n",
        opts.command_line(),
        window.as_secs_f64(),
        rss_kib as f64 / 1024.0
    );
    let index = |key: &str| targets::index(configs, key);
    let mut judged: Vec<targets::Judged> = Vec::new();
    let mut body = String::new();
    let mut json = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        body.push_str(&format!(
            "\n## {}\n\n| configuration | {u}/s (median, min-max) | vs untraced (paired) | workload CPU µs/{u} (added, paired) | tracer CPU µs/{u} | total added µs/{u} | tracer CPU µs/event | events lost | tracer peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n",
            w.name(),
            u = w.unit()
        ));
        let paired = Rounds { samples: &samples[wi] };
        let rate = Rounds::rate;
        let cpu_per_unit = Rounds::cpu_per_unit;
        for (ci, c) in configs.iter().enumerate() {
            let these = &samples[wi][ci];
            let (lo, med, hi) = spread(these.iter().map(rate).collect());
            let (ratio_lo, ratio, ratio_hi) =
                spread((0..these.len()).map(|r| paired.vs_untraced(ci, r)).collect());
            let (added_lo, added, added_hi) =
                spread((0..these.len()).map(|r| paired.added(ci, r)).collect());
            let cpu = median(these.iter().map(cpu_per_unit).collect());
            let tracer = median(these.iter().map(Rounds::tracer_per_unit).collect());
            // The median of each round's sum, as the targets use it (not the sum of medians).
            let total = median((0..these.len()).map(|r| paired.total_added(ci, r)).collect());
            let per_event: Vec<f64> = these
                .iter()
                .filter_map(|s| s.events.filter(|&n| n > 0).map(|n| s.tracer_cpu_us / n as f64))
                .collect();
            let per_event = (!per_event.is_empty()).then(|| median(per_event));
            let lost: Option<u64> = these.iter().map(|s| s.lost).sum();
            let lost_why = loss_reasons_summed(these);
            let peak_rss = these.iter().filter_map(|s| s.peak_rss_kib).max();
            let shown = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            let costs = program_costs(&profiles[wi][ci]);
            body.push_str(&format!(
                "| {} | {:.0} ({:.0}-{:.0}) | {:+.1}% ({:+.1} to {:+.1}) | {:.2} ({:+.2}; {:+.2} to {:+.2}) | {:.2} | {:.2} | {} | {} | {} |\n",
                c.name,
                med,
                lo,
                hi,
                ratio * 100.0,
                ratio_lo * 100.0,
                ratio_hi * 100.0,
                cpu,
                added,
                added_lo,
                added_hi,
                tracer,
                total,
                shown(per_event.map(|v| format!("{v:.2}"))),
                shown(lost.map(|v| if lost_why.is_empty() { v.to_string() } else { format!("{v} ({})", lost_why.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ")) })),
                shown(peak_rss.map(|k| format!("{:.1}", k as f64 / 1024.0))),
            ));
            json.push(serde_json::json!({
                "workload": w.name(), "config": c.name, "unit": w.unit(),
                "rate_median": med, "rate_min": lo, "rate_max": hi,
                "vs_untraced": ratio, "vs_untraced_min": ratio_lo, "vs_untraced_max": ratio_hi,
                "workload_cpu_us_per_unit": cpu, "workload_cpu_us_added": added, "tracer_cpu_us_per_unit": tracer,
                "tracer_cpu_us_per_event": per_event, "events_lost": lost,
                "events_lost_by_reason": lost_why.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(), "tracer_peak_rss_kib": peak_rss,
                "programs": costs.iter().map(|(name, ns, per_unit)| {
                    serde_json::json!({ "name": name, "ns_per_run": ns, "runs_per_unit": per_unit })
                }).collect::<Vec<_>>(),
                "program_us_per_unit": program_us_per_unit(&costs),
                // Every round's own figures, for whoever wants to look at the noise.
                "rounds": these.iter().map(|s| serde_json::json!({
                    "rate": rate(s), "workload_cpu_us_per_unit": cpu_per_unit(s), "tracer_cpu_us_per_unit": Rounds::tracer_per_unit(s),
                })).collect::<Vec<_>>(),
            }));
        }
        // The targets are ratios of total CPU added (workload + tracer). A ratio to
        // a cost this run cannot tell from noise (its interval reaches zero) says nothing.
        if let Some(ours) = index("tcptrace") {
            for (key, what) in
                [("tcplife", "tcplife"), ("floor", "the floor"), ("floor-bt", "bpftrace's floor")]
            {
                let Some(theirs) = index(key) else { continue };
                match targets::cpu_ratio(&paired, rounds, ours, theirs) {
                    Some((value, band)) => body.push_str(&format!(
                        "\ntcptrace (default events) adds {value:.2}x the CPU of {what} ({}).",
                        targets::show_interval(band, rounds, |v| format!("{v:.2}x"))
                    )),
                    None => body.push_str(&format!("\n{what}: no CPU added that this run can tell from noise, so no ratio to it.")),
                }
            }
            if let (Some(quiet), Some(floor)) = (index("tcptrace-quiet"), index("floor")) {
                if let Some((value, band)) = targets::cpu_ratio(&paired, rounds, quiet, floor) {
                    body.push_str(&format!(
                        "\ntcptrace's bookkeeping alone (every event filtered out in the kernel) adds {value:.2}x the CPU of the floor ({}).",
                        targets::show_interval(band, rounds, |v| format!("{v:.2}x"))
                    ));
                }
            }
            body.push('\n');
        }
        body.push_str(&format!(
            "\nPer-program cost ({}, in a separate pass with kernel.bpf_stats_enabled: run time per invocation, invocations per {}):\n\n",
            w.name(),
            w.unit()
        ));
        let mut in_programs: Vec<(&str, f64, f64)> = Vec::new();
        for (ci, c) in configs.iter().enumerate().skip(1) {
            let costs = program_costs(&profiles[wi][ci]);
            let list: Vec<String> = costs
                .iter()
                .map(|(name, ns, per_unit)| format!("`{name}` {ns:.0} ns × {per_unit:.3}"))
                .collect();
            if list.is_empty() {
                body.push_str(&format!("- {}: no runs\n", c.name));
            } else {
                let us = program_us_per_unit(&costs);
                let runs_per_unit: f64 = costs.iter().map(|(_, _, per_unit)| per_unit).sum();
                in_programs.push((c.key, us, runs_per_unit));
                body.push_str(&format!(
                    "- {}: {}; in all {us:.2} µs per {}\n",
                    c.name,
                    list.join(", "),
                    w.unit()
                ));
            }
        }
        // The same ratio as above from the programs' own run time: a steady figure where the
        // CPU columns swing by microseconds between rounds (it leaves out what attaching
        // costs outside the programs, and the tracer process). Only where the programs run
        // for most units of work: a few runs in a whole window make no ratio.
        let in_programs_of =
            |key: &str| in_programs.iter().find(|(k, _, _)| *k == key).map(|&(_, us, n)| (us, n));
        let mut programs_vs_floor = None;
        if let (Some((ours, _)), Some((floor, floor_runs))) =
            (in_programs_of("tcptrace"), in_programs_of("floor"))
        {
            if floor > 0.0 && floor_runs >= 1.0 {
                body.push_str(&format!(
                    "\nTime in programs, tcptrace (default events) against the floor: {:.2}x.\n",
                    ours / floor
                ));
                let quiet = in_programs_of("tcptrace-quiet").map(|(us, _)| us);
                if let Some(quiet) = quiet {
                    body.push_str(&format!("Time in programs, tcptrace's bookkeeping alone against the floor: {:.2}x.\n", quiet / floor));
                }
                programs_vs_floor = Some(targets::InPrograms { ours, floor, quiet });
            } else {
                body.push_str(&format!("\nThe programs run {floor_runs:.3} times per {}: too rarely for a ratio of their time.\n", w.unit()));
            }
        }
        targets::judge_workload(&mut judged, *w, configs, &paired, rounds, programs_vs_floor);
    }
    targets::judge_tracer(&mut judged, workloads, configs, samples, startup_ms, rss_kib);
    if !judged.is_empty() {
        md.push_str(&format!(
            "\n## Targets\n\nEach target of the benchmark's issue, judged from this run. Where a figure's 90% interval (bootstrap over whole rounds) spans \
             the limit, the verdict says 'within noise': another run may fall on the other side.\n\n{}",
            targets::table(&judged)
        ));
    }
    md.push_str(&body);
    let targets_json: Vec<serde_json::Value> =
        judged.iter().map(|j| serde_json::json!({ "target": j.target, "measured": j.measured, "verdict": j.verdict })).collect();
    let results = serde_json::json!({
        "command": opts.command_line(), "kernel": kernel, "cpus": cpus, "rounds": rounds, "window_s": window.as_secs_f64(), "quick": opts.quick,
        "tcptrace_startup_ms": startup_ms, "tcptrace_peak_rss_kib": rss_kib, "targets": targets_json, "results": json,
    });
    let dir: PathBuf = if partial { root.join("target/bench") } else { root.join("bench") };
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    let md_path = if partial { dir.join("BENCHMARKS.md") } else { root.join("BENCHMARKS.md") };
    std::fs::write(&md_path, &md)?;
    println!("{md}");
    eprintln!("xtask: wrote {} and {}", md_path.display(), dir.join("results.json").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tracer_counts;

    #[test]
    fn tcptrace_summary_gives_events_losses_and_their_reasons() {
        let stderr = "tcptrace: ring buffer 1024 KiB (default)\n\
            tcptrace: 731514 events (accept 52251, close 104502); lost 5 (ring buffer full 3, kernel reads failed 0, hook runs skipped by the kernel 2); filtered in the kernel 0\n";
        let counts = tracer_counts(stderr);
        assert_eq!((counts.events, counts.lost), (Some(731_514), Some(5)));
        assert_eq!(
            counts.lost_why,
            [("ring_buffer_full".to_string(), 3), ("hook_run_skipped".to_string(), 2)]
        );
        let clean = tracer_counts("tcptrace: 10 events (close 10); lost 0 (ring buffer full 0); filtered in the kernel 0\n");
        assert_eq!((clean.lost, clean.lost_why.len()), (Some(0), 0));
        let peer = tracer_counts("lost 4 events on CPU #1\nLost 3 events\n");
        assert_eq!((peer.events, peer.lost), (None, Some(7)));
        let json = tracer_counts("{\"type\":\"summary\",\"events\":2,\"by_type\":{\"accept\":0,\"close\":2,\"connect\":0,\"drop\":0,\"reset\":0,\"retransmit\":0,\"state\":0},\"lost\":1,\"lost_by_reason\":{\"ring_buffer_full\":1,\"kernel_read_failed\":0,\"hook_run_skipped\":0,\"state_out_of_sequence\":0,\"map_update_refused\":0,\"connection_table_full\":0},\"filtered\":0,\"undecodable\":0}\n");
        assert_eq!((json.events, json.lost), (Some(2), Some(1)));
    }
}
