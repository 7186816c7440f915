//! One event loop for the trace, `serve` and `top`. A `Session` loads the programs, holds
//! the stop signals, and runs the loop: decoded events go to a `Sink` (the printer, the
//! metrics, top's view), in batches that yield to the runtime; once a tick the sink sees
//! the losses so far and the drops swept from the kernel; at the end the hooks go first,
//! then the last drain, then the summary on stderr. What differs between the three
//! commands is their sink, and their kernel configuration (`config::Settings`).

use std::time::Duration;

use anyhow::{Context, Result};
use tracer_common::event::EventKind;

use crate::{
    config::Settings,
    decode::{decode, Clock},
    event::Event,
    loader::{self, Tracer},
    source::{deadline, Pacer, Source, StopSignals},
    summary::{final_losses, losses, Losses, Tally},
};

/// Whether the loop goes on after what a sink was given.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flow {
    Continue,
    /// The sink has had what it wanted (`-n` events printed, `top -n` readings shown, `q`
    /// pressed): the run ends as on a stop signal.
    Stop,
}

/// Where a session's events go.
pub(crate) trait Sink {
    /// One event, from the ring buffer or a sweep of the kernel's counts (drops, resets in
    /// a storm).
    fn event(&mut self, event: &Event) -> Result<Flow>;

    /// After each drain of the ring buffer (the printer flushes here).
    fn drained(&mut self) -> Result<()> {
        Ok(())
    }

    /// How often `tick` runs.
    fn tick_every(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Once a tick, with the losses so far (`losses.forgotten` a lower bound).
    fn tick(&mut self, so_far: &SoFar) -> Result<Flow>;

    /// At the end, before the summary is said (top gives the terminal back here).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether the summary is still said when the run fails (top's is: what it could not
    /// show, just before the failure's own line; the trace's failure line stands alone).
    const SUMMARY_AFTER_FAILURE: bool = false;

    /// The line said on stderr at the end.
    fn summary(&self, tally: &Tally, end: &Losses) -> String {
        tally.summary(end).to_string()
    }
}

/// What a tick shows a sink.
pub(crate) struct SoFar {
    pub(crate) losses: Losses,
    pub(crate) undecodable: u64,
}

impl SoFar {
    /// Everything lost so far, undecodable records included.
    pub(crate) fn lost(&self) -> u64 {
        self.losses.lost() + self.undecodable
    }
}

/// The most events one drain takes before the loop looks at its signals, deadline and
/// clock again: when the kernel writes events faster than they can be printed (a slow
/// terminal, a pipe to a slow reader), a drain to the end would never end, and Ctrl-C,
/// `-d` and SIGTERM would go unheard.
const DRAIN_BATCH: usize = 256;

pub(crate) struct Session {
    pub(crate) tracer: Tracer,
    runtime: tokio::runtime::Runtime,
    signals: Option<StopSignals>,
    pump: Pump,
    duration: Option<Duration>,
    verbose: bool,
}

impl Session {
    /// The stop signals first, so that one sent while the programs load still ends the run
    /// cleanly once it starts (a supervisor's restart); then the programs, loaded and
    /// attached as `settings` says, and each hook's family said with `-v`.
    pub(crate) fn load(settings: &Settings) -> Result<Self> {
        crate::privileges::check().map_err(anyhow::Error::msg)?;
        let runtime = crate::source::runtime()?;
        let signals = StopSignals::install(&runtime)?;
        let request = loader::Request {
            btf_path: &settings.btf,
            filter: settings.filter,
            config: settings.kernel,
            sizes: settings.sizes,
            forced: settings.forced,
            options: settings.options,
        };
        let mut tracer = loader::load(&request)?;
        if settings.verbose {
            say!(
                "tcptrace: ring buffer {} KiB{}",
                settings.sizes.ring_bytes / 1024,
                if settings.ring_given { "" } else { " (default)" }
            );
            for c in &tracer.choices {
                let passed: Vec<String> =
                    c.passed_over.iter().map(|(f, why)| format!("{f}: {why}")).collect();
                let why = if passed.is_empty() {
                    String::new()
                } else {
                    format!(" (passed over: {})", passed.join("; "))
                };
                let only_for = if c.hook == loader::Hook::Reset && !settings.wants(EventKind::Reset)
                {
                    " (only for the kernel's reset reasons on close events)"
                } else {
                    ""
                };
                say!(
                    "tcptrace: hook {}: {} [{}]{only_for}{why}",
                    c.hook.name(),
                    c.family,
                    c.target
                );
            }
            for (hook, tried) in &tracer.unattached {
                let tried: Vec<String> =
                    tried.iter().map(|(f, why)| format!("{f}: {why}")).collect();
                say!(
                    "tcptrace: hook {}: not attached (tried {}); close events' reset reasons are inferred",
                    hook.name(),
                    tried.join("; ")
                );
            }
        }
        // The ring buffer and the loss counters taken now, before a sink takes the maps it
        // reads (`top` takes `SOCKS`); the ring buffer's fd registered with the runtime.
        let pump = {
            let _in_runtime = runtime.enter();
            Pump {
                source: Source::new(&mut tracer)?,
                drops: crate::drops::Drops::take(&mut tracer, settings.wants(EventKind::Drop))?,
                resets: crate::resets::Resets::take(&mut tracer, settings.wants(EventKind::Reset))?,
                tally: Tally::default(),
                clock: Clock::now(),
                join: crate::join::Join::new(
                    tracer.close_reasons,
                    settings.wants(EventKind::Reset),
                ),
                ready: Vec::new(),
            }
        };
        Ok(Self {
            tracer,
            runtime,
            signals: Some(signals),
            pump,
            duration: settings.duration,
            verbose: settings.verbose,
        })
    }

