//! The metrics `tcptrace serve` exposes, and how each event moves them.
//!
//! Cardinality: every per-connection metric carries the same *label set* (`comm`,
//! `service_port`, and whatever `--labels` adds) and a few bounded labels of its own
//! (`direction`, `result`, `errno`, ...). At most `--max-series` label sets are kept;
//! an event that would start another is counted in `tcptrace_series_dropped_total`
//! and not recorded, so memory stays bounded whatever the traffic looks like.

use std::collections::HashMap;

use prometheus_client::{
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets_range, Histogram},
    },
    registry::{Registry, Unit},
};

use crate::{
    cli::LabelArg,
    event::{errno_name, ClosedBy, ConnectResult, Detail, Direction, Event, TcpState},
};

/// A label set: names and values, in a fixed order.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// Maps on the per-event path: foldhash (randomly seeded, so still safe with
/// peer-chosen ports and addresses) rather than SipHash, which `perf` showed taking a
/// third of the exporter's time.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A counter of a label set, with its own bounded labels: a key of the handle cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum CounterSlot {
    Opened {
        direction: &'static str,
        result: &'static str,
    },
    ConnectFailure {
        errno: u32,
    },
    Closed {
        direction: &'static str,
        closed_by: &'static str,
        end: &'static str,
    },
    /// Bytes a connection lost when it ended: `unacked` or `unread`.
    BytesLost {
        kind: &'static str,
    },
    /// Resets, by direction and by the kernel's reason (`none` where it gives none).
    Resets {
        direction: &'static str,
        reason: &'static str,
    },
    /// Dropped segments, by the kernel's reason.
    Drops {
        reason: &'static str,
    },
    Sent,
    Received,
    Retransmits {
        kind: &'static str,
    },
}

/// A histogram of a label set, likewise.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum HistogramSlot {
    ConnectLatency,
    Lifetime { direction: &'static str },
}

impl CounterSlot {
    /// The slot's own labels, after the label set's.
    fn labels(self) -> Labels {
        match self {
            Self::Opened { direction, result } => {
                vec![("direction", direction.into()), ("result", result.into())]
            }
            Self::ConnectFailure { errno } => {
                vec![("errno", errno_name(errno).map_or_else(|| errno.to_string(), str::to_string))]
            }
            Self::Closed { direction, closed_by, end } => vec![
                ("direction", direction.into()),
                ("closed_by", closed_by.into()),
                ("end", end.into()),
            ],
            Self::BytesLost { kind } => vec![("kind", kind.into())],
            Self::Resets { direction, reason } => {
                vec![("direction", direction.into()), ("reason", reason.into())]
            }
            Self::Drops { reason } => vec![("reason", reason.into())],
            Self::Retransmits { kind } => vec![("kind", kind.into())],
            Self::Sent | Self::Received => Vec::new(),
        }
    }
}

impl HistogramSlot {
    fn labels(self) -> Labels {
        match self {
            Self::ConnectLatency => Vec::new(),
            Self::Lifetime { direction } => vec![("direction", direction.into())],
        }
    }
}

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// `net.ipv4.ip_local_port_range` (which IPv6 shares), or the kernel's default range when
/// it cannot be read.
fn ephemeral_ports() -> std::ops::RangeInclusive<u16> {
    parse_port_range(
        &std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default(),
    )
    .unwrap_or(32768..=60999)
}

fn parse_port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let mut ports = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(first)), Some(Ok(last))) = (ports.next(), ports.next()) else { return None };
    (first <= last).then_some(first..=last)
}

/// Label set number `series` of `all`, followed by `more`.
fn full_labels(all: &[Labels], series: u32, more: Labels) -> Labels {
    let mut labels = all[series as usize].clone();
    labels.extend(more);
    labels
}

/// Connect latency: 10 µs to 10 s, 19 buckets (a factor of about 2.15).
fn latency_histogram() -> Histogram {
    Histogram::new(round_buckets(exponential_buckets_range(1e-5, 10.0, 19)))
}

/// Connection lifetime: 1 ms to 1 h, 20 buckets.
fn lifetime_histogram() -> Histogram {
    Histogram::new(round_buckets(exponential_buckets_range(1e-3, 3600.0, 20)))
}

