//! Whitespace-separated raw values for grep, awk and sort: nine fixed columns, one token
//! each, then the event's details as `key=value` tokens with raw numbers.

use std::io::{self, Write};

use super::{closed_by_text, column_safe, direction_text, result_text};
use crate::event::{BytesSource, Detail, Event};

pub(super) fn header<W: Write>(out: &mut W) -> io::Result<()> {
    writeln!(out, "TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT DETAIL")
}

fn detail(d: &Detail) -> String {
    match d {
        Detail::Connect { latency, result } => format!("result={} lat_ns={}", result_text(*result), latency.as_nanos()),
        Detail::Accept => "-".into(),
        Detail::Close(c) => format!(
            "dir={} closed_by={} lifetime_ns={} tx_bytes={} rx_bytes={} retrans={} srtt_us={} bytes_from={}",
            direction_text(c.direction),
            closed_by_text(c.closed_by),
            c.lifetime.map_or(0, |l| l.as_nanos()),
            c.bytes_sent,
            c.bytes_received,
            c.total_retrans,
            c.srtt_us,
            match c.bytes_source {
                BytesSource::Socket => "socket",
                BytesSource::Calls => "calls",
            }
        ),
        Detail::State { old, new, in_old } => {
            format!("old={} new={} in_old_ns={}", old.name(), new.name(), in_old.map_or(0, |d| d.as_nanos()))
        }
        Detail::Retransmit { state, total_retrans, tail_loss_probe } => {
            format!("state={} total_retrans={total_retrans} tlp={}", state.name(), u8::from(*tail_loss_probe))
        }
    }
}

/// `since`: print seconds since then (`-T`) instead of Unix time.
pub(super) fn event<W: Write>(out: &mut W, e: &Event, since: Option<u64>) -> io::Result<()> {
    let time = since.map_or_else(|| format!("{}.{:09}", e.time_ns / 1_000_000_000, e.time_ns % 1_000_000_000), |s| super::relative(e.time_ns, s, 9));
    let (pid, comm) = if e.owner.known() { (e.owner.pid.to_string(), column_safe(&e.owner.comm)) } else { ("-".into(), "-".into()) };
    let ep = &e.endpoints;
    writeln!(
        out,
        "{} {} {} {} {} {} {} {} {} {}",
        time,
        e.kind(),
        pid,
        comm,
        ep.ip_version(),
        ep.laddr,
        ep.lport,
        ep.raddr,
        ep.rport,
        detail(&e.detail)
    )
}