    /// The runtime the loop runs on, for what runs beside it (`serve`'s HTTP server).
    pub(crate) const fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Runs the loop until a stop signal, `-d`, or the sink's `Flow::Stop`; then detaches
    /// the hooks, gives the sink what they left, and says the summary.
    pub(crate) fn run<S: Sink>(&mut self, sink: &mut S) -> Result<()> {
        let signals = self.signals.take().context("a session runs once")?;
        let (tracer, pump) = (&mut self.tracer, &mut self.pump);
        let (duration, verbose) = (self.duration, self.verbose);
        self.runtime.block_on(async {
            let stopped_by_sink = match pump.run(sink, signals, duration, verbose).await {
                Ok(stopped_by_sink) => stopped_by_sink,
                Err(failure) if S::SUMMARY_AFTER_FAILURE => {
                    tracer.stop_hooks();
                    sink.finish()?;
                    say!("{}", sink.summary(&pump.tally, &final_losses(&pump.source.losses)));
                    return Err(failure);
                }
                Err(failure) => return Err(failure),
            };
            // With the hooks gone nothing new comes, so this last drain takes what the
            // kernel sent, and a connection still tracked afterwards really had not ended
            // (before, a close in the gap between the two was neither seen nor tracked).
            tracer.stop_hooks();
            if !stopped_by_sink && pump.drain_last(sink)? != Drained::Stopped {
                pump.sweep_counts(sink)?;
            }
            sink.finish()?;
            say!("{}", sink.summary(&pump.tally, &final_losses(&pump.source.losses)));
            Ok(())
        })
    }
}

/// The loop's state.
struct Pump {
    source: Source,
    drops: Option<crate::drops::Drops>,
    /// Resets counted in a storm (see `resets`).
    resets: Option<crate::resets::Resets>,
    tally: Tally,
    clock: Clock,
    /// Abortive closes waiting for the kernel's reason (see `join`).
    join: crate::join::Join,
    /// What the join let through, on its way to the sink (kept for its capacity).
    ready: Vec<Event>,
}

/// How a drain of the ring buffer ended.
#[derive(PartialEq, Eq)]
enum Drained {
    /// Nothing left to read.
    Empty,
    /// A batch taken, more waiting (see `DRAIN_BATCH`).
    Batch,
    /// The sink said stop.
    Stopped,
}

impl Pump {
    /// Until a stop: true when the sink asked for it.
    async fn run<S: Sink>(
        &mut self,
        sink: &mut S,
        mut signals: StopSignals,
        duration: Option<Duration>,
        verbose: bool,
    ) -> Result<bool> {
        let mut tick = tokio::time::interval(sink.tick_every());
        let mut pacer = Pacer::new();
        let deadline = deadline(duration);
        tokio::pin!(deadline);
        if verbose {
            say!("tcptrace: tracing; Ctrl-C to stop");
        }
        loop {
            tokio::select! {
                () = signals.recv() => return Ok(false),
                () = &mut deadline => return Ok(false),
                _ = tick.tick() => {
                    // What the ring buffer holds first, so that a tick sees every event
                    // sent before it (top's reading: the closes of its interval).
                    if self.drain(sink, Some(DRAIN_BATCH))? == Drained::Stopped {
                        return Ok(true);
                    }
                    // The wall clock may have been stepped (NTP) or the machine suspended
                    // (the kernel's monotonic clock stops meanwhile): times follow it.
                    self.clock = Clock::now();
                    if self.sweep_counts(sink)? == Flow::Stop {
                        return Ok(true);
                    }
                    let so_far = SoFar {
                        losses: losses(&self.source.losses),
                        undecodable: self.tally.undecodable,
                    };
                    if sink.tick(&so_far)? == Flow::Stop {
                        return Ok(true);
                    }
                }
                guard = self.source.ring.readable_mut() => {
                    let mut guard = guard?;
                    let mut to = To { sink, tally: &mut self.tally, join: &mut self.join, ready: &mut self.ready };
                    match drain(guard.get_inner_mut(), &mut to, self.clock, Some(DRAIN_BATCH))? {
                        Drained::Stopped => return Ok(true),
                        Drained::Batch => {
                            // The readiness stays set (the kernel does not wake a reader
                            // that is behind). A yield lets the runtime poll its drivers,
                            // which is where a signal becomes ready: without one, a loop
                            // that always finds the ring readable keeps the task running.
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
    }

    fn drain<S: Sink>(&mut self, sink: &mut S, batch: Option<usize>) -> Result<Drained> {
        let mut to =
            To { sink, tally: &mut self.tally, join: &mut self.join, ready: &mut self.ready };
        drain(self.source.ring.get_mut(), &mut to, self.clock, batch)
    }

    /// The last drain, once the hooks are gone: every held close goes too.
    fn drain_last<S: Sink>(&mut self, sink: &mut S) -> Result<Drained> {
        let drained = self.drain(sink, None)?;
        if drained == Drained::Stopped {
            return Ok(drained);
        }
        let mut to =
            To { sink, tally: &mut self.tally, join: &mut self.join, ready: &mut self.ready };
        to.join.flush(to.ready);
        if to.give()? == Flow::Stop {
            return Ok(Drained::Stopped);
        }
        to.sink.drained()?;
        Ok(drained)
    }

    /// Gives the sink a drop event for every connection whose drops grew since the last
    /// sweep (only when drop events are wanted), and a reset event for every key whose
    /// resets counted in a storm grew (only when reset events are wanted).
    fn sweep_counts<S: Sink>(&mut self, sink: &mut S) -> Result<Flow> {
        let mut events = self.drops.as_mut().map(|d| d.sweep(self.clock)).unwrap_or_default();
        events.extend(self.resets.as_mut().map(|r| r.sweep(self.clock)).unwrap_or_default());
        if events.is_empty() {
            return Ok(Flow::Continue);
        }
        let mut flow = Flow::Continue;
        for event in events {
            self.tally.event(&event);
            flow = sink.event(&event)?;
            if flow == Flow::Stop {
                break;
            }
        }
        sink.drained()?;
        Ok(flow)
    }
}

/// Where decoded events go: through the join (`join`), counted, to the sink.
struct To<'a, S> {
    sink: &'a mut S,
    tally: &'a mut Tally,
    join: &'a mut crate::join::Join,
    ready: &'a mut Vec<Event>,
}

impl<S: Sink> To<'_, S> {
    /// Gives the sink what the join let through.
    fn give(&mut self) -> Result<Flow> {
        let mut flow = Flow::Continue;
        for event in self.ready.drain(..) {
            if flow == Flow::Stop {
                break; // the rest is past the sink's end (`-n`)
            }
            self.tally.event(&event);
            flow = self.sink.event(&event)?;
        }
        Ok(flow)
    }
}

/// Gives the sink what the ring buffer holds, or `batch` events of it.
fn drain<S: Sink>(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    to: &mut To<'_, S>,
    clock: Clock,
    batch: Option<usize>,
) -> Result<Drained> {
    let mut taken = 0;
    let mut drained = Drained::Empty;
    while drained == Drained::Empty {
        if batch.is_some_and(|b| taken == b) {
            drained = Drained::Batch;
            break;
        }
        let Some(item) = ring.next() else { break };
        taken += 1;
        match decode(&item, clock) {
            Ok(event) => {
                to.join.push(event, to.ready);
                if to.give()? == Flow::Stop {
                    drained = Drained::Stopped;
                }
            }
            Err(_) => to.tally.undecodable += 1,
        }
    }
    if drained != Drained::Stopped {
        to.join.expire(std::time::Instant::now(), to.ready);
        if to.give()? == Flow::Stop {
            drained = Drained::Stopped;
        }
    }
    to.sink.drained()?;
    Ok(drained)
}
