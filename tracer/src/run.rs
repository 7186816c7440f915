//! The trace: events printed as they come (the session's `PrintSink`), until a signal, a
//! closed pipe, `-d` or `-n` says stop; and `--list-probes`.

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use tracer_common::filter::{Config, Filter};

use crate::{
    cli::Cli,
    config::Settings,
    loader::{self, family::FALLBACK_ORDER, Hook},
    printer::{OutputMode, Printer},
    privileges,
    session::{Flow, Session, Sink, SoFar},
    summary::{Losses, Tally},
};

pub(crate) fn run(cli: &Cli) -> Result<()> {
    if cli.list_probes {
        crate::filter::from_cli(cli)?;
        privileges::check().map_err(anyhow::Error::msg)?;
        return list_probes(&loader::btf_path(cli.btf.as_ref()));
    }
    let settings = Settings::new(cli, Settings::trace_kernel_config(cli))?;
    let mut session = Session::load(&settings)?;
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
    printer.header().and_then(|()| printer.flush()).context(WRITING)?;
    let json = mode == OutputMode::Json;
    let mut sink = PrintSink { printer, left: cli.count, lost_reported: 0, json };
    let result = session.run(&mut sink);
    if cli.verbose {
        // Connections the kernel still tracks: after every traced connection has closed,
        // this is back to zero (the map is bounded anyway; this shows nothing leaks).
        match tracked_connections(&session.tracer) {
            Ok((all, owned)) => {
                say!("tcptrace: connections tracked at exit: {all} ({owned} with a known owner)")
            }
            Err(e) => say!("tcptrace: cannot read the connection map: {e:#}"),
        }
    }
    result
}

/// The trace's sink: every event printed, up to `-n` of them.
struct PrintSink<W: Write> {
    printer: Printer<W>,
    /// Events still to print with `-n`.
    left: Option<u64>,
    /// The losses last said on stderr.
    lost_reported: u64,
    /// `-o json`: the summary as one JSON object too.
    json: bool,
}

impl<W: Write> Sink for PrintSink<W> {
    fn event(&mut self, event: &crate::event::Event) -> Result<Flow> {
        if self.left == Some(0) {
            return Ok(Flow::Stop);
        }
        self.printer.event(event).context(WRITING)?;
        if let Some(n) = &mut self.left {
            *n -= 1;
        }
        Ok(if self.left == Some(0) { Flow::Stop } else { Flow::Continue })
    }

    fn drained(&mut self) -> Result<()> {
        self.printer.flush().context(WRITING)
    }

    fn tick(&mut self, so_far: &SoFar) -> Result<Flow> {
        if so_far.losses.lost() > self.lost_reported {
            say!("tcptrace: so far {}", so_far.losses.describe());
            self.lost_reported = so_far.losses.lost();
        }
        // `tcptrace | head` on a quiet machine: no write would ever fail.
        if reader_gone() {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
        }
        Ok(Flow::Continue)
    }

    fn summary(&self, tally: &Tally, end: &Losses) -> String {
        let summary = tally.summary(end);
        if self.json {
            summary.to_json()
        } else {
            summary.to_string()
        }
    }
}

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
            let config = Config {
                events: u32::MAX,
                count_calls: 1,
                live: 0,
                count_states: 0,
                close_reasons: 0,
                _pad: 0,
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::ConnectResult,
        printer::tests::{connect, event},
    };

    /// `-n 1`: the first event is printed and ends the run; one that still comes (the last
    /// drain, a drop sweep after it) is neither printed nor counted down past zero.
    #[test]
    fn count_reached_prints_no_more() {
        let printer = Printer::new(Vec::new(), OutputMode::Plain, jiff::tz::TimeZone::UTC, false);
        let mut sink = PrintSink { printer, left: Some(1), lost_reported: 0, json: false };
        let e = event(connect(ConnectResult::Ok), false, true);
        assert_eq!(sink.event(&e).expect("printed"), Flow::Stop);
        assert_eq!(sink.event(&e).expect("not printed"), Flow::Stop);
        sink.drained().expect("flushed");
        let out = String::from_utf8(sink.printer.into_inner()).expect("utf-8");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert_eq!(sink.left, Some(0));
    }
}
