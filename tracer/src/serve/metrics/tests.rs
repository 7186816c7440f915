//! Unit tests of `metrics`: labels, service ports, open connections, retransmit counts
//! and bounded tables, each from events built by hand.

use super::*;

#[test]
fn a_label_asked_for_twice_is_exported_once() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(
        &mut registry,
        vec![LabelArg::Pid, LabelArg::Rport, LabelArg::Pid, LabelArg::Netns],
        10,
        10,
    );
    metrics.record(&crate::printer::tests::one_of_each()[0]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let opened = text
        .lines()
        .find(|l| l.starts_with("tcptrace_connections_opened_total{"))
        .expect("an opened series");
    assert_eq!(opened.matches("pid=").count(), 1, "{opened}");
    assert!(
        opened.contains(r#"pid="4242""#)
            && opened.contains(r#"rport="8080""#)
            && opened.contains(r#"netns="4026531840""#),
        "{opened}"
    );
}

/// The service port: the listening side's, whichever side this host is.
#[test]
fn service_port_is_the_server_sides_port() {
    let mut registry = Registry::default();
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    metrics.ephemeral = 32768..=60999;
    let events = crate::printer::tests::one_of_each();
    let with_ports = |i: usize, lport: u16, rport: u16| {
        let mut e = events[i].clone();
        e.endpoints.lport = lport;
        e.endpoints.rport = rport;
        metrics.service_port(&e)
    };
    // 0: a connect; 2: an accept; 3: an active close; 5: a retransmit (no direction).
    assert_eq!(with_ports(0, 40000, 5432), Some(5432));
    assert_eq!(with_ports(0, 40000, 45000), None, "a remote port in the ephemeral range");
    assert_eq!(with_ports(2, 8080, 45000), Some(8080));
    assert_eq!(with_ports(2, 45000, 45001), Some(45000), "a listening port, even in the range");
    assert_eq!(with_ports(3, 40000, 443), Some(443));
    assert_eq!(with_ports(5, 443, 50000), Some(443), "local port outside the range, remote inside");
    assert_eq!(with_ports(5, 50000, 6379), Some(6379));
    assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
    assert_eq!(parse_port_range("9 1"), None);
    assert_eq!(parse_port_range(""), None);
}

/// A retransmit says nothing of the connection's direction: where the connection was
/// seen opening, its service port is that of its accept or connect, so every series of
/// one connection has one service port (here a server on a port in the ephemeral range).
#[test]
fn a_retransmit_has_the_service_port_its_connection_opened_with() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    metrics.ephemeral = 32768..=60999;
    let ports = |e: &mut Event| {
        e.endpoints.lport = 41_040;
        e.endpoints.rport = 50_000;
    };
    metrics.record(&event_of(2, 7, ports)); // accepted
    assert_eq!(metrics.service_port(&event_of(5, 7, ports)), Some(41_040));
    assert_eq!(
        metrics.service_port(&event_of(5, 8, ports)),
        None,
        "not seen opening: by its ports"
    );
    metrics.record(&event_of(0, 8, ports)); // connected
    assert_eq!(
        metrics.service_port(&event_of(5, 8, ports)),
        None,
        "a connect to an ephemeral-range port"
    );
}

/// Two sockets with the same addresses and ports (two network namespaces): both are
/// open until each closes.
#[test]
fn open_connections_are_counted_by_socket_not_by_addresses() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    let open = |r: &Registry| sum_of(r, "tcptrace_open_connections{");
    // 0: a connect; 3: its close (active).
    metrics.record(&event_of(0, 1, |_| {}));
    metrics.record(&event_of(0, 2, |_| {}));
    assert_eq!(open(&registry), 2.0);
    metrics.record(&event_of(3, 1, |_| {}));
    assert_eq!(open(&registry), 1.0);
    metrics.record(&event_of(3, 2, |_| {}));
    assert_eq!(open(&registry), 0.0);
}

/// The sum of every sample of the metric whose lines start with `prefix`.
fn sum_of(registry: &Registry, prefix: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn event_of(kind: usize, sock: u64, change: impl FnOnce(&mut Event)) -> Event {
    let mut e = crate::printer::tests::one_of_each()[kind].clone();
    e.sock = sock;
    change(&mut e);
    e
}

fn retransmit(sock: u64, total: u32) -> Event {
    event_of(5, sock, |e| {
        e.detail = Detail::Retransmit {
            state: crate::event::TcpState(1),
            total_retrans: total,
            tail_loss_probe: false,
        }
    })
}

/// One retransmit event is one skb, which may hold several segments (GSO): the counter
/// adds what the connection's `total_retrans` grew by, from 0 for a connection seen
/// opening, and 1 for the first event of one older than tcptrace.
#[test]
fn retransmitted_segments_follow_total_retrans() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    let segments = |r: &Registry| sum_of(r, "tcptrace_retransmitted_segments_total{");
    metrics.record(&event_of(0, 1, |_| {})); // connect: seen opening
    metrics.record(&retransmit(1, 5));
    assert_eq!(segments(&registry), 5.0);
    metrics.record(&retransmit(1, 7));
    assert_eq!(segments(&registry), 7.0);
    metrics.record(&retransmit(2, 9)); // older than tcptrace
    assert_eq!(segments(&registry), 8.0);
    metrics.record(&retransmit(2, 12));
    assert_eq!(segments(&registry), 11.0);
    // After its close, a socket's address is a new connection's.
    metrics.record(&event_of(3, 1, |_| {}));
    metrics.record(&retransmit(1, 4));
    assert_eq!(segments(&registry), 12.0);
    // So is it when the old one's close was lost: a connect or accept starts from 0.
    metrics.record(&event_of(0, 2, |_| {}));
    metrics.record(&retransmit(2, 3));
    assert_eq!(segments(&registry), 15.0);
    metrics.record(&event_of(2, 1, |_| {}));
    metrics.record(&retransmit(1, 2));
    assert_eq!(segments(&registry), 17.0);
}

/// A listener's SYN-ACK resends are one segment each, of their own kind, under the
/// listener's port; the connection they become (its accept shows the client as
/// ::ffff:a.b.c.d) counts on from them, as its `total_retrans` holds them.
#[test]
fn syn_ack_resends_count_once_and_the_connection_counts_on_from_them() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    let syn_ack = |total| {
        event_of(5, 9, |e| {
            e.owner =
                crate::event::Owner { pid: 0, tid: 0, uid: 0, comm: crate::event::Comm::default() };
            e.endpoints.lport = 40_000; // inside the ephemeral range, still the listener's
            e.endpoints.rport = 51_234;
            e.detail = Detail::Retransmit {
                state: TcpState::SYN_RECV,
                total_retrans: total,
                tail_loss_probe: false,
            };
        })
    };
    metrics.record(&syn_ack(1));
    metrics.record(&syn_ack(2));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let lines: Vec<&str> =
        text.lines().filter(|l| l.starts_with("tcptrace_retransmitted_segments_total{")).collect();
    assert!(
        lines.len() == 1
            && lines[0].contains("kind=\"syn_ack\"")
            && lines[0].contains("service_port=\"40000\"")
            && lines[0].ends_with(" 2"),
        "{lines:?}"
    );
    // The accepted socket is another address; its `total_retrans` starts at 2.
    let mapped = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v4) => std::net::IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    metrics.record(&event_of(2, 10, |e| {
        e.endpoints = syn_ack(1).endpoints;
        e.endpoints.laddr = mapped(e.endpoints.laddr);
        e.endpoints.raddr = mapped(e.endpoints.raddr);
    }));
    metrics.record(&retransmit(10, 3));
    assert_eq!(sum_of(&registry, "tcptrace_retransmitted_segments_total{"), 3.0);
    assert!(metrics.handshakes.is_empty());
}

