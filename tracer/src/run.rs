//! Running a trace: load, attach, then move events from the ring buffer to the printer
//! until a signal or a closed pipe says stop.

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use tracer_common::{
    counters::Counter,
    event::kind_bit,
    filter::{Config, Filter},
};

use crate::{
    cli::{BytesArg, Cli},
    decode::{decode, Clock},
    loader::{self, family::FALLBACK_ORDER, Hook},
    printer::{OutputMode, Printer},
    privileges,
    source::{deadline, Pacer, Source, StopSignals},
};

pub(crate) fn run(cli: &Cli) -> Result<()> {
    if cli.list_probes {
        crate::filter::from_cli(cli)?;
        privileges::check().map_err(anyhow::Error::msg)?;
        return list_probes(&loader::btf_path(cli.btf.as_ref()));
    }
    let config = Config {
        events: cli
            .events()
            .iter()
            .flat_map(|e| e.kinds())
            .fold(0, |bits, &kind| bits | kind_bit(kind)),
        count_calls: u32::from(cli.bytes == Some(BytesArg::Calls)),
        live: 0,
        count_states: 0,
    };
    let runtime = crate::source::runtime()?;
    let signals = StopSignals::install(&runtime)?;
    let mut tracer = load(cli, config)?;
    trace(cli, &mut tracer, &runtime, signals)
}

/// Checks the command line and privileges, loads the programs for `config` with the
/// command line's filters, and says which hook family each hook took (`-v`).
pub(crate) fn load(cli: &Cli, config: Config) -> Result<loader::Tracer> {
    // Usage errors first, as clap's own come before anything is tried.
    let filter = crate::filter::from_cli(cli)?;
    privileges::check().map_err(anyhow::Error::msg)?;
    let btf = loader::btf_path(cli.btf.as_ref());
    let ring_bytes =
        cli.ring_buffer.unwrap_or_else(|| crate::cli::default_ring_bytes(config.events));
    let request = loader::Request {
        btf_path: &btf,
        filter,
        config,
        sizes: loader::Sizes { ring_bytes, max_connections: cli.max_connections },
        forced: cli.probe.forced(),
        options: cli.probe.options(),
    };
    let tracer = loader::load(&request)?;
    if cli.verbose {
        say!(
            "tcptrace: ring buffer {} KiB{}",
            ring_bytes / 1024,
            if cli.ring_buffer.is_some() { "" } else { " (default)" }
        );
        for c in &tracer.choices {
            let passed: Vec<String> =
                c.passed_over.iter().map(|(f, why)| format!("{f}: {why}")).collect();
            let why = if passed.is_empty() {
                String::new()
            } else {
                format!(" (passed over: {})", passed.join("; "))
            };
            say!("tcptrace: hook {}: {} [{}]{why}", c.hook.name(), c.family, c.target);
        }
    }
    Ok(tracer)
}

/// The trace proper: events to stdout until a signal, the pipe's end, `-d` or `-n`.
fn trace(
    cli: &Cli,
    tracer: &mut loader::Tracer,
    runtime: &tokio::runtime::Runtime,
    signals: StopSignals,
) -> Result<()> {
    let mode = cli.output.unwrap_or(if io::stdout().is_terminal() {
        OutputMode::Table
    } else {
        OutputMode::Plain
    });
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let mut printer = Printer::new(
        io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        mode,
        tz,
        !cli.no_header,
    )
    .home_netns(crate::filter::own_netns());
    if cli.relative {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        printer = printer.relative_to(u64::try_from(now.as_nanos()).unwrap_or(0));
    }
    let stop = Stop { after: cli.duration, events: cli.count };
    let wants_drops = cli
        .events()
        .iter()
        .flat_map(|e| e.kinds())
        .any(|k| *k == tracer_common::event::EventKind::Drop);
    let result = runtime.block_on(async {
        let source = Source::new(tracer)?;
        let drops = crate::drops::Drops::take(tracer, wants_drops)?;
        pump(source, printer, tracer, drops, cli.verbose, stop, signals).await
    });
    if cli.verbose {
        // Connections the kernel still tracks: after every traced connection has closed,
        // this is back to zero (the map is bounded anyway; this shows nothing leaks).
        match tracked_connections(tracer) {
            Ok((all, owned)) => {
                say!("tcptrace: connections tracked at exit: {all} ({owned} with a known owner)")
            }
            Err(e) => say!("tcptrace: cannot read the connection map: {e:#}"),
        }
    }
    result
}

