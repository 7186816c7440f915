//! `tcptrace serve`: the same kernel programs as the trace, with every event turned into
//! Prometheus metrics (see `metrics`) served over HTTP (see `http`) until SIGINT, SIGTERM or SIGHUP.
//! State changes are counted in the kernel instead of sent (see `states`). Dropping the
//! tracer on the way out detaches every program.

mod http;
mod metrics;
mod states;

use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tracer_common::{
    event::{kind_bit, EventKind},
    filter::Config,
};

use crate::{
    cli::{Cli, ServeArgs},
    decode::{decode, Clock},
    run::{losses, Tally},
    source::{deadline, Pacer, Source, StopSignals},
};

pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    // State changes are counted in the kernel, not sent: ten events fewer per connection.
    let events = [
        EventKind::Connect,
        EventKind::Accept,
        EventKind::Close,
        EventKind::Retransmit,
        EventKind::Reset,
    ];
    let drops = if args.drops { kind_bit(EventKind::Drop) } else { 0 };
    let config = Config {
        events: events.iter().fold(drops, |bits, k| bits | kind_bit(*k)),
        count_calls: 0,
        live: 0,
        count_states: 1,
    };
    // The port before the kernel programs: a port in use fails at once, attaching nothing.
    // Usage errors in the filters still come first, as everywhere.
    crate::filter::from_cli(cli)?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let runtime = crate::source::runtime()?;
    let signals = StopSignals::install(&runtime)?;
    let mut tracer = crate::run::load(cli, config)?;

    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = metrics::Metrics::new(
        &mut registry,
        args.labels.clone(),
        args.max_series,
        cli.max_connections,
    );
    for c in &tracer.choices {
        metrics.hook_in_use(c.hook.name(), &c.family.to_string(), c.target);
    }
    registry.register_collector(Box::new(states::StateTransitions::take(&mut tracer.ebpf)?));
    let registry = Arc::new(registry);

    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        if !args.listen.ip().is_loopback() {
            say!("tcptrace: metrics are reachable from other hosts on {} (--listen)", args.listen);
        }
        say!("tcptrace: serving metrics on http://{}/metrics", listener.local_addr()?);
        let server = tokio::spawn(http::serve(listener, http::router(registry)));
        let mut source = Source::new(&mut tracer)?;
        let mut drops = crate::drops::Drops::take(&mut tracer, args.drops)?;
        let result =
            pump(&mut source, &mut tracer, &mut metrics, drops.as_mut(), cli.duration, signals)
                .await;
        server.abort();
        result
    })
}

/// Feeds events to the metrics until SIGINT, SIGTERM or SIGHUP (or `-d`); loss counters every
/// second; a summary line at the end.
async fn pump(
    source: &mut Source,
    tracer: &mut crate::loader::Tracer,
    metrics: &mut metrics::Metrics,
    mut drops: Option<&mut crate::drops::Drops>,
    duration: Option<std::time::Duration>,
    mut signals: StopSignals,
) -> Result<()> {
    // Decoding needs a clock, but no metric uses an event's wall-clock time: taken once.
    let clock = Clock::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut tally = Tally::default();
    let mut pacer = Pacer::new();
    let deadline = deadline(duration);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut deadline => break,
            _ = tick.tick() => {
                let l = losses(&source.losses);
                for (reason, count) in l.by_reason().into_iter().chain([("undecodable", tally.undecodable)]) {
                    metrics.lost_so_far(reason, count);
                }
                metrics.filtered_so_far(l.filtered);
                record_drops(drops.as_deref_mut(), clock, metrics, &mut tally);
            }
            guard = source.ring.readable_mut() => {
                let mut guard = guard?;
                if drain(guard.get_inner_mut(), clock, metrics, &mut tally, Some(crate::run::DRAIN_BATCH)) {
                    // More waiting, the readiness kept: see `run::pump`.
                    drop(guard);
                    tokio::task::yield_now().await;
                    continue;
                }
                guard.clear_ready();
                drop(guard);
                pacer.after_drain().await;
            }
        }
    }
    // The same summary line as the trace's, on stderr, counted with the hooks gone.
    tracer.stop_hooks();
    drain(source.ring.get_mut(), clock, metrics, &mut tally, None);
    record_drops(drops, clock, metrics, &mut tally);
    say!("{}", tally.summary(&crate::run::final_losses(&source.losses)));
    Ok(())
}

/// Records the drops counted since the last time (`--drops`).
fn record_drops(
    drops: Option<&mut crate::drops::Drops>,
    clock: Clock,
    metrics: &mut metrics::Metrics,
    tally: &mut Tally,
) {
    for event in drops.map(|d| d.sweep(clock)).unwrap_or_default() {
        metrics.record(&event);
        tally.event(&event);
    }
}

/// Records what the ring buffer holds, or `batch` events of it; true if it stopped at
/// the batch with more waiting.
fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    clock: Clock,
    metrics: &mut metrics::Metrics,
    tally: &mut Tally,
    batch: Option<usize>,
) -> bool {
    let mut taken = 0;
    loop {
        if batch.is_some_and(|b| taken == b) {
            return true;
        }
        let Some(item) = ring.next() else { return false };
        taken += 1;
        match decode(&item, clock) {
            Ok(event) => {
                metrics.record(&event);
                tally.event(&event);
            }
            Err(_) => tally.undecodable += 1,
        }
    }
}