/// Bucket bounds to three significant digits: computed ones carry float noise
/// (`le="0.0010000000000000005"`), which a query for `le="0.001"` would not match.
fn round_buckets(bounds: impl Iterator<Item = f64>) -> impl Iterator<Item = f64> {
    bounds.map(|b| format!("{b:.2e}").parse().unwrap_or(b))
}

/// One label set, as the event's values rather than label strings: equal keys make equal
/// label sets. Extra labels the user did not ask for stay `None`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    /// None when the owner is unknown (the label is left out).
    comm: Option<crate::event::Comm>,
    /// The server side's port (the `service_port` label), None for `ephemeral`: see
    /// `Metrics::service_port`.
    service_port: Option<u16>,
    pid: Option<u32>,
    lport: Option<u16>,
    raddr: Option<std::net::IpAddr>,
    rport: Option<u16>,
    netns: Option<u32>,
    /// Resets counted together in a storm (a reset event whose `count` is above 1): they
    /// span connections, so the per-connection labels are left out and `service_port` is
    /// `many`; only `raddr`, exact for all of them, stays.
    storm: bool,
}

impl SeriesKey {
    /// The label strings, in the order they are exported: built once, when the set is
    /// admitted. An absent value is the same as no label to Prometheus, so it is left out.
    fn labels(&self, extra_labels: &[LabelArg]) -> Labels {
        let mut labels = Labels::with_capacity(2 + extra_labels.len());
        if let Some(comm) = &self.comm {
            labels.push(("comm", comm.to_string()));
        }
        let service_port = match self.service_port {
            _ if self.storm => "many".to_string(),
            Some(port) => port.to_string(),
            None => "ephemeral".to_string(),
        };
        labels.push(("service_port", service_port));
        for extra in extra_labels {
            let (name, value) = match extra {
                LabelArg::Pid => ("pid", self.pid.map(|p| p.to_string())),
                LabelArg::Lport => ("lport", self.lport.map(|p| p.to_string())),
                LabelArg::Raddr => ("raddr", self.raddr.map(|a| a.to_string())),
                LabelArg::Rport => ("rport", self.rport.map(|p| p.to_string())),
                LabelArg::Netns => ("netns", self.netns.map(|n| n.to_string())),
            };
            if let Some(value) = value {
                labels.push((name, value));
            }
        }
        labels
    }
}

/// How long a passive connection that closed before its accept is remembered (see
/// `Metrics::closed_before_accept`). One whose accept never comes (its listener closed
/// first) must not stay: its socket's address can become a new connection's, whose
/// accept must count.
const CLOSED_BEFORE_ACCEPT_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a handshake's retransmissions are remembered without its connection opening
/// (see `Metrics::handshakes`): longer than Linux's default SYN and SYN-ACK retries last.
const HANDSHAKE_KEPT: std::time::Duration = std::time::Duration::from_secs(180);

/// A handshake whose retransmissions were counted before its connection opened.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Handshake {
    /// A connect's SYNs resent: by socket, the connection's own.
    Connect(u64),
    /// A listener's SYN-ACKs resent: by four-tuple, as the request socket that resends
    /// them is not the connection's.
    Request(std::net::IpAddr, u16, std::net::IpAddr, u16),
}

impl Handshake {
    /// Addresses canonical: a dual-stack listener's request shows an IPv4 client as
    /// a.b.c.d, the connection it becomes as ::ffff:a.b.c.d.
    fn request(ep: &crate::event::Endpoints) -> Self {
        Self::Request(ep.laddr.to_canonical(), ep.lport, ep.raddr.to_canonical(), ep.rport)
    }
}

