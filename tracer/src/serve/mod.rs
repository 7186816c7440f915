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
    config::Settings,
    event::Event,
    session::{Flow, Session, Sink, SoFar},
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
        close_reasons: 0,
        _pad: 0,
    };
    // Usage errors in the filters first, as everywhere; then the port, before the kernel
    // programs: a port in use fails at once, attaching nothing.
    let settings = Settings::new(cli, config)?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let mut session = Session::load(&settings)?;

    let mut registry = Registry::with_prefix("tcptrace");
    let metrics = metrics::Metrics::new(
        &mut registry,
        args.labels.clone(),
        args.max_series,
        cli.max_connections,
    );
    for c in &session.tracer.choices {
        metrics.hook_in_use(c.hook.name(), &c.family.to_string(), c.target);
    }
    registry
        .register_collector(Box::new(states::StateTransitions::take(&mut session.tracer.ebpf)?));
    let registry = Arc::new(registry);

    let server = {
        let _in_runtime = session.runtime().enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        if !args.listen.ip().is_loopback() {
            say!("tcptrace: metrics are reachable from other hosts on {} (--listen)", args.listen);
        }
        say!("tcptrace: serving metrics on http://{}/metrics", listener.local_addr()?);
        session.runtime().spawn(http::serve(listener, http::router(registry)))
    };
    let result = session.run(&mut MetricsSink { metrics });
    server.abort();
    result
}

/// `serve`'s sink: every event recorded in the metrics, and the losses once a tick.
struct MetricsSink {
    metrics: metrics::Metrics,
}

impl Sink for MetricsSink {
    fn event(&mut self, event: &Event) -> Result<Flow> {
        self.metrics.record(event);
        Ok(Flow::Continue)
    }

    fn tick(&mut self, so_far: &SoFar) -> Result<Flow> {
        let reasons = so_far.losses.by_reason().named();
        for (reason, count) in reasons.into_iter().chain([("undecodable", so_far.undecodable)]) {
            self.metrics.lost_so_far(reason, count);
        }
        self.metrics.filtered_so_far(so_far.losses.filtered);
        Ok(Flow::Continue)
    }
}
