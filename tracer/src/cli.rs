//! The command line, as parsed (clap derive only). Settings resolved from it (output mode
//! from the terminal, filters) live in `config.rs`.

use std::path::PathBuf;

use clap::Parser;

use tracer_common::filter::PortRange;

use crate::{loader::HookFamily, printer::OutputMode};

const EXAMPLES: &str = "\
EXAMPLES:
    tcptrace                      # connects, accepts, closes and retransmits
    tcptrace -p 181               # only connections of PID 181
    tcptrace --port 443           # only connections with port 443 on either side
    tcptrace -e connect           # connects only (the other hooks are not attached)
    tcptrace -e close,state       # every state change, and a summary at close
    tcptrace -o json | jq .       # one JSON object per event
    tcptrace -o csv -d 1m > c.csv # one minute of events as CSV, with a header row
    tcptrace --netns /proc/4242/ns/net  # only the network namespace of PID 4242
    tcptrace -n 10 -e connect     # the next ten connects, then exit
    tcptrace -e connect --no-header | grep -v ' result=ok '   # failed connects, from plain output
    tcptrace --list-probes        # which hook families work on this kernel
    tcptrace --probe tracepoint -v  # force the tracepoint family and show the choice
    tcptrace completions bash > /etc/bash_completion.d/tcptrace
    tcptrace man | man -l -       # this help as a man page
    tcptrace top                  # the busiest connections, live (q quits)
    tcptrace --port 443 top -b -n 3 # three batch snapshots of port 443's connections
    tcptrace serve                # Prometheus metrics on http://127.0.0.1:9433/metrics
    tcptrace serve --labels rport --max-series 5000";