pub(crate) struct Metrics {
    extra_labels: Vec<LabelArg>,
    max_series: usize,
    /// Label sets admitted so far, each with its number in `series` (they stay: their
    /// counters must not vanish).
    admitted: FastMap<SeriesKey, u32>,
    series: Vec<Labels>,
    /// Handles on every metric used so far, by (label set, slot): an event finds its
    /// counters with one fast lookup each, where prometheus-client's families would hash
    /// and copy the whole label set for each.
    counters: FastMap<(u32, CounterSlot), Counter>,
    histograms: FastMap<(u32, HistogramSlot), Histogram>,
    /// Open-connection gauges, by (label set, direction).
    gauges: FastMap<(u32, &'static str), Gauge>,
    /// Connections seen opening and not yet closed, by socket (`Event::sock`: two network
    /// namespaces can hold the same four-tuple at once), with their open gauge and
    /// whether they were accepted (their retransmits' `service_port` is then the local one).
    open: FastMap<u64, (Gauge, bool)>,
    max_open: usize,
    /// Passive connections whose close came before their accept (the client reset them
    /// while they waited in the accept queue): their accept must not count them open, or
    /// the gauge would never come down. By socket, with when the close came.
    closed_before_accept: FastMap<u64, std::time::Instant>,
    /// The last `total_retrans` each connection's retransmit event carried, by socket:
    /// one event is one retransmitted skb, which may hold several segments.
    retransmitted: FastMap<u64, u32>,
    /// The same for handshakes not yet ended, with when each was last counted: what a
    /// connection resent before it opened is in its `total_retrans`, already counted, so
    /// its count goes on from there.
    handshakes: FastMap<Handshake, (u32, std::time::Instant)>,
    /// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
    ephemeral: std::ops::RangeInclusive<u16>,
    warned_full: bool,

    opened: Family<Labels, Counter>,
    connect_failures: Family<Labels, Counter>,
    connect_latency: HistogramFamily,
    lifetime: HistogramFamily,
    closed: Family<Labels, Counter>,
    bytes_lost: Family<Labels, Counter>,
    resets: Family<Labels, Counter>,
    drops: Family<Labels, Counter>,
    /// Reset and drop reason names as `&'static str`, for the counters' handle cache: one copy
    /// each, a few dozen at most (the kernel's `enum sk_rst_reason`).
    reset_reasons: FastMap<String, &'static str>,
    sent: Family<Labels, Counter>,
    received: Family<Labels, Counter>,
    retransmits: Family<Labels, Counter>,
    open_connections: Family<Labels, Gauge>,
    lost: Family<Labels, Counter>,
    filtered: Counter,
    series_dropped: Counter,
    label_sets: Gauge,
    hooks: Family<Labels, Gauge>,
}

impl Metrics {
    /// Registers every metric under `tcptrace_`. `max_open` bounds the table of open
    /// connections (the kernel's own connection limit).
    pub(crate) fn new(
        registry: &mut Registry,
        mut extra_labels: Vec<LabelArg>,
        max_series: u32,
        max_open: u32,
    ) -> Self {
        // `--labels pid,pid` means pid once: a label name twice makes Prometheus reject the
        // whole scrape.
        let mut seen = Vec::with_capacity(extra_labels.len());
        extra_labels.retain(|l| {
            !seen.contains(l) && {
                seen.push(*l);
                true
            }
        });
        let m = Self {
            extra_labels,
            max_series: max_series as usize,
            admitted: FastMap::default(),
            series: Vec::new(),
            counters: FastMap::default(),
            histograms: FastMap::default(),
            gauges: FastMap::default(),
            open: FastMap::default(),
            max_open: max_open as usize,
            closed_before_accept: FastMap::default(),
            retransmitted: FastMap::default(),
            handshakes: FastMap::default(),
            ephemeral: ephemeral_ports(),
            warned_full: false,
            opened: Family::default(),
            connect_failures: Family::default(),
            connect_latency: Family::new_with_constructor(latency_histogram),
            lifetime: Family::new_with_constructor(lifetime_histogram),
            closed: Family::default(),
            bytes_lost: Family::default(),
            resets: Family::default(),
            drops: Family::default(),
            reset_reasons: FastMap::default(),
            sent: Family::default(),
            received: Family::default(),
            retransmits: Family::default(),
            open_connections: Family::default(),
            lost: Family::default(),
            filtered: Counter::default(),
            series_dropped: Counter::default(),
            label_sets: Gauge::default(),
            hooks: Family::default(),
        };
        registry.register(
            "connections_opened",
            "Connections opened: active (connect, by result) and passive (accepted)",
            m.opened.clone(),
        );
        registry.register(
            "connect_failures",
            "Failed connects, by errno",
            m.connect_failures.clone(),
        );
        registry.register_with_unit(
            "connect_latency",
            "Time from SYN sent to ESTABLISHED, for successful connects",
            Unit::Seconds,
            m.connect_latency.clone(),
        );
        registry.register_with_unit(
            "connection_lifetime",
            "Time from ESTABLISHED to close, for connections tcptrace saw established",
            Unit::Seconds,
            m.lifetime.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed, by direction, by which side closed, and by how they ended",
            m.closed.clone(),
        );
        registry.register(
            "bytes_lost",
            "Bytes lost when connections ended: unacked (written, never acknowledged by the peer) and unread (received, never read by the application)",
            m.bytes_lost.clone(),
        );
        registry.register("resets", "Resets sent and received, by the kernel's reason (Linux 6.10+; none before, and for resets received)", m.resets.clone());
        registry.register(
            "drops",
            "TCP segments the kernel dropped, by its reason (Linux 5.17+; none before)",
            m.drops.clone(),
        );
        registry.register_with_unit(
            "sent",
            "Application bytes sent and acknowledged, counted when the connection closes",
            Unit::Bytes,
            m.sent.clone(),
        );
        registry.register_with_unit(
            "received",
            "Application bytes received, counted when the connection closes",
            Unit::Bytes,
            m.received.clone(),
        );
        registry.register("retransmitted_segments", "Segments retransmitted, by kind: retransmit, tail_loss_probe, or syn_ack (a listener's SYN-ACK resent before the handshake ended)", m.retransmits.clone());
        registry.register(
            "open_connections",
            "Connections tcptrace saw open that have not closed",
            m.open_connections.clone(),
        );
        registry.register(
            "events_lost",
            "Events the kernel side could not deliver, by reason",
            m.lost.clone(),
        );
        registry.register(
            "events_filtered",
            "Events dropped in the kernel by the command line's filters",
            m.filtered.clone(),
        );
        registry.register(
            "series_dropped",
            "Events not recorded because --max-series label sets exist already",
            m.series_dropped.clone(),
        );
        registry.register(
            "label_sets",
            "Per-connection label sets in use (at most --max-series)",
            m.label_sets.clone(),
        );
        registry.register(
            "hook_info",
            "The hook family in use for each hook (value 1)",
            m.hooks.clone(),
        );
        m
    }

