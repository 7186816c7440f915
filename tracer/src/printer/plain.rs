//! Whitespace-separated raw values for grep, awk and sort: nine fixed columns, one token
//! each, then the event's details as `key=value` tokens with raw numbers; `-` wherever a
//! value is unknown.

use std::{
    io::{self, Write},
    net::IpAddr,
};

use super::{closed_by_text, column_safe, direction_text, result_text};
use crate::event::{BytesSource, Detail, Event};

pub(super) fn header<W: Write>(out: &mut W) -> io::Result<()> {
    writeln!(out, "TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT DETAIL")
}

/// Writes an integer: `itoa` skips core::fmt's padding machinery, which showed as a
/// fifth of the tracer's CPU time under connection churn.
fn num<W: Write>(out: &mut W, n: impl itoa::Integer) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(n).as_bytes())
}

/// `key=` then the number.
fn field<W: Write>(out: &mut W, key: &str, n: impl itoa::Integer) -> io::Result<()> {
    out.write_all(key.as_bytes())?;
    num(out, n)
}

/// `key=` then the nanoseconds, or `-` when unknown (as the PID and COMM columns show it):
/// a 0 would read as a real, instant duration.
fn nanos_field<W: Write>(out: &mut W, key: &str, d: Option<std::time::Duration>) -> io::Result<()> {
    match d {
        Some(d) => field(out, key, d.as_nanos()),
        None => {
            out.write_all(key.as_bytes())?;
            out.write_all(b"-")
        }
    }
}

/// `key=` then the number, or `-` when unknown.
fn opt_field<W: Write>(out: &mut W, key: &str, n: Option<u64>) -> io::Result<()> {
    match n {
        Some(n) => field(out, key, n),
        None => text_field(out, key, None),
    }
}

/// `key=` then the text, or `-` when there is none.
fn text_field<W: Write>(out: &mut W, key: &str, text: Option<&str>) -> io::Result<()> {
    out.write_all(key.as_bytes())?;
    out.write_all(text.unwrap_or("-").as_bytes())
}

fn addr<W: Write>(out: &mut W, ip: IpAddr) -> io::Result<()> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            num(out, a)?;
            for octet in [b, c, d] {
                out.write_all(b".")?;
                num(out, octet)?;
            }
            Ok(())
        }
        IpAddr::V6(v6) => write!(out, "{v6}"),
    }
}