/// Trace TCP connections as they happen: which process, which addresses, how long the
/// handshake took, and how it ended.
#[derive(Parser, Debug)]
// Negative numbers are values, so that `--port -80` is refused as the port it is not, not
// as an unknown flag `-8`.
#[command(name = "tcptrace", version, after_help = EXAMPLES, allow_negative_numbers = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// Only connections owned by this process (the one that connected or accepted);
    /// repeatable or comma-separated, up to 8. Every filter is applied in the kernel, and
    /// filters combine with AND.
    #[arg(global = true, short, long, value_name = "PID", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) pid: Vec<u32>,

    /// Only connections with a port in this range on either side (80, or 8000-8100);
    /// repeatable or comma-separated (80,443), up to 8.
    #[arg(global = true, long, value_name = "PORTS", value_delimiter = ',', value_parser = parse_port_range)]
    pub(crate) port: Vec<PortRange>,

    /// Only connections whose local port is in this range; repeatable or comma-separated,
    /// up to 8.
    #[arg(global = true, long, value_name = "PORTS", value_delimiter = ',', value_parser = parse_port_range)]
    pub(crate) lport: Vec<PortRange>,

    /// Only connections whose remote port is in this range; repeatable or
    /// comma-separated, up to 8.
    #[arg(global = true, long, value_name = "PORTS", value_delimiter = ',', value_parser = parse_port_range)]
    pub(crate) rport: Vec<PortRange>,

    /// Only connections owned by a process with this name: the comm of the thread that
    /// connected or accepted, as `ps -L -o comm` shows it (a thread that renamed itself
    /// goes by its new name). Compared on its first 15 bytes, all the kernel keeps.
    #[arg(global = true, short, long, value_name = "NAME", value_parser = parse_comm)]
    pub(crate) comm: Option<CommName>,

    /// Only connections owned by a process running as this user ID.
    #[arg(global = true, short, long, value_name = "UID")]
    pub(crate) uid: Option<u32>,

    /// Only IPv4 sockets. An IPv4 peer of a dual-stack listener (bound to `[::]`, as Go
    /// and Java servers are by default) is on an IPv6 socket, shown as `::ffff:a.b.c.d`
    /// (as `ss` shows it), so -6 keeps it and -4 does not.
    #[arg(global = true, short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub(crate) ipv4: bool,

    /// Only IPv6 sockets (IPv4-mapped addresses included: see --ipv4).
    #[arg(global = true, short = '6', long = "ipv6")]
    pub(crate) ipv6: bool,

    /// Only connections owned by processes in this cgroup v2 (a container, a systemd
    /// unit), e.g. /sys/fs/cgroup/system.slice/nginx.service.
    #[arg(global = true, long, value_name = "PATH")]
    pub(crate) cgroup: Option<PathBuf>,

    /// Only sockets in this network namespace (a container's): its inode number (as
    /// `lsns -t net` shows it), a namespace file (/proc/PID/ns/net), or a name from
    /// `ip netns` (/run/netns/NAME).
    #[arg(global = true, long, value_name = "NETNS")]
    pub(crate) netns: Option<String>,

    /// Only connects whose handshake took at least this long (like 10ms, 500us, 1s: a
    /// unit is required, as tcpconnlat's bare 10 means milliseconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_latency)]
    pub(crate) min_latency: Option<std::time::Duration>,

    /// Only failed connects.
    #[arg(long)]
    pub(crate) failed: bool,

    /// Events to report; hooks that only serve other events are not attached.
    /// [default: connect,accept,close,retransmit,reset; connect alone with --failed or
    /// --min-latency]
    #[arg(short, long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub(crate) events: Option<Vec<EventArg>>,

    /// Where close events take byte counts from: the socket's own counters (free), or
    /// per-call hooks on tcp_sendmsg/tcp_recvmsg (costs a probe per call) [default: socket].
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub(crate) bytes: Option<BytesArg>,

    /// Connections tracked at once in the kernel (LRU beyond that).
    #[arg(global = true, long, value_name = "N", default_value = "65536", value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub(crate) max_connections: u32,

    /// Ring buffer size in bytes (K, M and G suffixes allowed): a power of two, 4K to 1G
    /// [default: 1M; 4M with state events].
    #[arg(global = true, long, value_name = "SIZE", value_parser = parse_ring_size)]
    pub(crate) ring_buffer: Option<u32>,

    /// Output format [default: table on a terminal, plain otherwise].
    #[arg(short, long, value_enum, value_name = "FORMAT")]
    pub(crate) output: Option<OutputMode>,

    /// Times in table and plain output as seconds since tcptrace started.
    #[arg(short = 'T', long = "relative", conflicts_with = "wall_clock")]
    pub(crate) relative: bool,

    /// Times in table and plain output as the time of day (table) or Unix time (plain):
    /// the default, accepted for bcc habits.
    #[arg(short = 't', long = "timestamp", id = "wall_clock")]
    pub(crate) wall_clock: bool,

    /// Leave out the header line (table, plain and csv output).
    #[arg(long)]
    pub(crate) no_header: bool,

    /// Stop after this long (like 30s, 500ms, 5m, 1h; a bare number is seconds).
    #[arg(global = true, short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<std::time::Duration>,

    /// Stop after printing this many events.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Hook family for every hook; `auto` takes, per hook, the first of fentry, kprobe,
    /// tracepoint that works on this kernel.
    #[arg(global = true, long, value_name = "FAMILY", default_value = "auto")]
    pub(crate) probe: ProbeArg,

    /// Try each hook family on this kernel, print what works and why not, and exit.
    #[arg(long)]
    pub(crate) list_probes: bool,

    /// Say on stderr which hook family each hook uses, and when tracing starts.
    #[arg(global = true, short, long)]
    pub(crate) verbose: bool,

    /// Read kernel BTF from this file instead of /sys/kernel/btf/vmlinux.
    #[arg(global = true, long, value_name = "FILE")]
    pub(crate) btf: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from this command line's own definition.
    Man,
    /// A live table of the busiest connections (batch snapshots when not on a terminal).
    /// Keys: s sorts by the next column, / filters (Enter keeps, Esc clears), q or Ctrl-C quits.
    /// The main command's filters apply, given before or after `top`: `tcptrace --port 443 top`.
    Top(TopArgs),
    /// Serve Prometheus/OpenMetrics metrics over HTTP (`/metrics`, `/healthz`) until
    /// SIGINT, SIGTERM or SIGHUP. The main command's filters apply, given before or after `serve`: `tcptrace -c nginx serve`.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address and port to serve on. Anything but a loopback address makes the metrics
    /// reachable from other hosts: that is your explicit choice.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9433", value_parser = parse_listen)]
    pub(crate) listen: std::net::SocketAddr,

    /// Labels to add to the per-connection metrics, besides `comm` and `service_port`
    /// (comma-separated). Each multiplies the number of series: see --max-series.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LABEL,...")]
    pub(crate) labels: Vec<LabelArg>,

    /// The most label sets (distinct values of the per-connection labels) kept; events
    /// that would start another are counted in `tcptrace_series_dropped_total`, not kept.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_series: u32,

    /// Also count the TCP segments the kernel drops, by its reason
    /// (`tcptrace_drops_total`): attaches to `skb:kfree_skb`, which every dropped packet of
    /// any protocol passes.
    #[arg(long)]
    pub(crate) drops: bool,
}