    /// Records which family and kernel target each hook took: `tcptrace_hook_info`.
    pub(crate) fn hook_in_use(&self, hook: &str, family: &str, target: &str) {
        let labels = vec![
            ("hook", hook.to_string()),
            ("family", family.to_string()),
            ("target", target.to_string()),
        ];
        self.hooks.get_or_create(&labels).set(1);
    }

    /// Brings a loss counter up to the kernel's absolute count for `reason`. Created at
    /// zero even when nothing was lost: a panel needs a series to show.
    pub(crate) fn lost_so_far(&self, reason: &'static str, count: u64) {
        let counter = self.lost.get_or_create(&vec![("reason", reason.to_string())]);
        counter.inc_by(count.saturating_sub(counter.get()));
    }

    /// Brings the filtered counter up to the kernel's absolute count.
    pub(crate) fn filtered_so_far(&self, count: u64) {
        self.filtered.inc_by(count.saturating_sub(self.filtered.get()));
    }

    /// The port of the connection's server side, the one that tells services apart: the
    /// remote port of a connection this host opened, the local port of one it accepted;
    /// where the event does not say which (retransmits), the side the connection was seen
    /// opening on, and for one older than tcptrace the local port if only it lies outside
    /// the ephemeral range. None (`ephemeral`) when
    /// that port is a remote one inside the range, so the label stays bounded whatever
    /// ports clients use; a local one is a listening port, and those are few.
    fn service_port(&self, event: &Event) -> Option<u16> {
        let ep = &event.endpoints;
        let local = match &event.detail {
            Detail::Accept => true,
            Detail::Connect { .. } => false,
            Detail::Close(c) if c.direction != Direction::Unknown => {
                c.direction == Direction::Passive
            }
            // A SYN-ACK is a listener's, a SYN a connect's.
            Detail::Retransmit { state, .. } if *state == TcpState::SYN_RECV => true,
            Detail::Retransmit { state, .. } if *state == TcpState::SYN_SENT => false,
            _ => match self.open.get(&event.sock) {
                Some((_, accepted)) => *accepted,
                None => !self.ephemeral.contains(&ep.lport) && self.ephemeral.contains(&ep.rport),
            },
        };
        match local {
            true => Some(ep.lport),
            false => (!self.ephemeral.contains(&ep.rport)).then_some(ep.rport),
        }
    }

