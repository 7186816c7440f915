//! Turning events into text. Each printer is generic over `W: Write` (tested into a
//! `Vec<u8>`), and never flushes on its own: the caller flushes once the ring buffer has
//! been drained, so an idle tracer never holds a line back and a busy one does not pay a
//! write(2) per event.

mod json;
mod plain;
mod table;

use std::io::{self, Write};

use crate::event::{ConnectResult, Event};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputMode {
    /// Aligned columns with human units (the default on a terminal).
    Table,
    /// Whitespace-separated raw numbers (the default into a pipe or file).
    Plain,
    /// One JSON object per line (NDJSON).
    Json,
}

pub(crate) struct Printer<W: Write> {
    out: W,
    mode: OutputMode,
    header_written: bool,
    tz: jiff::tz::TimeZone,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, mode: OutputMode, tz: jiff::tz::TimeZone) -> Self {
        Self { out, mode, header_written: false, tz }
    }

    /// Writes the column header (table and plain modes), once.
    pub(crate) fn header(&mut self) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        match self.mode {
            OutputMode::Table => table::header(&mut self.out),
            OutputMode::Plain => plain::header(&mut self.out),
            OutputMode::Json => Ok(()),
        }
    }

    pub(crate) fn event(&mut self, event: &Event) -> io::Result<()> {
        self.header()?;
        match self.mode {
            OutputMode::Table => table::event(&mut self.out, event, &self.tz),
            OutputMode::Plain => plain::event(&mut self.out, event),
            OutputMode::Json => json::event(&mut self.out, event),
        }
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

/// `ok`, an errno name (`ECONNREFUSED`), `errno<N>`, or `failed` when the kernel gave none.
pub(crate) fn result_text(result: ConnectResult) -> String {
    match result {
        ConnectResult::Ok => "ok".into(),
        ConnectResult::Failed(0) => "failed".into(),
        ConnectResult::Failed(n) => crate::event::errno_name(n).map_or_else(|| format!("errno{n}"), str::to_string),
    }
}

/// A comm safe for whitespace-separated columns: spaces and control bytes escaped.
pub(crate) fn column_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() || c == '\\' {
            for b in c.to_string().bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use super::*;
    use crate::event::{ConnectEvent, Endpoints, Owner};

    fn connect(result: ConnectResult, v6: bool) -> Event {
        let (l, r): (IpAddr, IpAddr) = if v6 {
            ("::1".parse().expect("v6"), "::1".parse().expect("v6"))
        } else {
            ("127.0.0.1".parse().expect("v4"), "10.0.0.7".parse().expect("v4"))
        };
        Event::Connect(ConnectEvent {
            // 2026-11-25T12:00:01.5Z
            time_ns: 1_795_608_001_500_000_000,
            owner: Owner { pid: 4242, tid: 4243, uid: 1000, comm: "my client".into() },
            endpoints: Endpoints { laddr: l, lport: 51_234, raddr: r, rport: 8080 },
            latency: Duration::from_micros(1_234),
            result,
        })
    }

    fn render(mode: OutputMode, events: &[Event]) -> String {
        let mut p = Printer::new(Vec::new(), mode, jiff::tz::TimeZone::UTC);
        for e in events {
            p.event(e).expect("write to vec");
        }
        String::from_utf8(p.into_inner()).expect("utf8")
    }

    #[test]
    fn table_aligns_columns_under_one_header() {
        let got = render(OutputMode::Table, &[connect(ConnectResult::Ok, false), connect(ConnectResult::Failed(111), true)]);
        let want = "\
TIME         EVENT    PID     COMM             IP LADDR           LPORT RADDR           RPORT  LAT(ms) RESULT
12:00:01.500 connect  4242    my client        4  127.0.0.1       51234 10.0.0.7        8080     1.234 ok
12:00:01.500 connect  4242    my client        6  ::1             51234 ::1             8080     1.234 ECONNREFUSED
";
        assert_eq!(got, want);
    }

    #[test]
    fn plain_is_one_token_per_column() {
        let got = render(OutputMode::Plain, &[connect(ConnectResult::Failed(0), false)]);
        let want = "\
TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT LAT_NS RESULT
1795608001.500000000 connect 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 1234000 failed
";
        assert_eq!(got, want);
        for line in got.lines() {
            assert_eq!(line.split_whitespace().count(), 11);
        }
    }

    #[test]
    fn json_is_one_object_per_line() {
        let got = render(OutputMode::Json, &[connect(ConnectResult::Failed(111), false)]);
        let want = r#"{"type":"connect","time":"2026-11-25T12:00:01.5Z","time_ns":1795608001500000000,"pid":4242,"tid":4243,"uid":1000,"comm":"my client","ip":4,"laddr":"127.0.0.1","lport":51234,"raddr":"10.0.0.7","rport":8080,"latency_ns":1234000,"result":"failed","errno":111,"error":"ECONNREFUSED"}
"#;
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_errno_is_shown_by_number() {
        assert_eq!(result_text(ConnectResult::Failed(250)), "errno250");
        assert_eq!(column_safe(""), "-");
        assert_eq!(column_safe("a\tb"), "a\\x09b");
    }
}