/// What went through, and what did not, for the summary line (the trace's and `serve`'s).
#[derive(Default)]
pub(crate) struct Tally {
    /// Indexed like `event::KINDS`: a map lookup per event showed in profiles.
    per_kind: [u64; crate::event::KINDS.len()],
    pub(crate) undecodable: u64,
}

impl Tally {
    pub(crate) fn event(&mut self, event: &crate::event::Event) {
        if let Some(n) = self.per_kind.get_mut(event.kind_index()) {
            *n += 1;
        }
    }

    /// The line printed on stderr at exit: events per type, what was lost and why.
    pub(crate) fn summary(&self, end: &Losses) -> String {
        let seen: u64 = self.per_kind.iter().sum();
        let kinds: Vec<String> = crate::event::KINDS
            .iter()
            .zip(self.per_kind)
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let kinds =
            if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) };
        format!(
            "tcptrace: {seen} events{kinds}; {}; filtered in the kernel {}{}",
            end.describe(),
            end.filtered,
            undecodable_note(self.undecodable)
        )
    }
}

/// "; N undecodable" for the exit summaries, or nothing when every record decoded.
pub(crate) fn undecodable_note(undecodable: u64) -> String {
    if undecodable > 0 {
        format!("; {undecodable} undecodable")
    } else {
        String::new()
    }
}

/// Losses as the kernel side counted them.
pub(crate) struct Losses {
    pub(crate) ring_full: u64,
    pub(crate) read_errors: u64,
    /// Program runs the kernel skipped (paired state programs excepted: see loader::stats).
    pub(crate) missed_runs: u64,
    pub(crate) state_gaps: u64,
    pub(crate) map_errors: u64,
    /// Entries the kernel's full connection table evicted (see
    /// `LossCounters::forgotten_at_least`): each connection's owner, lost with it, so its
    /// later events lack it, or never come. Evictions, not connections: with every state
    /// change followed, a connection evicted is tracked anew (owner unknown) at its next
    /// change, and that entry can be evicted too.
    pub(crate) forgotten: u64,
    pub(crate) filtered: u64,
}

/// The losses so far, while the hooks run (forgotten connections: a lower bound).
pub(crate) fn losses(source: &crate::source::LossCounters) -> Losses {
    Losses { forgotten: source.forgotten_at_least(), ..counted_losses(source) }
}

/// The losses at the end, exact: only once the hooks are gone.
pub(crate) fn final_losses(source: &crate::source::LossCounters) -> Losses {
    Losses { forgotten: source.forgotten_at_exit(), ..counted_losses(source) }
}

fn counted_losses(source: &crate::source::LossCounters) -> Losses {
    Losses {
        ring_full: source.counter(Counter::RingbufFull),
        read_errors: source.counter(Counter::ReadError),
        missed_runs: source.missed_runs(),
        state_gaps: source.counter(Counter::StateGap),
        map_errors: source.counter(Counter::MapError),
        forgotten: 0,
        filtered: source.counter(Counter::Filtered),
    }
}

impl Losses {
    /// Each reason with its count, named as `tcptrace serve` labels them.
    pub(crate) const fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            ("ring_buffer_full", self.ring_full),
            ("kernel_read_failed", self.read_errors),
            ("hook_run_skipped", self.missed_runs),
            ("state_out_of_sequence", self.state_gaps),
            ("map_update_refused", self.map_errors),
            ("connection_table_full", self.forgotten),
        ]
    }

    pub(crate) fn lost(&self) -> u64 {
        self.ring_full
            + self.read_errors
            + self.missed_runs
            + self.state_gaps
            + self.map_errors
            + self.forgotten
    }

    /// The loss part of the summary, e.g. `lost 3 (ring buffer full 3, ...)`; a hint
    /// when the connection table was too small.
    pub(crate) fn describe(&self) -> String {
        let hint = if self.forgotten > 0 { "; raise --max-connections" } else { "" };
        format!(
            "lost {} (ring buffer full {}, kernel reads failed {}, hook runs skipped by the kernel {}, state changes out of sequence {}, map updates refused {}, entries evicted from the full connection table {}{hint})",
            self.lost(),
            self.ring_full,
            self.read_errors,
            self.missed_runs,
            self.state_gaps,
            self.map_errors,
            self.forgotten
        )
    }
}