    /// What sets `event`'s label set apart, with nothing allocated: the per-event lookup.
    fn series_key(&self, event: &Event) -> SeriesKey {
        let ep = &event.endpoints;
        if matches!(event.detail, Detail::Reset { count: 2.., .. }) {
            return SeriesKey {
                comm: None,
                service_port: None,
                pid: None,
                lport: None,
                raddr: self.extra_labels.contains(&LabelArg::Raddr).then_some(ep.raddr),
                rport: None,
                netns: None,
                storm: true,
            };
        }
        let owner = event.owner.known().then_some(&event.owner);
        let mut key = SeriesKey {
            comm: owner.map(|o| o.comm.clone()).filter(|c| !c.is_empty()),
            service_port: self.service_port(event),
            pid: None,
            lport: None,
            raddr: None,
            rport: None,
            netns: None,
            storm: false,
        };
        for extra in &self.extra_labels {
            match extra {
                LabelArg::Pid => key.pid = owner.map(|o| o.pid),
                LabelArg::Lport => key.lport = Some(ep.lport),
                LabelArg::Raddr => key.raddr = Some(ep.raddr),
                LabelArg::Rport => key.rport = Some(ep.rport),
                LabelArg::Netns => key.netns = (event.netns != 0).then_some(event.netns),
            }
        }
        key
    }

    /// The number of `event`'s label set if it is, or can be, admitted under `--max-series`.
    fn admit(&mut self, event: &Event) -> Option<u32> {
        let key = self.series_key(event);
        if let Some(&id) = self.admitted.get(&key) {
            return Some(id);
        }
        if self.admitted.len() >= self.max_series {
            // What the event stands for: a storm's reset event, each reset it counts.
            let stands_for = match event.detail {
                Detail::Reset { count, .. } => count,
                _ => 1,
            };
            self.series_dropped.inc_by(stands_for);
            if !self.warned_full {
                self.warned_full = true;
                say!(
                    "tcptrace: --max-series {} reached: events with new label values are dropped and counted in tcptrace_series_dropped_total",
                    self.max_series
                );
            }
            return None;
        }
        let id = self.series.len() as u32;
        self.series.push(key.labels(&self.extra_labels));
        self.admitted.insert(key, id);
        self.label_sets.set(self.admitted.len() as i64);
        Some(id)
    }

    /// The handle on `slot`'s counter for label set `series`: one lookup when cached.
    fn counter(&mut self, series: u32, slot: CounterSlot) -> &Counter {
        let family = match slot {
            CounterSlot::Opened { .. } => &self.opened,
            CounterSlot::ConnectFailure { .. } => &self.connect_failures,
            CounterSlot::Closed { .. } => &self.closed,
            CounterSlot::BytesLost { .. } => &self.bytes_lost,
            CounterSlot::Resets { .. } => &self.resets,
            CounterSlot::Drops { .. } => &self.drops,
            CounterSlot::Sent => &self.sent,
            CounterSlot::Received => &self.received,
            CounterSlot::Retransmits { .. } => &self.retransmits,
        };
        let labels = &self.series;
        self.counters.entry((series, slot)).or_insert_with(|| {
            family.get_or_create(&full_labels(labels, series, slot.labels())).clone()
        })
    }

    fn histogram(&mut self, series: u32, slot: HistogramSlot) -> &Histogram {
        let family = match slot {
            HistogramSlot::ConnectLatency => &self.connect_latency,
            HistogramSlot::Lifetime { .. } => &self.lifetime,
        };
        let labels = &self.series;
        self.histograms.entry((series, slot)).or_insert_with(|| {
            family.get_or_create(&full_labels(labels, series, slot.labels())).clone()
        })
    }

    fn open_gauge(&mut self, series: u32, direction: &'static str) -> &Gauge {
        let (family, labels) = (&self.open_connections, &self.series);
        self.gauges.entry((series, direction)).or_insert_with(|| {
            family
                .get_or_create(&full_labels(labels, series, vec![("direction", direction.into())]))
                .clone()
        })
    }