/// An optional per-connection metric label (`--labels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LabelArg {
    /// The owning process id.
    Pid,
    /// The local port.
    Lport,
    /// The remote address.
    Raddr,
    /// The remote port (not its class).
    Rport,
    /// The socket's network namespace (its inode number): one series set per container.
    Netns,
}

#[derive(clap::Args, Debug)]
pub(crate) struct TopArgs {
    /// Refresh interval (like 1s, 500ms).
    #[arg(short, long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) interval: std::time::Duration,

    /// Sort by this column (the `s` key moves to the next one).
    #[arg(short, long, value_enum, default_value = "rate")]
    pub(crate) sort: SortKey,

    /// Print batch snapshots even on a terminal (as `top -b`).
    #[arg(short, long)]
    pub(crate) batch: bool,

    /// Stop after this many snapshots.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) iterations: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SortKey {
    /// Bytes per second, both ways.
    Rate,
    /// Bytes per second sent.
    Tx,
    /// Bytes per second read by the application.
    Rx,
    /// Bytes both ways since tcptrace first saw the connection.
    Total,
    /// Retransmitted segments since the connection began.
    Retrans,
    /// Time since the handshake ended (for a connection older than tcptrace, since
    /// tcptrace first showed it); a closed connection's whole life.
    Age,
}

impl SortKey {
    const ALL: [Self; 6] = [Self::Rate, Self::Tx, Self::Rx, Self::Total, Self::Retrans, Self::Age];

    pub(crate) fn next(self) -> Self {
        let at = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(at + 1) % Self::ALL.len()]
    }

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Tx => "tx rate",
            Self::Rx => "rx rate",
            Self::Total => "total bytes",
            Self::Retrans => "retransmits",
            Self::Age => "age",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EventArg {
    Connect,
    Accept,
    Close,
    State,
    Retransmit,
    /// Every RST sent or received.
    Reset,
    /// TCP segments the kernel dropped, counted per connection and reason.
    Drop,
    /// Every event type.
    All,
}

