//! NDJSON: one object per event, a `type` per kind, numbers as numbers, addresses as
//! strings, `null` for what is not known. Field names are stable once documented in
//! docs/events.md (a test checks the two agree).

use std::io::{self, Write};

use serde::Serialize;

use super::{closed_by_text, direction_text};
use crate::event::{errno_name, BytesSource, ConnectResult, Detail, Event};

/// Fields every event has.
#[derive(Serialize)]
struct Common<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    time_ns: u64,
    pid: Option<u32>,
    tid: Option<u32>,
    uid: Option<u32>,
    comm: Option<&'a str>,
    ip: u8,
    laddr: String,
    lport: u16,
    raddr: String,
    rport: u16,
    netns: Option<u32>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Fields {
    Connect {
        latency_ns: u128,
        result: &'static str,
        errno: Option<u32>,
        error: Option<&'static str>,
        end: Option<&'static str>,
        timeout: Option<&'static str>,
        syns_sent: u32,
        syns_dropped: Option<u32>,
        syn_drop_reason: Option<String>,
    },
    Accept {},
    Close {
        direction: &'static str,
        closed_by: &'static str,
        lifetime_ns: Option<u128>,
        bytes_sent: u64,
        bytes_received: u64,
        total_retrans: u32,
        srtt_us: u32,
        bytes_from: &'static str,
        end: &'static str,
        errno: Option<u32>,
        error: Option<&'static str>,
        reason: Option<String>,
        reason_inferred: Option<bool>,
        timeout: Option<&'static str>,
        bytes_written: Option<u64>,
        bytes_read: Option<u64>,
        bytes_unacked: Option<u64>,
        bytes_unread: Option<u64>,
    },
    State {
        old_state: String,
        new_state: String,
        in_old_state_ns: Option<u128>,
    },
    Retransmit {
        state: String,
        total_retrans: u32,
        tail_loss_probe: bool,
    },
    Reset {
        direction: &'static str,
        state: Option<String>,
        reason: Option<String>,
        count: u64,
    },
    Drop {
        direction: &'static str,
        state: Option<String>,
        reason: Option<String>,
        count: u64,
        location: Option<String>,
    },
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    #[serde(flatten)]
    fields: Fields,
}

fn fields(d: &Detail) -> Fields {
    match d {
        Detail::Connect { latency, result, syns_sent, syns_dropped, syn_drop_reason } => {
            let (end, timeout) = result.end_names();
            let (result, errno) = match *result {
                ConnectResult::Ok => ("ok", None),
                ConnectResult::Failed(0) => ("failed", None),
                ConnectResult::Failed(n) => ("failed", Some(n)),
            };
            Fields::Connect {
                latency_ns: latency.as_nanos(),
                result,
                errno,
                error: errno.and_then(errno_name),
                end,
                timeout,
                syns_sent: *syns_sent,
                syns_dropped: *syns_dropped,
                syn_drop_reason: syn_drop_reason.clone(),
            }
        }
        Detail::Accept => Fields::Accept {},
        Detail::Close(c) => Fields::Close {
            direction: direction_text(c.direction),
            closed_by: closed_by_text(c.closed_by),
            lifetime_ns: c.lifetime.map(|l| l.as_nanos()),
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            total_retrans: c.total_retrans,
            srtt_us: c.srtt_us,
            bytes_from: match c.bytes_source {
                BytesSource::Socket => "socket",
                BytesSource::Calls => "calls",
            },
            end: c.ending.end.name(),
            errno: c.ending.errno,
            error: c.ending.errno.and_then(errno_name),
            reason: c.ending.reason.as_ref().map(|r| r.name.to_string()),
            reason_inferred: c.ending.reason.as_ref().map(|r| r.inferred),
            timeout: c.ending.timeout.map(crate::end::Timeout::name),
            bytes_written: c.bytes_written(),
            bytes_read: c.bytes_read(),
            bytes_unacked: c.ending.unacked_bytes,
            bytes_unread: c.ending.unread_bytes,
        },
        Detail::State { old, new, in_old } => Fields::State {
            old_state: old.name(),
            new_state: new.name(),
            in_old_state_ns: in_old.map(|d| d.as_nanos()),
        },
        Detail::Retransmit { state, total_retrans, tail_loss_probe } => Fields::Retransmit {
            state: state.name(),
            total_retrans: *total_retrans,
            tail_loss_probe: *tail_loss_probe,
        },
        Detail::Drop { outgoing, state, reason, count, location } => Fields::Drop {
            direction: if *outgoing { "out" } else { "in" },
            state: state.map(crate::event::TcpState::name),
            reason: reason.clone(),
            count: *count,
            location: location.clone(),
        },
        Detail::Reset { sent, state, reason, count } => Fields::Reset {
            direction: if *sent { "sent" } else { "received" },
            state: state.map(crate::event::TcpState::name),
            reason: reason.clone(),
            count: *count,
        },
    }
}