    pub(crate) fn record(&mut self, event: &Event) {
        if let Detail::State { .. } = &event.detail {
            return; // counted in the kernel: see `states`
        }
        let Some(series) = self.admit(event) else { return };
        match &event.detail {
            Detail::Connect { latency, result: ConnectResult::Ok, .. } => {
                self.counter(series, CounterSlot::Opened { direction: "active", result: "ok" })
                    .inc();
                self.histogram(series, HistogramSlot::ConnectLatency)
                    .observe(latency.as_secs_f64());
                let resent = self.handshakes.remove(&Handshake::Connect(event.sock));
                self.opening(event.sock, series, "active", resent.map(|r| r.0));
            }
            Detail::Connect { result: ConnectResult::Failed(errno), .. } => {
                self.counter(series, CounterSlot::Opened { direction: "active", result: "failed" })
                    .inc();
                self.counter(series, CounterSlot::ConnectFailure { errno: *errno }).inc();
                self.handshakes.remove(&Handshake::Connect(event.sock));
            }
            Detail::Accept => {
                self.counter(series, CounterSlot::Opened { direction: "passive", result: "ok" })
                    .inc();
                let resent = self.handshakes.remove(&Handshake::request(&event.endpoints));
                let closed_at = self.closed_before_accept.remove(&event.sock);
                if closed_at.is_none_or(|at| at.elapsed() >= CLOSED_BEFORE_ACCEPT_KEPT) {
                    self.opening(event.sock, series, "passive", resent.map(|r| r.0));
                }
            }
            Detail::Close(c) => {
                let direction = match c.direction {
                    Direction::Active => "active",
                    Direction::Passive => "passive",
                    Direction::Unknown => "unknown",
                };
                let closed_by = match c.closed_by {
                    ClosedBy::Local => "local",
                    ClosedBy::Remote => "remote",
                    ClosedBy::Unknown => "unknown",
                };
                self.counter(
                    series,
                    CounterSlot::Closed { direction, closed_by, end: c.ending.end.name() },
                )
                .inc();
                for (kind, bytes) in
                    [("unacked", c.ending.unacked_bytes), ("unread", c.ending.unread_bytes)]
                {
                    // Created at zero too: a panel needs a series to show.
                    self.counter(series, CounterSlot::BytesLost { kind })
                        .inc_by(bytes.unwrap_or(0));
                }
                self.counter(series, CounterSlot::Sent).inc_by(c.bytes_sent);
                self.counter(series, CounterSlot::Received).inc_by(c.bytes_received);
                if let Some(lifetime) = c.lifetime {
                    self.histogram(series, HistogramSlot::Lifetime { direction })
                        .observe(lifetime.as_secs_f64());
                }
                self.retransmitted.remove(&event.sock);
                self.handshakes.remove(&Handshake::Connect(event.sock));
                match self.open.remove(&event.sock) {
                    Some((gauge, _)) => {
                        gauge.dec();
                    }
                    None if c.direction == Direction::Passive && !event.owner.known() => {
                        self.closed_unaccepted(event.sock)
                    }
                    None => {}
                }
            }
            // A listener's SYN-ACK resent for a half-open connection: one segment, of its
            // own kind. Counted from the first seen: a request has no event of its start.
            Detail::Retransmit { state, total_retrans, .. }
                if *state == TcpState::SYN_RECV && !event.owner.known() =>
            {
                let segments = self.handshake_retransmitted(
                    Handshake::request(&event.endpoints),
                    *total_retrans,
                    None,
                );
                self.counter(series, CounterSlot::Retransmits { kind: "syn_ack" }).inc_by(segments);
            }
            // A connect's SYN resent: counted from 0 where tcptrace saw the connect begin
            // (its owner known), as a resend that failed to leave the host counts in
            // `total_retrans` but has no event.
            Detail::Retransmit { state, total_retrans, .. } if *state == TcpState::SYN_SENT => {
                let from = event.owner.known().then_some(0);
                let segments = self.handshake_retransmitted(
                    Handshake::Connect(event.sock),
                    *total_retrans,
                    from,
                );
                self.counter(series, CounterSlot::Retransmits { kind: "retransmit" })
                    .inc_by(segments);
            }
            Detail::Retransmit { tail_loss_probe, total_retrans, .. } => {
                let kind = if *tail_loss_probe { "tail_loss_probe" } else { "retransmit" };
                let segments = self.segments_retransmitted(event.sock, *total_retrans);
                self.counter(series, CounterSlot::Retransmits { kind }).inc_by(segments);
            }
            Detail::Reset { sent, reason, count, .. } => {
                let reason = match reason {
                    Some(name) => self.reset_reason(name),
                    None => "none",
                };
                self.counter(
                    series,
                    CounterSlot::Resets {
                        direction: if *sent { "sent" } else { "received" },
                        reason,
                    },
                )
                .inc_by(*count);
            }
            Detail::Drop { reason, count, .. } => {
                let reason = match reason {
                    Some(name) => self.reset_reason(name),
                    None => "none",
                };
                self.counter(series, CounterSlot::Drops { reason }).inc_by(*count);
            }
            Detail::State { .. } => {}
        }
    }