/// The `key=value` tokens, written straight to `out`: this runs once per event, and at
/// 100,000 events a second an allocation or a format call per field shows.
fn detail<W: Write>(out: &mut W, d: &Detail) -> io::Result<()> {
    match d {
        Detail::Connect { latency, result, syns_sent, syns_dropped, syn_drop_reason } => {
            out.write_all(b"result=")?;
            out.write_all(result_text(*result).as_bytes())?;
            field(out, " lat_ns=", latency.as_nanos())?;
            let (end, timeout) = result.end_names();
            text_field(out, " end=", end)?;
            text_field(out, " timeout=", timeout)?;
            field(out, " syns=", *syns_sent)?;
            match syns_dropped {
                Some(n) => field(out, " syns_dropped=", *n)?,
                None => out.write_all(b" syns_dropped=-")?,
            }
            text_field(out, " drop_reason=", syn_drop_reason.as_deref())
        }
        Detail::Accept => out.write_all(b"-"),
        Detail::Close(c) => {
            out.write_all(b"dir=")?;
            out.write_all(direction_text(c.direction).as_bytes())?;
            out.write_all(b" closed_by=")?;
            out.write_all(closed_by_text(c.closed_by).as_bytes())?;
            nanos_field(out, " lifetime_ns=", c.lifetime)?;
            field(out, " tx_bytes=", c.bytes_sent)?;
            field(out, " rx_bytes=", c.bytes_received)?;
            field(out, " retrans=", c.total_retrans)?;
            field(out, " srtt_us=", c.srtt_us)?;
            out.write_all(match c.bytes_source {
                BytesSource::Socket => b" bytes_from=socket",
                BytesSource::Calls => b" bytes_from=calls",
            })?;
            let ending = &c.ending;
            text_field(out, " end=", Some(ending.end.name()))?;
            text_field(out, " err=", ending.errno.and_then(crate::event::errno_name))?;
            text_field(out, " reason=", ending.reason.as_ref().map(|r| &*r.name))?;
            text_field(
                out,
                " inferred=",
                ending.reason.as_ref().map(|r| if r.inferred { "1" } else { "0" }),
            )?;
            text_field(out, " timeout=", ending.timeout.map(crate::end::Timeout::name))?;
            opt_field(out, " written=", c.bytes_written())?;
            opt_field(out, " read=", c.bytes_read())?;
            opt_field(out, " unacked=", ending.unacked_bytes)?;
            opt_field(out, " unread=", ending.unread_bytes)
        }
        Detail::State { old, new, in_old } => {
            write!(out, "old={} new={}", old.name(), new.name())?;
            nanos_field(out, " in_old_ns=", *in_old)
        }
        Detail::Retransmit { state, total_retrans, tail_loss_probe } => {
            write!(out, "state={}", state.name())?;
            field(out, " total_retrans=", *total_retrans)?;
            field(out, " tlp=", u8::from(*tail_loss_probe))
        }
        Detail::Drop { outgoing, state, reason, count, location } => {
            out.write_all(if *outgoing { b"dir=out" } else { b"dir=in" })?;
            text_field(out, " state=", state.map(crate::event::TcpState::name).as_deref())?;
            text_field(out, " reason=", reason.as_deref())?;
            field(out, " count=", *count)?;
            text_field(out, " at=", location.as_deref())
        }
        Detail::Reset { sent, state, reason, count } => {
            out.write_all(if *sent { b"dir=sent" } else { b"dir=received" })?;
            text_field(out, " state=", state.map(crate::event::TcpState::name).as_deref())?;
            text_field(out, " reason=", reason.as_deref())?;
            field(out, " count=", *count)
        }
    }
}

/// `since`: print seconds since then (`-T`) instead of Unix time. `netns`: the socket's
/// namespace, when it is to be named.
pub(super) fn event<W: Write>(
    out: &mut W,
    e: &Event,
    since: Option<u64>,
    netns: Option<u32>,
) -> io::Result<()> {
    match since {
        None => {
            num(out, e.time_ns / 1_000_000_000)?;
            // Nanoseconds, zero-padded to nine digits.
            let nanos = e.time_ns % 1_000_000_000 + 1_000_000_000;
            let mut buf = itoa::Buffer::new();
            out.write_all(b".")?;
            out.write_all(&buf.format(nanos).as_bytes()[1..])?;
        }
        Some(s) => out.write_all(super::relative(e.time_ns, s, 9).as_bytes())?,
    }
    out.write_all(b" ")?;
    out.write_all(e.kind().as_bytes())?;
    out.write_all(b" ")?;
    if e.owner.known() {
        num(out, e.owner.pid)?;
        out.write_all(b" ")?;
        out.write_all(column_safe(&e.owner.comm).as_bytes())?;
    } else {
        out.write_all(b"- -")?;
    }
    let ep = &e.endpoints;
    out.write_all(if ep.laddr.is_ipv4() { b" 4 " } else { b" 6 " })?;
    addr(out, ep.laddr)?;
    out.write_all(b" ")?;
    num(out, ep.lport)?;
    out.write_all(b" ")?;
    addr(out, ep.raddr)?;
    out.write_all(b" ")?;
    num(out, ep.rport)?;
    out.write_all(b" ")?;
    detail(out, &e.detail)?;
    if let Some(netns) = netns {
        field(out, " netns=", netns)?;
    }
    out.write_all(b"\n")
}
