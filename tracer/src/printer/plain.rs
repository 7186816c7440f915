//! Whitespace-separated raw values for grep, awk and sort: one token per column, always.

use std::io::{self, Write};

use super::{column_safe, result_text};
use crate::event::Event;

pub(super) fn header<W: Write>(out: &mut W) -> io::Result<()> {
    writeln!(out, "TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT LAT_NS RESULT")
}

pub(super) fn event<W: Write>(out: &mut W, event: &Event) -> io::Result<()> {
    match event {
        Event::Connect(c) => {
            let ep = &c.endpoints;
            writeln!(
                out,
                "{}.{:09} connect {} {} {} {} {} {} {} {} {}",
                c.time_ns / 1_000_000_000,
                c.time_ns % 1_000_000_000,
                c.owner.pid,
                column_safe(&c.owner.comm),
                ep.ip_version(),
                ep.laddr,
                ep.lport,
                ep.raddr,
                ep.rport,
                c.latency.as_nanos(),
                result_text(c.result)
            )
        }
    }
}
