//! Aligned columns for a person at a terminal (bcc's column names).

use std::io::{self, Write};

use super::result_text;
use crate::event::Event;

pub(super) fn header<W: Write>(out: &mut W) -> io::Result<()> {
    writeln!(
        out,
        "{:<12} {:<8} {:<7} {:<16} {:<2} {:<15} {:<5} {:<15} {:<5} {:>8} RESULT",
        "TIME", "EVENT", "PID", "COMM", "IP", "LADDR", "LPORT", "RADDR", "RPORT", "LAT(ms)"
    )
}

pub(super) fn event<W: Write>(out: &mut W, event: &Event, tz: &jiff::tz::TimeZone) -> io::Result<()> {
    match event {
        Event::Connect(c) => {
            let time = jiff::Timestamp::from_nanosecond(i128::from(c.time_ns))
                .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M:%S%.3f").to_string())
                .unwrap_or_else(|_| "-".into());
            let ep = &c.endpoints;
            writeln!(
                out,
                "{:<12} {:<8} {:<7} {:<16} {:<2} {:<15} {:<5} {:<15} {:<5} {:>8.3} {}",
                time,
                "connect",
                c.owner.pid,
                c.owner.comm,
                ep.ip_version(),
                ep.laddr,
                ep.lport,
                ep.raddr,
                ep.rport,
                c.latency.as_secs_f64() * 1e3,
                result_text(c.result)
            )
        }
    }
}