impl EventArg {
    /// The event kinds this name stands for.
    pub(crate) const fn kinds(self) -> &'static [tracer_common::event::EventKind] {
        use tracer_common::event::EventKind;
        match self {
            Self::Connect => &[EventKind::Connect],
            Self::Accept => &[EventKind::Accept],
            Self::Close => &[EventKind::Close],
            Self::State => &[EventKind::State],
            Self::Retransmit => &[EventKind::Retransmit],
            Self::Reset => &[EventKind::Reset],
            Self::Drop => &[EventKind::Drop],
            Self::All => &[
                EventKind::Connect,
                EventKind::Accept,
                EventKind::Close,
                EventKind::State,
                EventKind::Retransmit,
                EventKind::Reset,
                EventKind::Drop,
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BytesArg {
    Socket,
    Calls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProbeArg {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
    /// The tracepoint family without BTF-typed programs: raw tracepoints (classic where
    /// refused), as on kernels whose BTF tracepoints misbehave.
    RawTracepoint,
}

impl ProbeArg {
    pub(crate) const fn forced(self) -> Option<HookFamily> {
        match self {
            Self::Auto => None,
            Self::Fentry => Some(HookFamily::Fentry),
            Self::Kprobe => Some(HookFamily::Kprobe),
            Self::Tracepoint | Self::RawTracepoint => Some(HookFamily::Tracepoint),
        }
    }

    pub(crate) const fn options(self) -> crate::loader::family::Options {
        crate::loader::family::Options { btf_tracepoints: !matches!(self, Self::RawTracepoint) }
    }
}

/// The ring buffer's size when `--ring-buffer` is not given, for the events the programs
/// send (`Config::events`): 1 MiB, or 4 MiB with state events. Those multiply a short
/// connection's records by about 3.5, and at the 640,000 events a second loopback churn
/// then makes, 1 MiB holds about 15 ms of them: a reader the scheduler held up that long
/// on a busy 2-CPU machine lost 465 events in one of nine benchmark rounds. The pages count
/// in the reader's RSS only once events have filled them, after start-up's peak.
pub(crate) fn default_ring_bytes(events: u32) -> u32 {
    use tracer_common::event::{kind_bit, EventKind};
    if events & kind_bit(EventKind::State) != 0 {
        4 << 20
    } else {
        1 << 20
    }
}

/// `--ring-buffer`: bytes with an optional K/M/G suffix; the kernel needs a power-of-two
/// multiple of the page size.
fn parse_ring_size(text: &str) -> Result<u32, String> {
    let (digits, unit) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 1024),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 1024 * 1024),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a size (like 256K or 4M)"));
    }
    // Digits that overflow are a size too, only far too large.
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|b| *b <= 1 << 30)
        .ok_or("larger than 1G")?;
    if bytes < 4096 || !bytes.is_power_of_two() {
        return Err("must be a power of two of at least 4K (4096 bytes)".into());
    }
    u32::try_from(bytes).map_err(|e| e.to_string())
}

impl Cli {
    /// The options given that only the trace itself uses: `top` and `serve` refuse them
    /// rather than ignore them.
    pub(crate) fn trace_only_options(&self) -> Vec<&'static str> {
        [
            (self.events.is_some(), "--events"),
            (self.bytes.is_some(), "--bytes"),
            (self.output.is_some(), "--output"),
            (self.relative, "--relative"),
            (self.wall_clock, "--timestamp"),
            (self.no_header, "--no-header"),
            (self.count.is_some(), "--count"),
            (self.list_probes, "--list-probes"),
            // They pick connect events; `top` and `serve` count whole connections, so half
            // of one would pass (its close still counted, its connect not).
            (self.failed, "--failed"),
            (self.min_latency.is_some(), "--min-latency"),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect()
    }

    /// The events asked for, with the defaults filled in.
    pub(crate) fn events(&self) -> Vec<EventArg> {
        match &self.events {
            Some(list) => list.clone(),
            None if self.failed || self.min_latency.is_some() => vec![EventArg::Connect],
            // Reset is default: its programs run only when a reset is sent or received, and
            // a storm of them is bounded in the kernel (`cargo xtask bench`: churn costs the
            // same with it; docs/cost.md).
            None => vec![
                EventArg::Connect,
                EventArg::Accept,
                EventArg::Close,
                EventArg::Retransmit,
                EventArg::Reset,
            ],
        }
    }
}