/// A connect's resent SYNs count from 0 where tcptrace saw the connect begin, so a
/// resend that failed to leave the host (no event, but in `total_retrans`) counts; the
/// connection counts on from them; one older than tcptrace counts 1 for its first.
#[test]
fn resent_syns_count_from_the_connects_start_and_the_connection_counts_on() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    let segments = |r: &Registry| sum_of(r, "tcptrace_retransmitted_segments_total{");
    let syn = |sock, total, owner_known: bool| {
        event_of(5, sock, |e| {
            if !owner_known {
                e.owner = crate::event::Owner {
                    pid: 0,
                    tid: 0,
                    uid: 0,
                    comm: crate::event::Comm::default(),
                };
            }
            e.detail = Detail::Retransmit {
                state: TcpState::SYN_SENT,
                total_retrans: total,
                tail_loss_probe: false,
            };
        })
    };
    metrics.record(&syn(1, 2, true));
    assert_eq!(segments(&registry), 2.0);
    metrics.record(&syn(1, 3, true));
    assert_eq!(segments(&registry), 3.0);
    metrics.record(&event_of(0, 1, |_| {})); // connected
    metrics.record(&retransmit(1, 4));
    assert_eq!(segments(&registry), 4.0);
    metrics.record(&syn(2, 5, false)); // connecting before tcptrace started
    assert_eq!(segments(&registry), 5.0);
    metrics.record(&event_of(1, 2, |_| {})); // and failed
    metrics.record(&syn(1, 1, true)); // a close lost: the next connect starts anew
    assert_eq!(segments(&registry), 6.0);
    metrics.record(&event_of(3, 1, |_| {}));
    assert!(metrics.handshakes.is_empty() && metrics.retransmitted.is_empty());
}