    /// `name` as a `&'static str`, kept once: the kernel's reason names (of resets and
    /// drops) are a fixed set.
    fn reset_reason(&mut self, name: &str) -> &'static str {
        if let Some(kept) = self.reset_reasons.get(name) {
            return kept;
        }
        let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
        self.reset_reasons.insert(name.to_owned(), kept);
        kept
    }

    /// Segments one retransmit event stands for: the growth of the connection's
    /// `total_retrans` since its last event, or since it opened (from 0) when tcptrace saw
    /// it open. A connection older than tcptrace counts 1 for its first event: what it
    /// retransmitted before is not this exporter's to count.
    fn segments_retransmitted(&mut self, sock: u64, total_retrans: u32) -> u64 {
        let before = match self.retransmitted.get(&sock) {
            Some(last) => Some(*last),
            None if self.open.contains_key(&sock) => Some(0),
            None => None,
        };
        if before.is_some() || self.retransmitted.len() < self.max_open {
            self.retransmitted.insert(sock, total_retrans);
        }
        growth(before, total_retrans)
    }

    /// Segments a handshake's retransmit event stands for: the growth of `total_retrans`
    /// since its last event, else since `from` (None: 1, as for a connection older than
    /// tcptrace). Remembered for the connection's open (see `handshakes`), in a table
    /// bounded as the open one is, rid of handshakes that never ended once it fills.
    fn handshake_retransmitted(
        &mut self,
        key: Handshake,
        total_retrans: u32,
        from: Option<u32>,
    ) -> u64 {
        let now = std::time::Instant::now();
        let before = self.handshakes.get(&key).map(|h| h.0).or(from);
        insert_bounded(&mut self.handshakes, self.max_open, key, (total_retrans, now), |h| {
            now.duration_since(h.1) >= HANDSHAKE_KEPT
        });
        growth(before, total_retrans)
    }

    /// Remembers a passive connection that closed before any accept (see
    /// `closed_before_accept`); the table is bounded as the open one is.
    fn closed_unaccepted(&mut self, sock: u64) {
        let now = std::time::Instant::now();
        insert_bounded(&mut self.closed_before_accept, self.max_open, sock, now, |at| {
            now.duration_since(*at) >= CLOSED_BEFORE_ACCEPT_KEPT
        });
    }

    /// A connection seen opening: counted open until its close event. Its retransmits
    /// count from what its handshake resent (`resent`, already counted), else from 0, even
    /// where the socket's last connection left its count (its close lost).
    fn opening(&mut self, sock: u64, series: u32, direction: &'static str, resent: Option<u32>) {
        match resent {
            Some(total) => self.retransmitted.insert(sock, total),
            None => self.retransmitted.remove(&sock),
        };
        if self.open.len() >= self.max_open {
            return;
        }
        let gauge = self.open_gauge(series, direction).clone();
        gauge.inc();
        if let Some((stale, _)) = self.open.insert(sock, (gauge, direction == "passive")) {
            // The same socket opened again: its close was lost. Count it once.
            stale.dec();
        }
    }
}

/// Segments a retransmit event stands for, from the `total_retrans` it carries and the
/// one before it (`None`: unknown, as for a connection older than tcptrace: 1).
fn growth(before: Option<u32>, total_retrans: u32) -> u64 {
    before.map_or(1, |b| u64::from(total_retrans.saturating_sub(b)).max(1))
}

/// Inserts into a table bounded at `max` entries (the exporter's memory must not grow
/// with what it is told): when it is full and `key` new, entries `stale` says are done
/// with go first; a new key that still finds no room is not kept.
fn insert_bounded<K: Eq + std::hash::Hash, V>(
    table: &mut FastMap<K, V>,
    max: usize,
    key: K,
    value: V,
    stale: impl Fn(&V) -> bool,
) {
    if table.len() >= max && !table.contains_key(&key) {
        table.retain(|_, v| !stale(v));
    }
    if table.len() < max || table.contains_key(&key) {
        table.insert(key, value);
    }
}

#[cfg(test)]
mod tests;