/// `--listen`: an IP address and a port; no name lookups (a name could mean several
/// addresses, and the exporter binds one).
fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("{:?} is not an IP address and port (like 127.0.0.1:9433 or [::1]:9433)", text)
    })
}

/// A port (`80`) or an inclusive range (`8000-8100`); port 0 is not a port.
fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let port = |s: &str| match s.trim().parse::<u16>() {
        Ok(0) | Err(_) => {
            Err(format!("{text:?} is not a port or a range of ports (like 443 or 8000-8100)"))
        }
        Ok(p) => Ok(p),
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(text)?, port(text)?),
    };
    if first > last {
        return Err(format!("{text:?} is an empty range (the first port is above the last)"));
    }
    Ok(PortRange { first, last })
}

/// A process name as the kernel keeps it: its first 15 bytes, cut there even inside a
/// character (so not always UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommName(pub(crate) Vec<u8>);

fn parse_comm(text: &str) -> Result<CommName, String> {
    if text.is_empty() || text.contains('\0') {
        return Err("a process name is not empty and has no NUL".into());
    }
    let bytes = text.as_bytes();
    Ok(CommName(bytes[..bytes.len().min(tracer_common::event::COMM_LEN - 1)].to_vec()))
}

/// `--min-latency`: a duration with its unit. Without one, `10` would be ten seconds
/// here and ten milliseconds to a user of tcpconnlat: refused rather than guessed.
fn parse_latency(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, Unit::Required)
}

/// `--duration`: a number with an optional unit (ns, us, ms, s, m, h); seconds without one.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, Unit::Seconds)
}

/// What a duration without a unit means.
#[derive(PartialEq, Eq)]
enum Unit {
    /// Seconds.
    Seconds,
    /// Nothing: an error.
    Required,
}

