//! Running a trace: load, attach, then move events from the ring buffer to the printer
//! until a signal or a closed pipe says stop.

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
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
    source::Source,
};

/// Ring buffer size: 256 KiB holds about 2,700 connect events between two wake-ups.
const RING_BYTES: u32 = 256 * 1024;

pub(crate) fn run(cli: &Cli) -> Result<()> {
    privileges::check().map_err(anyhow::Error::msg)?;
    let btf = loader::btf_path(cli.btf.as_ref());
    if cli.list_probes {
        return list_probes(&btf);
    }
    let filter = Filter { pid: cli.pid.unwrap_or(0), port: cli.port.unwrap_or(0), _pad: 0, self_pid: std::process::id() };
    let config = Config {
        events: cli.events.iter().fold(0, |bits, e| bits | kind_bit(e.kind())),
        count_calls: u32::from(cli.bytes == BytesArg::Calls),
    };
    let request = loader::Request {
        btf_path: &btf,
        filter,
        config,
        sizes: loader::Sizes { ring_bytes: RING_BYTES, max_connections: cli.max_connections },
        forced: cli.probe.forced(),
    };
    let mut tracer = loader::load(&request)?;
    if cli.verbose {
        for c in &tracer.choices {
            let passed: Vec<String> = c.passed_over.iter().map(|(f, why)| format!("{f}: {why}")).collect();
            let why = if passed.is_empty() { String::new() } else { format!(" (passed over: {})", passed.join("; ")) };
            eprintln!("tcptrace: hook {}: {} [{}]{why}", c.hook.name(), c.family, c.hook.target(c.family));
        }
    }
    let mode = cli.output.unwrap_or(if io::stdout().is_terminal() { OutputMode::Table } else { OutputMode::Plain });
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let printer = Printer::new(io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()), mode, tz);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the tokio runtime")?;
    let result = runtime.block_on(async {
        let source = Source::new(&mut tracer)?;
        pump(source, printer, cli.verbose).await
    });
    drop(tracer);
    match result {
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => Ok(()),
        other => other,
    }
}

/// Moves events until SIGINT/SIGTERM, flushing after each drain of the ring buffer.
async fn pump<W: Write>(mut source: Source, mut printer: Printer<W>, verbose: bool) -> Result<()> {
    let clock = Clock::now();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut lost_reported = 0;
    let mut undecodable = 0u64;
    printer.header()?;
    printer.flush()?;
    if verbose {
        eprintln!("tcptrace: tracing; Ctrl-C to stop");
    }
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {
                let lost = source.counter(Counter::RingbufFull);
                if lost > lost_reported {
                    eprintln!("tcptrace: {} events lost so far: ring buffer full", lost);
                    lost_reported = lost;
                }
            }
            guard = source.ring.readable_mut() => {
                let mut guard = guard?;
                let ring = guard.get_inner_mut();
                while let Some(item) = ring.next() {
                    match decode(&item, clock) {
                        Ok(event) => printer.event(&event)?,
                        Err(_) => undecodable += 1,
                    }
                }
                guard.clear_ready();
                printer.flush()?;
            }
        }
    }
    // Whatever arrived before the signal is still printed.
    let ring = source.ring.get_mut();
    while let Some(item) = ring.next() {
        match decode(&item, clock) {
            Ok(event) => printer.event(&event)?,
            Err(_) => undecodable += 1,
        }
    }
    printer.flush()?;
    let lost = source.counter(Counter::RingbufFull);
    if lost > 0 {
        eprintln!("tcptrace: {lost} events lost: ring buffer full");
    }
    let unread = source.counter(Counter::ReadError);
    if unread > 0 {
        eprintln!("tcptrace: {unread} events lost: kernel memory reads failed");
    }
    if undecodable > 0 {
        eprintln!("tcptrace: {undecodable} events could not be decoded");
    }
    Ok(())
}

/// `--list-probes`: each hook with each family, on this kernel.
fn list_probes(btf: &std::path::Path) -> Result<()> {
    let facts = loader::KernelFacts::read(btf)?;
    let mut out = io::stdout().lock();
    writeln!(out, "{:<10} {:<11} {:<7} DETAIL", "HOOK", "FAMILY", "STATUS")?;
    for hook in Hook::ALL {
        let mut first = true;
        for family in FALLBACK_ORDER {
            let config = Config { events: u32::MAX, count_calls: 1 };
            let sizes = loader::Sizes { ring_bytes: 4096, max_connections: 1024 };
            let mut ebpf = loader::load_object(&facts, &Filter::default(), &config, sizes)?;
            let (status, detail) = match loader::family::attach(&mut ebpf, &facts, hook, family) {
                Ok(()) if first => {
                    first = false;
                    ("chosen", hook.target(family).to_string())
                }
                Ok(()) => ("works", hook.target(family).to_string()),
                Err(why) => ("fails", why),
            };
            writeln!(out, "{:<10} {:<11} {:<7} {}", hook.name(), family, status, detail)?;
        }
    }
    out.flush()?;
    Ok(())
}