pub(super) fn event<W: Write>(out: &mut W, e: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &row(e))?;
    out.write_all(b"\n")
}

/// The event as a JSON value (for the CSV printer, which picks columns by name).
pub(super) fn value(e: &Event) -> serde_json::Value {
    serde_json::to_value(row(e)).unwrap_or_default()
}

fn row(e: &Event) -> Row<'_> {
    let known = e.owner.known();
    let ep = &e.endpoints;
    Row {
        common: Common {
            kind: e.kind(),
            // Always nine fraction digits: a fixed width sorts as text and cuts with `cut`.
            time: jiff::Timestamp::from_nanosecond(i128::from(e.time_ns))
                .map_or_else(|_| String::new(), |t| format!("{t:.9}")),
            time_ns: e.time_ns,
            pid: known.then_some(e.owner.pid),
            tid: known.then_some(e.owner.tid),
            uid: known.then_some(e.owner.uid),
            comm: known.then_some(e.owner.comm.as_str()),
            ip: ep.ip_version(),
            laddr: ep.laddr.to_string(),
            lport: ep.lport,
            raddr: ep.raddr.to_string(),
            rport: ep.rport,
            netns: (e.netns != 0).then_some(e.netns),
        },
        fields: fields(&e.detail),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, net::IpAddr, time::Duration};

    use super::*;
    use crate::event::{BytesSource, CloseInfo, ClosedBy, Direction, Endpoints, Owner, TcpState};

    /// `field` names listed in docs/events.md, per section (`Common fields` or a type).
    fn documented() -> Vec<(String, BTreeSet<String>)> {
        let doc = include_str!("../../../docs/events.md");
        let mut sections: Vec<(String, BTreeSet<String>)> = Vec::new();
        for line in doc.lines() {
            if let Some(title) = line.strip_prefix("## ") {
                sections.push((title.trim_matches('`').to_string(), BTreeSet::new()));
            } else if let (Some(field), Some(section)) =
                (line.strip_prefix("| `"), sections.last_mut())
            {
                if let Some(name) = field.split('`').next() {
                    section.1.insert(name.to_string());
                }
            }
        }
        sections
    }

    fn sample(detail: Detail) -> Event {
        let local: IpAddr = "127.0.0.1".parse().expect("addr");
        Event {
            time_ns: 1,
            sock: 1,
            owner: Owner { pid: 1, tid: 1, uid: 0, comm: "x".into() },
            endpoints: Endpoints { laddr: local, lport: 1, raddr: local, rport: 2 },
            netns: 4_026_531_840,
            detail,
        }
    }

    fn keys(event: &Event) -> BTreeSet<String> {
        let mut out = Vec::new();
        super::event(&mut out, event).expect("serializes");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        value.as_object().expect("an object").keys().cloned().collect()
    }

    #[test]
    fn docs_and_serializer_agree_field_for_field() {
        let docs = documented();
        let section = |name: &str| {
            docs.iter().find(|(t, _)| t == name).map(|(_, f)| f.clone()).unwrap_or_default()
        };
        let common = section("Common fields");
        assert!(common.contains("type") && common.contains("pid"), "{common:?}");
        let close = CloseInfo {
            lifetime: None,
            bytes_sent: 0,
            bytes_received: 0,
            total_retrans: 0,
            srtt_us: 0,
            direction: Direction::Unknown,
            closed_by: ClosedBy::Unknown,
            bytes_source: BytesSource::Socket,
            ending: crate::end::Ending::orderly(),
        };
        let all = [
            sample(Detail::Connect {
                latency: Duration::ZERO,
                result: ConnectResult::Ok,
                syns_sent: 1,
                syns_dropped: None,
                syn_drop_reason: None,
            }),
            sample(Detail::Accept),
            sample(Detail::Close(close)),
            sample(Detail::State { old: TcpState(1), new: TcpState(2), in_old: None }),
            sample(Detail::Retransmit {
                state: TcpState(1),
                total_retrans: 1,
                tail_loss_probe: true,
            }),
            sample(Detail::Reset {
                sent: true,
                state: None,
                reason: Some("NO_SOCKET".into()),
                count: 1,
            }),
            sample(Detail::Drop {
                outgoing: false,
                state: None,
                reason: Some("NETFILTER_DROP".into()),
                count: 3,
                location: None,
            }),
        ];
        for event in &all {
            let mut want = common.clone();
            want.extend(section(event.kind()));
            assert_eq!(keys(event), want, "docs/events.md vs the `{}` serializer", event.kind());
        }
    }
}