/// When to stop on its own (`--duration`, `--count`), besides SIGINT and SIGTERM.
#[derive(Clone, Copy)]
struct Stop {
    after: Option<std::time::Duration>,
    /// Events to print.
    events: Option<u64>,
}

/// Prints what the ring buffer holds, up to `left` events when counting; true when that
/// count is reached.
fn drain<W: Write>(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    printer: &mut Printer<W>,
    clock: Clock,
    tally: &mut Tally,
    left: &mut Option<u64>,
    batch: Option<usize>,
) -> io::Result<Drained> {
    let mut taken = 0;
    while left.is_none_or(|n| n > 0) {
        if batch.is_some_and(|b| taken == b) {
            printer.flush()?;
            return Ok(Drained::Batch);
        }
        let Some(item) = ring.next() else { break };
        taken += 1;
        match decode(&item, clock) {
            Ok(event) => {
                tally.event(&event);
                printer.event(&event)?;
                if let Some(n) = left {
                    *n -= 1;
                }
            }
            Err(_) => tally.undecodable += 1,
        }
    }
    printer.flush()?;
    Ok(if *left == Some(0) { Drained::CountReached } else { Drained::Empty })
}

/// How a drain of the ring buffer ended.
#[derive(PartialEq, Eq)]
enum Drained {
    /// Nothing left to read.
    Empty,
    /// A batch taken, more waiting (see `DRAIN_BATCH`).
    Batch,
    /// `-n` events printed.
    CountReached,
}

/// The most events one drain takes before the loop looks at its signals, deadline and
/// clock again: when the kernel writes events faster than they can be printed (a slow
/// terminal, a pipe to a slow reader), a drain to the end would never end, and Ctrl-C,
/// `-d` and SIGTERM would go unheard.
pub(crate) const DRAIN_BATCH: usize = 256;

/// Whether the reader of our stdout has gone: a pipe whose reading end is closed polls
/// as POLLERR (a terminal that hung up, as POLLHUP). Files and terminals poll as neither.
fn reader_gone() -> bool {
    let mut stdout = libc::pollfd { fd: libc::STDOUT_FILENO, events: 0, revents: 0 };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let ready = unsafe { libc::poll(&raw mut stdout, 1, 0) };
    ready == 1 && stdout.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// What a failed write to stdout says (a full disk, a closed file): the error alone
/// ("No space left on device") would not say what was being written.
const WRITING: &str = "writing the events to stdout";

/// Moves events until a stop signal (or `-d`, or `-n`), flushing after each drain of the
/// ring buffer, then prints a one-line summary on stderr.
async fn pump<W: Write>(
    mut source: Source,
    mut printer: Printer<W>,
    tracer: &mut loader::Tracer,
    mut drops: Option<crate::drops::Drops>,
    verbose: bool,
    stop: Stop,
    mut signals: StopSignals,
) -> Result<()> {
    let mut clock = Clock::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut lost_reported = 0;
    let mut tally = Tally::default();
    let mut pacer = Pacer::new();
    let mut left = stop.events;
    let deadline = deadline(stop.after);
    tokio::pin!(deadline);
    printer.header().and_then(|()| printer.flush()).context(WRITING)?;
    if verbose {
        say!("tcptrace: tracing; Ctrl-C to stop");
    }
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut deadline => break,
            _ = tick.tick() => {
                let now = losses(&source.losses);
                if now.lost() > lost_reported {
                    say!("tcptrace: so far {}", now.describe());
                    lost_reported = now.lost();
                }
                // The wall clock may have been stepped (NTP) or the machine suspended
                // (the kernel's monotonic clock stops meanwhile): times follow it.
                clock = Clock::now();
                if print_drops(drops.as_mut(), &mut printer, clock, &mut tally, &mut left).context(WRITING)? {
                    break;
                }
                // `tcptrace | head` on a quiet machine: no write would ever fail.
                if reader_gone() {
                    return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
                }
            }
            guard = source.ring.readable_mut() => {
                let mut guard = guard?;
                let drained = drain(guard.get_inner_mut(), &mut printer, clock, &mut tally, &mut left, Some(DRAIN_BATCH)).context(WRITING)?;
                match drained {
                    Drained::CountReached => break,
                    Drained::Batch => {
                        // The readiness stays set (the kernel does not wake a reader that
                        // is behind). A yield lets the runtime poll its drivers, which is
                        // where a signal becomes ready: without one, a loop that always
                        // finds the ring readable keeps the task running.
                        drop(guard);
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Drained::Empty => {}
                }
                guard.clear_ready();
                drop(guard);
                pacer.after_drain().await;
            }
        }
    }
    // With the hooks gone nothing new comes, so this last drain prints what the kernel
    // sent, and a connection still tracked afterwards really had not ended (before, a
    // close in the gap between the two was neither printed nor tracked).
    tracer.stop_hooks();
    drain(source.ring.get_mut(), &mut printer, clock, &mut tally, &mut left, None)
        .context(WRITING)?;
    print_drops(drops.as_mut(), &mut printer, clock, &mut tally, &mut left).context(WRITING)?;
    let end = final_losses(&source.losses);
    say!("{}", tally.summary(&end));
    Ok(())
}

