//! Aligned columns for a person at a terminal (bcc's column names), human units.
//!
//! The address columns start 15 wide (an IPv4 address) and widen for good at the first
//! longer one (`::ffff:127.0.0.1`, any global IPv6 address): a row never pushes the
//! columns after it out of line with the rows that follow.

/// Width of LADDR and RADDR until a longer address comes.
pub(super) const ADDR_WIDTH: usize = 15;

use std::io::{self, Write};

use super::{closed_by_text, direction_text, result_text, units};
use crate::event::{Detail, Event};

pub(super) fn header<W: Write>(out: &mut W) -> io::Result<()> {
    writeln!(
        out,
        "{:<12} {:<10} {:<7} {:<16} {:<2} {:<15} {:<5} {:<15} {:<5} DETAIL",
        "TIME", "EVENT", "PID", "COMM", "IP", "LADDR", "LPORT", "RADDR", "RPORT"
    )
}

fn detail(d: &Detail) -> String {
    match d {
        Detail::Connect { latency, result, syns_sent, syns_dropped, syn_drop_reason } => {
            let mut text = format!("{} lat={}", result_text(*result), units::duration(*latency));
            if *syns_sent > 1 {
                text.push_str(&format!(" syns={syns_sent}"));
            }
            if let Some(dropped @ 1..) = syns_dropped {
                let why = syn_drop_reason.as_deref().unwrap_or("-");
                text.push_str(&format!(" dropped_here={dropped}({why})"));
            }
            text
        }
        Detail::Accept => "-".into(),
        Detail::Close(c) => {
            format!(
                "{} closed_by={} life={} tx={} rx={} retrans={} srtt={}",
                direction_text(c.direction),
                closed_by_text(c.closed_by),
                c.lifetime.map_or_else(|| "?".into(), units::duration),
                units::bytes(c.bytes_sent),
                units::bytes(c.bytes_received),
                c.total_retrans,
                units::duration(std::time::Duration::from_micros(u64::from(c.srtt_us)))
            ) + &ending(c)
        }
        Detail::State { old, new, in_old } => {
            format!(
                "{}->{} after={}",
                old.name(),
                new.name(),
                in_old.map_or_else(|| "?".into(), units::duration)
            )
        }
        Detail::Drop { outgoing, state, reason, count, location } => format!(
            "{} {} {} x{count}{}",
            if *outgoing { "out" } else { "in" },
            state.map_or_else(|| "no-socket".into(), crate::event::TcpState::name),
            reason.as_deref().unwrap_or("-"),
            location.as_deref().map_or_else(String::new, |l| format!(" at {l}"))
        ),
        Detail::Reset { sent, state, reason, count } => format!(
            "{} {}{}{}",
            if *sent { "sent" } else { "received" },
            state.map_or_else(|| "no-socket".into(), crate::event::TcpState::name),
            reason.as_deref().map_or_else(String::new, |r| format!(" {r}")),
            if *count == 1 { String::new() } else { format!(" x{count}") }
        ),
        Detail::Retransmit { state, total_retrans, tail_loss_probe } => {
            format!(
                "{} total_retrans={total_retrans}{}",
                state.name(),
                if *tail_loss_probe { " tail-loss-probe" } else { "" }
            )
        }
    }
}

/// How a close ended, and what it lost when it lost anything: ` end=fin`, or
/// ` end=reset_sent(TCP_ABORT_ON_CLOSE?) unread=390.6KiB` (`?`: inferred by tcptrace).
fn ending(c: &crate::event::CloseInfo) -> String {
    let e = &c.ending;
    let mut text = format!(" end={}", e.end.name());
    if let Some(timeout) = e.timeout {
        text.push_str(&format!("({})", timeout.name()));
    }
    if let Some(reason) = &e.reason {
        text.push_str(&format!("({}{})", reason.name, if reason.inferred { "?" } else { "" }));
    }
    if let Some(errno) = e.errno {
        text.push_str(&format!(
            " {}",
            crate::event::errno_name(errno).map_or_else(|| format!("errno{errno}"), str::to_owned)
        ));
    }
    for (key, bytes) in [("unacked", e.unacked_bytes), ("unread", e.unread_bytes)] {
        if let Some(n) = bytes.filter(|&n| n > 0) {
            text.push_str(&format!(" {key}={}", units::bytes(n)));
        }
    }
    text
}

/// `since`: print seconds since then (`-T`) instead of the wall-clock time.
/// `addr_width`: the address columns' width so far, widened here for a longer address.
/// `netns`: the socket's namespace, when it is to be named.
pub(super) fn event<W: Write>(
    out: &mut W,
    e: &Event,
    tz: &jiff::tz::TimeZone,
    since: Option<u64>,
    addr_width: &mut usize,
    netns: Option<u32>,
) -> io::Result<()> {
    let time = match since {
        Some(start) => super::relative(e.time_ns, start, 3),
        None => jiff::Timestamp::from_nanosecond(i128::from(e.time_ns))
            .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M:%S%.3f").to_string())
            .unwrap_or_else(|_| "-".into()),
    };
    // Any user can name a process, escape sequences and newlines included: escaped, or
    // they would reach the terminal of whoever runs tcptrace.
    let (pid, comm) = if e.owner.known() {
        (e.owner.pid.to_string(), super::printable(&e.owner.comm))
    } else {
        ("-".into(), "-".into())
    };
    let ep = &e.endpoints;
    let (laddr, raddr) = (ep.laddr.to_string(), ep.raddr.to_string());
    *addr_width = (*addr_width).max(laddr.len()).max(raddr.len());
    let width = *addr_width;
    writeln!(
        out,
        "{:<12} {:<10} {:<7} {:<16} {:<2} {laddr:<width$} {:<5} {raddr:<width$} {:<5} {}{}",
        time,
        e.kind(),
        pid,
        comm,
        ep.ip_version(),
        ep.lport,
        ep.rport,
        detail(&e.detail),
        netns.map_or_else(String::new, |n| format!(" netns={n}"))
    )
}