fn duration_in(text: &str, bare: Unit) -> Result<std::time::Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if unit.is_empty() && !number.is_empty() && bare == Unit::Required {
        return Err(format!("{text:?} has no unit (like {text}ms, {text}us or {text}s)"));
    }
    let n: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration (like 30s, 500ms, 5m)"))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1_000_000.0,
        "ns" => n / 1_000_000_000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (use ns, us, ms, s, m or h)")),
    };
    std::time::Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() < 100 * 365 * 86_400)
        .ok_or_else(|| format!("{text:?} is not a positive duration of sane length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_reject_nonsense() {
        use std::time::Duration;
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1500ns"), Ok(Duration::from_nanos(1500)));
        assert_eq!(parse_latency("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(
            parse_latency("10"),
            Err("\"10\" has no unit (like 10ms, 10us or 10s)".to_string())
        );
        for bad in ["", "0", "0s", "-1s", "10x", "s", "1e999", "soon"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tcptrace").chain(args.iter().copied())).expect("valid")
    }

    /// Filters and hook options go before or after `top` and `serve` alike (as users of
    /// `kubectl` and `docker` expect); one given before keeps its value after the
    /// subcommand, defaults included.
    #[test]
    fn shared_options_are_taken_on_either_side_of_a_subcommand() {
        let port_80 = [PortRange { first: 80, last: 80 }];
        for args in [&["top", "--port", "80", "-p", "7"][..], &["--port", "80", "-p", "7", "top"]] {
            let cli = parse(args);
            assert!(matches!(cli.command, Some(Command::Top(_))), "{args:?}");
            assert_eq!(
                (cli.port.as_slice(), cli.pid.as_slice()),
                (&port_80[..], &[7][..]),
                "{args:?}"
            );
        }
        assert_eq!(parse(&["--max-connections", "2048", "serve"]).max_connections, 2048);
        assert_eq!(parse(&["serve", "--max-connections", "2048"]).max_connections, 2048);
        assert_eq!(parse(&["serve"]).max_connections, 65_536);
        assert_eq!(parse(&["--probe", "tracepoint", "top", "-n", "2"]).probe, ProbeArg::Tracepoint);
        assert!(parse(&["serve", "-d", "10s", "-v", "-4"]).verbose);
        // Options of the trace alone stay before the subcommand, where they are refused
        // by name (`trace_only_options`); top's own -n is not --count.
        assert!(Cli::try_parse_from(["tcptrace", "top", "--failed"]).is_err());
        assert_eq!(parse(&["top", "-n", "3"]).count, None);
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(parse_port_range("443"), Ok(PortRange { first: 443, last: 443 }));
        assert_eq!(parse_port_range("8000-8100"), Ok(PortRange { first: 8000, last: 8100 }));
        for bad in ["0", "70000", "http", "8100-8000", "1-", "-5", "1-2-3", ""] {
            assert!(parse_port_range(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn comms_are_cut_as_the_kernel_cuts_them() {
        let cut = |s: &str| parse_comm(s).map(|c| c.0);
        assert_eq!(cut("curl"), Ok(b"curl".to_vec()));
        assert_eq!(cut("a_very_long_process_name"), Ok(b"a_very_long_pro".to_vec()));
        // Fifteen bytes, the last one the first half of an é: what the kernel keeps.
        let mut kept = "ééééééé".as_bytes().to_vec();
        kept.push(0xc3);
        assert_eq!(cut("ééééééééé"), Ok(kept));
        assert!(parse_comm("").is_err());
    }

    #[test]
    fn failed_and_min_latency_default_to_connect_events() {
        assert_eq!(parse(&["--failed"]).events(), [EventArg::Connect]);
        assert_eq!(parse(&["--min-latency", "1ms"]).events(), [EventArg::Connect]);
        assert_eq!(
            parse(&["--failed", "-e", "connect,close"]).events(),
            [EventArg::Connect, EventArg::Close]
        );
        assert_eq!(
            parse(&[]).events(),
            [
                EventArg::Connect,
                EventArg::Accept,
                EventArg::Close,
                EventArg::Retransmit,
                EventArg::Reset
            ]
        );
        let all: Vec<_> =
            parse(&["-e", "all"]).events().iter().flat_map(|e| e.kinds()).copied().collect();
        assert_eq!(all.len(), 7);
        assert!(Cli::try_parse_from(["tcptrace", "-4", "-6"]).is_err());
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn state_events_get_a_bigger_default_ring() {
        use tracer_common::event::{kind_bit, EventKind};
        let bits = |kinds: &[EventKind]| kinds.iter().fold(0, |b, k| b | kind_bit(*k));
        assert_eq!(
            default_ring_bytes(bits(&[EventKind::Connect, EventKind::Accept, EventKind::Close])),
            1 << 20
        );
        assert_eq!(default_ring_bytes(bits(&[EventKind::Close, EventKind::State])), 4 << 20);
        assert_eq!(default_ring_bytes(0), 1 << 20);
    }

    #[test]
    fn ring_sizes_are_powers_of_two_pages() {
        assert_eq!(parse_ring_size("4096"), Ok(4096));
        assert_eq!(parse_ring_size("256K"), Ok(256 * 1024));
        assert_eq!(parse_ring_size("8M"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_ring_size("1G"), Ok(1 << 30));
        assert_eq!(parse_ring_size("2G"), Err("larger than 1G".into()));
        assert_eq!(parse_ring_size("99999999999999999999K"), Err("larger than 1G".into()));
        assert!(parse_ring_size("K").is_err_and(|e| e.contains("is not a size")));
        assert!(parse_ring_size("-4K").is_err_and(|e| e.contains("is not a size")));
        assert!(parse_ring_size("3000").is_err());
        assert!(parse_ring_size("2K").is_err());
        assert!(parse_ring_size("12K").is_err());
        assert!(parse_ring_size("2048M").is_err());
        assert!(parse_ring_size("lots").is_err());
    }
}