/// Prints a drop event for every connection whose drops grew since the last time, up to
/// `left` events when counting; true when that count is reached.
fn print_drops<W: Write>(
    drops: Option<&mut crate::drops::Drops>,
    printer: &mut Printer<W>,
    clock: Clock,
    tally: &mut Tally,
    left: &mut Option<u64>,
) -> io::Result<bool> {
    let Some(drops) = drops else { return Ok(false) };
    for event in drops.sweep(clock) {
        if *left == Some(0) {
            break;
        }
        tally.event(&event);
        printer.event(&event)?;
        if let Some(n) = left {
            *n -= 1;
        }
    }
    printer.flush()?;
    Ok(*left == Some(0))
}

/// Entries in the kernel's per-connection map: (all, with a known owner).
fn tracked_connections(tracer: &loader::Tracer) -> Result<(usize, usize)> {
    let map = tracer.ebpf.map("SOCKS").context("SOCKS map missing")?;
    let socks: aya::maps::HashMap<_, u64, tracer_common::conn::SockInfo> =
        aya::maps::HashMap::try_from(map)?;
    let mut all = 0;
    let mut owned = 0;
    for entry in socks.iter() {
        let (_, info) = entry?;
        all += 1;
        owned += usize::from(info.task.pid != 0);
        if std::env::var_os("TT_DEBUG_SOCKS").is_some() {
            say!("tcptrace: tracked {info:?}");
        }
    }
    Ok((all, owned))
}

/// `--list-probes`: each hook with each family, on this kernel.
fn list_probes(btf: &std::path::Path) -> Result<()> {
    let facts = loader::KernelFacts::read(btf)?;
    let mut out = io::stdout().lock();
    writeln!(out, "{:<10} {:<11} {:<7} DETAIL", "HOOK", "FAMILY", "STATUS")?;
    for hook in Hook::ALL {
        let mut first = true;
        for family in FALLBACK_ORDER {
            let config = Config { events: u32::MAX, count_calls: 1, live: 0, count_states: 0 };
            let sizes = loader::Sizes { ring_bytes: 4096, max_connections: 1024 };
            let mut ebpf = loader::load_object(&facts, &Filter::default(), &config, sizes)?;
            let options = loader::family::Options { btf_tracepoints: true };
            let (status, detail) =
                match loader::family::attach(&mut ebpf, &facts, hook, family, options) {
                    Ok(target) if first => {
                        first = false;
                        ("chosen", target.to_string())
                    }
                    Ok(target) => ("works", target.to_string()),
                    Err(why) => ("fails", why),
                };
            writeln!(out, "{:<10} {:<11} {:<7} {}", hook.name(), family, status, detail)?;
        }
    }
    out.flush()?;
    Ok(())
}