/// A connection the client reset while it waited in the accept queue closes (owner
/// unknown) before the server accepts it: the accept must not count it open.
#[test]
fn an_accept_after_its_close_leaves_nothing_open() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    let open = |r: &Registry| sum_of(r, "tcptrace_open_connections{");
    let passive_close = |sock: u64| {
        event_of(3, sock, |e| {
            e.owner =
                crate::event::Owner { pid: 0, tid: 0, uid: 0, comm: crate::event::Comm::default() };
            if let Detail::Close(c) = &mut e.detail {
                c.direction = Direction::Passive;
            }
        })
    };
    metrics.record(&passive_close(1));
    metrics.record(&event_of(2, 1, |_| {}));
    assert_eq!(open(&registry), 0.0);
    assert_eq!(sum_of(&registry, "tcptrace_connections_opened_total{"), 1.0);
    // The next accept of that socket is a new connection's.
    metrics.record(&event_of(2, 1, |_| {}));
    assert_eq!(open(&registry), 1.0);
}

/// Bucket bounds are the round numbers a query names (`le="0.001"`), not float noise.
#[test]
fn bounded_tables_prune_stale_entries_when_full_and_never_grow_past_their_bound() {
    let mut table = FastMap::default();
    let stale = |v: &u32| *v == 0;
    insert_bounded(&mut table, 2, 'a', 0, stale);
    insert_bounded(&mut table, 2, 'b', 1, stale);
    insert_bounded(&mut table, 2, 'b', 2, stale);
    assert_eq!(table.len(), 2);
    // Full, a new key: the stale 'a' goes, and 'c' takes its place.
    insert_bounded(&mut table, 2, 'c', 3, stale);
    assert_eq!((table.get(&'a'), table.get(&'b'), table.get(&'c')), (None, Some(&2), Some(&3)));
    // Full, nothing stale: a new key is not kept, a known one is updated.
    insert_bounded(&mut table, 2, 'd', 4, stale);
    insert_bounded(&mut table, 2, 'c', 5, stale);
    assert_eq!((table.len(), table.get(&'d'), table.get(&'c')), (2, None, Some(&5)));
}

#[test]
fn histogram_bounds_are_round() {
    let mut registry = Registry::with_prefix("tcptrace");
    let mut metrics = Metrics::new(&mut registry, Vec::new(), 10, 10);
    metrics.record(&event_of(0, 1, |_| {}));
    metrics.record(&event_of(3, 1, |_| {}));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let bounds: Vec<&str> =
        text.lines().filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()).collect();
    assert!(bounds.len() > 30, "{text}");
    for bound in ["1e-5", "0.0001", "0.001", "1.0", "10.0", "3600.0"] {
        assert!(
            bounds.iter().any(|b| b.parse::<f64>().ok() == bound.parse::<f64>().ok()),
            "{bound}: {bounds:?}"
        );
    }
    // Noise shows as a long run of zeros or nines before a stray digit.
    assert!(
        bounds.iter().all(|b| !b.trim_end_matches('0').contains("0000000") && !b.contains("9999")),
        "{bounds:?}"
    );
}
