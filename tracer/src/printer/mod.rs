//! Turning events into text. Each printer is generic over `W: Write` (tested into a
//! `Vec<u8>`), and never flushes on its own: the caller flushes once the ring buffer has
//! been drained, so an idle tracer never holds a line back and a busy one does not pay a
//! write(2) per event.
//!
//! Columns (table and plain): TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT DETAIL, where
//! DETAIL is event-specific: human units in the table, `key=value` raw numbers in plain.
//! DETAIL ends with `netns=N` for a socket outside tcptrace's own network namespace (a
//! container's, say), so that the same addresses in two namespaces can be told apart.

mod csv;
mod json;
mod plain;
mod table;
pub(crate) mod units;

use std::{
    borrow::Cow,
    io::{self, Write},
};

use crate::event::{ClosedBy, ConnectResult, Direction, Event};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputMode {
    /// Aligned columns with human units (the default on a terminal).
    Table,
    /// Whitespace-separated raw numbers (the default into a pipe or file).
    Plain,
    /// One JSON object per line (NDJSON).
    Json,
    /// Comma-separated values with a header row; one column per field of any event.
    Csv,
}

pub(crate) struct Printer<W: Write> {
    out: W,
    mode: OutputMode,
    header_written: bool,
    tz: jiff::tz::TimeZone,
    /// `-T`: table and plain times are seconds since this (Unix ns).
    since: Option<u64>,
    /// The table's address column width (see `table`).
    addr_width: usize,
    /// tcptrace's own network namespace (inode): table and plain name any other.
    home_netns: Option<u32>,
}

impl<W: Write> Printer<W> {
    /// `header`: print the column header (false for `--no-header`).
    pub(crate) fn new(out: W, mode: OutputMode, tz: jiff::tz::TimeZone, header: bool) -> Self {
        Self {
            out,
            mode,
            header_written: !header,
            tz,
            since: None,
            addr_width: table::ADDR_WIDTH,
            home_netns: None,
        }
    }

    /// Table and plain output add `netns=N` to events of sockets in any network namespace
    /// but `inode` (tcptrace's own); JSON and CSV always carry the namespace.
    pub(crate) fn home_netns(mut self, inode: Option<u32>) -> Self {
        self.home_netns = inode;
        self
    }

    /// The namespace to name on this event's line: known, and not tcptrace's own.
    fn foreign_netns(&self, event: &Event) -> Option<u32> {
        (event.netns != 0 && self.home_netns.is_some_and(|home| home != event.netns))
            .then_some(event.netns)
    }

    /// Table and plain output show seconds since `start_ns` (Unix ns) instead of the time
    /// of day (`-T`, as bcc's tools); JSON and CSV keep their absolute times.
    pub(crate) fn relative_to(mut self, start_ns: u64) -> Self {
        self.since = Some(start_ns);
        self
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
            OutputMode::Csv => csv::header(&mut self.out),
            OutputMode::Json => Ok(()),
        }
    }

    pub(crate) fn event(&mut self, event: &Event) -> io::Result<()> {
        self.header()?;
        let netns = self.foreign_netns(event);
        match self.mode {
            OutputMode::Table => table::event(
                &mut self.out,
                event,
                &self.tz,
                self.since,
                &mut self.addr_width,
                netns,
            ),
            OutputMode::Plain => plain::event(&mut self.out, event, self.since, netns),
            OutputMode::Json => json::event(&mut self.out, event),
            OutputMode::Csv => csv::event(&mut self.out, event),
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
pub(crate) fn result_text(result: ConnectResult) -> std::borrow::Cow<'static, str> {
    match result {
        ConnectResult::Ok => "ok".into(),
        ConnectResult::Failed(0) => "failed".into(),
        ConnectResult::Failed(n) => {
            crate::event::errno_name(n).map_or_else(|| format!("errno{n}").into(), Into::into)
        }
    }
}

pub(crate) const fn direction_text(d: Direction) -> &'static str {
    match d {
        Direction::Unknown => "unknown",
        Direction::Active => "active",
        Direction::Passive => "passive",
    }
}

pub(crate) const fn closed_by_text(c: ClosedBy) -> &'static str {
    match c {
        ClosedBy::Unknown => "unknown",
        ClosedBy::Local => "local",
        ClosedBy::Remote => "remote",
    }
}

/// Seconds from `start_ns` to `time_ns` with `digits` decimals (0 for events stamped
/// before the start, which the ring buffer may still hold).
pub(crate) fn relative(time_ns: u64, start_ns: u64, digits: usize) -> String {
    let d = time_ns.saturating_sub(start_ns);
    let frac = d % 1_000_000_000 / 10u64.pow(9 - digits.min(9) as u32);
    format!("{}.{frac:0digits$}", d / 1_000_000_000)
}

/// `s` with its control characters (escape sequences, line breaks) shown as `\\xNN`: for
/// the table and CSV, whose columns may hold spaces but must not act on a terminal. A
/// backslash is escaped too, or a name written `a\\x09b` would read as one with a tab.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    escaped(s, |c| c.is_control() || c == '\\')
}

/// A comm safe for whitespace-separated columns: spaces escaped too, and an empty one
/// shown as `-`.
pub(crate) fn column_safe(s: &str) -> Cow<'_, str> {
    if s.is_empty() {
        return "-".into();
    }
    escaped(s, |c| c.is_whitespace() || c.is_control() || c == '\\')
}

/// `s` with every character `needs_escape` picks written as `\\xNN`, one per byte of its
/// UTF-8; borrowed when there is none (the common case: no allocation per event).
fn escaped(s: &str, needs_escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&needs_escape) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            let mut utf8 = [0; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{net::IpAddr, time::Duration};

    use super::*;
    use crate::event::{BytesSource, CloseInfo, Comm, Detail, Endpoints, Owner, TcpState};

    pub(crate) fn event(detail: Detail, v6: bool, owner_known: bool) -> Event {
        let (l, r): (IpAddr, IpAddr) = if v6 {
            ("::1".parse().expect("v6"), "::1".parse().expect("v6"))
        } else {
            ("127.0.0.1".parse().expect("v4"), "10.0.0.7".parse().expect("v4"))
        };
        let owner = if owner_known {
            Owner { pid: 4242, tid: 4243, uid: 1000, comm: "my client".into() }
        } else {
            Owner { pid: 0, tid: 0, uid: 0, comm: Comm::default() }
        };
        Event {
            // 2026-11-25T12:00:01.500000000Z
            time_ns: 1_795_608_001_500_000_000,
            sock: 0xffff_8880_0000_1000,
            owner,
            endpoints: Endpoints { laddr: l, lport: 51_234, raddr: r, rport: 8080 },
            netns: 4_026_531_840,
            detail,
        }
    }

    pub(crate) fn connect(result: ConnectResult) -> Detail {
        let syns_sent = if result == ConnectResult::Ok { 1 } else { 3 };
        // A failed connect whose SYNs this host dropped (drops watched); an ok one unwatched.
        let (syns_dropped, syn_drop_reason) = if result == ConnectResult::Ok {
            (None, None)
        } else {
            (Some(3), Some("NETFILTER_DROP".into()))
        };
        Detail::Connect {
            latency: Duration::from_micros(1_234),
            result,
            syns_sent,
            syns_dropped,
            syn_drop_reason,
        }
    }

    fn close() -> Detail {
        Detail::Close(CloseInfo {
            lifetime: Some(Duration::from_millis(1_500)),
            bytes_sent: 1_000_003,
            bytes_received: 77_777,
            total_retrans: 2,
            srtt_us: 41,
            direction: Direction::Active,
            closed_by: ClosedBy::Local,
            bytes_source: BytesSource::Socket,
            // An abortive close with data left unread: every ending field has a value.
            ending: crate::end::Ending {
                end: crate::end::End::ResetSent,
                errno: None,
                timeout: None,
                reason: Some(crate::end::Reason {
                    name: "TCP_ABORT_ON_CLOSE".into(),
                    inferred: true,
                }),
                unacked_bytes: Some(3),
                unread_bytes: Some(7_777),
            },
        })
    }

    /// One event of every kind (for the CSV column check).
    pub(crate) fn one_of_each() -> Vec<Event> {
        all_kinds()
    }

    fn all_kinds() -> Vec<Event> {
        vec![
            event(connect(ConnectResult::Ok), false, true),
            event(connect(ConnectResult::Failed(111)), true, true),
            event(Detail::Accept, false, true),
            event(close(), false, true),
            event(
                Detail::State {
                    old: TcpState(1),
                    new: TcpState(4),
                    in_old: Some(Duration::from_micros(340)),
                },
                false,
                false,
            ),
            event(
                Detail::Retransmit { state: TcpState(1), total_retrans: 3, tail_loss_probe: false },
                false,
                true,
            ),
            event(
                Detail::Reset {
                    sent: true,
                    state: Some(TcpState(7)),
                    reason: Some("TCP_ABORT_ON_CLOSE".into()),
                    count: 1,
                },
                false,
                true,
            ),
            event(
                Detail::Drop {
                    outgoing: false,
                    state: Some(TcpState(1)),
                    reason: Some("NETFILTER_DROP".into()),
                    count: 12,
                    location: Some("nft_do_chain+0x46f".into()),
                },
                false,
                true,
            ),
        ]
    }

    fn render(mode: OutputMode, events: &[Event]) -> String {
        let mut p = Printer::new(Vec::new(), mode, jiff::tz::TimeZone::UTC, true);
        for e in events {
            p.event(e).expect("write to vec");
        }
        String::from_utf8(p.into_inner()).expect("utf8")
    }

    #[test]
    fn table_aligns_columns_under_one_header() {
        let got = render(OutputMode::Table, &all_kinds());
        let want = "\
TIME         EVENT      PID     COMM             IP LADDR           LPORT RADDR           RPORT DETAIL
12:00:01.500 connect    4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  ok lat=1.23ms
12:00:01.500 connect    4242    my client        6  ::1             51234 ::1             8080  ECONNREFUSED lat=1.23ms syns=3 dropped_here=3(NETFILTER_DROP)
12:00:01.500 accept     4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  -
12:00:01.500 close      4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  active closed_by=local life=1.50s tx=976.6KiB rx=76.0KiB retrans=2 srtt=41µs end=reset_sent(TCP_ABORT_ON_CLOSE?) unacked=3B unread=7.6KiB
12:00:01.500 state      -       -                4  127.0.0.1       51234 10.0.0.7        8080  ESTABLISHED->FIN_WAIT1 after=340µs
12:00:01.500 retransmit 4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  ESTABLISHED total_retrans=3
12:00:01.500 reset      4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  sent CLOSE TCP_ABORT_ON_CLOSE
12:00:01.500 drop       4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  in ESTABLISHED NETFILTER_DROP x12 at nft_do_chain+0x46f
";
        assert_eq!(got, want);
    }

    #[test]
    fn plain_has_fixed_columns_then_key_value_details() {
        let got = render(OutputMode::Plain, &all_kinds());
        let want = "\
TIME EVENT PID COMM IP LADDR LPORT RADDR RPORT DETAIL
1795608001.500000000 connect 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 result=ok lat_ns=1234000 end=- timeout=- syns=1 syns_dropped=- drop_reason=-
1795608001.500000000 connect 4242 my\\x20client 6 ::1 51234 ::1 8080 result=ECONNREFUSED lat_ns=1234000 end=reset_received timeout=- syns=3 syns_dropped=3 drop_reason=NETFILTER_DROP
1795608001.500000000 accept 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 -
1795608001.500000000 close 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 dir=active closed_by=local lifetime_ns=1500000000 tx_bytes=1000003 rx_bytes=77777 retrans=2 srtt_us=41 bytes_from=socket end=reset_sent err=- reason=TCP_ABORT_ON_CLOSE inferred=1 timeout=- written=1000006 read=70000 unacked=3 unread=7777
1795608001.500000000 state - - 4 127.0.0.1 51234 10.0.0.7 8080 old=ESTABLISHED new=FIN_WAIT1 in_old_ns=340000
1795608001.500000000 retransmit 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 state=ESTABLISHED total_retrans=3 tlp=0
1795608001.500000000 reset 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 dir=sent state=CLOSE reason=TCP_ABORT_ON_CLOSE count=1
1795608001.500000000 drop 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 dir=in state=ESTABLISHED reason=NETFILTER_DROP count=12 at=nft_do_chain+0x46f
";
        assert_eq!(got, want);
        for line in got.lines() {
            assert!(line.split_whitespace().count() >= 10, "{line}");
        }
    }

    /// A longer address widens the address columns from its row on, so the rows after it
    /// line up with it and with each other.
    #[test]
    fn table_widens_address_columns_for_a_longer_address() {
        let mut mapped = all_kinds()[2].clone();
        mapped.endpoints.laddr = "::ffff:127.0.0.1".parse().expect("v6");
        let got =
            render(OutputMode::Table, &[all_kinds()[2].clone(), mapped, all_kinds()[2].clone()]);
        let want = "\
TIME         EVENT      PID     COMM             IP LADDR           LPORT RADDR           RPORT DETAIL
12:00:01.500 accept     4242    my client        4  127.0.0.1       51234 10.0.0.7        8080  -
12:00:01.500 accept     4242    my client        6  ::ffff:127.0.0.1 51234 10.0.0.7         8080  -
12:00:01.500 accept     4242    my client        4  127.0.0.1        51234 10.0.0.7         8080  -
";
        assert_eq!(got, want);
    }

    /// Table and plain name a socket's network namespace only when it is not tcptrace's
    /// own; an unknown one (0) or an unknown home is never named.
    #[test]
    fn table_and_plain_name_only_a_foreign_network_namespace() {
        let home = 4_026_531_840;
        let mut foreign = all_kinds()[2].clone();
        foreign.netns = 4_026_532_999;
        let mut unknown = all_kinds()[2].clone();
        unknown.netns = 0;
        let events = [all_kinds()[2].clone(), foreign.clone(), unknown];
        let lines = |mode, home| {
            let mut p =
                Printer::new(Vec::new(), mode, jiff::tz::TimeZone::UTC, false).home_netns(home);
            for e in &events {
                p.event(e).expect("write to vec");
            }
            String::from_utf8(p.into_inner())
                .expect("utf8")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let plain = lines(OutputMode::Plain, Some(home));
        assert_eq!(
            plain[0],
            "1795608001.500000000 accept 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 -"
        );
        assert_eq!(plain[1], "1795608001.500000000 accept 4242 my\\x20client 4 127.0.0.1 51234 10.0.0.7 8080 - netns=4026532999");
        assert_eq!(plain[2], plain[0]);
        let table = lines(OutputMode::Table, Some(home));
        assert_eq!(table[1], format!("{} netns=4026532999", table[0]));
        assert_eq!(table[2], table[0]);
        // Without a known home nothing is named: every namespace would look foreign.
        assert_eq!(lines(OutputMode::Plain, None)[1], plain[0]);
        // JSON carries the namespace either way.
        assert!(lines(OutputMode::Json, Some(home))[1].contains(r#""netns":4026532999"#));
    }

    /// What is not known is not shown as a number: `-` in plain, `?` in the table, null in
    /// JSON, an empty cell in CSV.
    #[test]
    fn unknown_durations_are_never_zero() {
        let mut close_event = all_kinds()[3].clone();
        if let Detail::Close(c) = &mut close_event.detail {
            c.lifetime = None;
        }
        let state =
            event(Detail::State { old: TcpState(7), new: TcpState(2), in_old: None }, false, true);
        let events = [close_event, state];
        let plain = render(OutputMode::Plain, &events);
        assert!(plain.contains(" lifetime_ns=- tx_bytes="), "{plain}");
        assert!(plain.ends_with(" old=CLOSE new=SYN_SENT in_old_ns=-\n"), "{plain}");
        let table = render(OutputMode::Table, &events);
        assert!(
            table.contains(" life=? tx=") && table.ends_with(" CLOSE->SYN_SENT after=?\n"),
            "{table}"
        );
        let json = render(OutputMode::Json, &events);
        assert!(
            json.contains(r#""lifetime_ns":null,"#) && json.contains(r#""in_old_state_ns":null}"#),
            "{json}"
        );
        let csv = render(OutputMode::Csv, &events);
        assert!(
            csv.contains(",active,local,,1000003,") && csv.contains(",CLOSE,SYN_SENT,,,"),
            "{csv}"
        );
    }

    #[test]
    fn plain_time_keeps_leading_zeros_of_the_nanoseconds() {
        let mut e = all_kinds()[2].clone();
        e.time_ns = 5_000_000_007;
        let got = render(OutputMode::Plain, &[e]);
        assert!(got.lines().nth(1).is_some_and(|l| l.starts_with("5.000000007 accept ")), "{got}");
    }

    #[test]
    fn json_is_one_object_per_line() {
        let got = render(OutputMode::Json, &all_kinds());
        let common = r#""time":"2026-11-25T12:00:01.500000000Z","time_ns":1795608001500000000,"pid":4242,"tid":4243,"uid":1000,"comm":"my client","ip":4,"laddr":"127.0.0.1","lport":51234,"raddr":"10.0.0.7","rport":8080,"netns":4026531840"#;
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(
            lines[0],
            format!(
                r#"{{"type":"connect",{common},"latency_ns":1234000,"result":"ok","errno":null,"error":null,"end":null,"timeout":null,"syns_sent":1,"syns_dropped":null,"syn_drop_reason":null}}"#
            )
        );
        assert_eq!(lines[2], format!(r#"{{"type":"accept",{common}}}"#));
        assert_eq!(
            lines[3],
            format!(
                r#"{{"type":"close",{common},"direction":"active","closed_by":"local","lifetime_ns":1500000000,"bytes_sent":1000003,"bytes_received":77777,"total_retrans":2,"srtt_us":41,"bytes_from":"socket","end":"reset_sent","errno":null,"error":null,"reason":"TCP_ABORT_ON_CLOSE","reason_inferred":true,"timeout":null,"bytes_written":1000006,"bytes_read":70000,"bytes_unacked":3,"bytes_unread":7777}}"#
            )
        );
        assert_eq!(
            lines[4],
            r#"{"type":"state","time":"2026-11-25T12:00:01.500000000Z","time_ns":1795608001500000000,"pid":null,"tid":null,"uid":null,"comm":null,"ip":4,"laddr":"127.0.0.1","lport":51234,"raddr":"10.0.0.7","rport":8080,"netns":4026531840,"old_state":"ESTABLISHED","new_state":"FIN_WAIT1","in_old_state_ns":340000}"#
        );
        assert_eq!(
            lines[5],
            format!(
                r#"{{"type":"retransmit",{common},"state":"ESTABLISHED","total_retrans":3,"tail_loss_probe":false}}"#
            )
        );
        assert_eq!(
            lines[6],
            format!(
                r#"{{"type":"reset",{common},"direction":"sent","state":"CLOSE","reason":"TCP_ABORT_ON_CLOSE","count":1}}"#
            )
        );
        assert_eq!(
            lines[7],
            format!(
                r#"{{"type":"drop",{common},"direction":"in","state":"ESTABLISHED","reason":"NETFILTER_DROP","count":12,"location":"nft_do_chain+0x46f"}}"#
            )
        );
    }

    #[test]
    fn csv_has_a_header_row_and_one_column_per_field() {
        let got = render(OutputMode::Csv, &all_kinds());
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 9);
        assert_eq!(
            lines[0],
            "type,time,time_ns,pid,tid,uid,comm,ip,laddr,lport,raddr,rport,netns,latency_ns,result,errno,error,end,timeout,syns_sent,syns_dropped,syn_drop_reason,direction,closed_by,lifetime_ns,bytes_sent,bytes_received,total_retrans,srtt_us,bytes_from,reason,reason_inferred,bytes_written,bytes_read,bytes_unacked,bytes_unread,old_state,new_state,in_old_state_ns,state,tail_loss_probe,count,location"
        );
        let common = "2026-11-25T12:00:01.500000000Z,1795608001500000000,4242,4243,1000,my client,4,127.0.0.1,51234,10.0.0.7,8080,4026531840";
        assert_eq!(lines[1], format!("connect,{common},1234000,ok,,,,,1,,,,,,,,,,,,,,,,,,,,,,,"));
        assert_eq!(lines[2], "connect,2026-11-25T12:00:01.500000000Z,1795608001500000000,4242,4243,1000,my client,6,::1,51234,::1,8080,4026531840,1234000,failed,111,ECONNREFUSED,reset_received,,3,3,NETFILTER_DROP,,,,,,,,,,,,,,,,,,,,,");
        assert_eq!(lines[4], format!("close,{common},,,,,reset_sent,,,,,active,local,1500000000,1000003,77777,2,41,socket,TCP_ABORT_ON_CLOSE,true,1000006,70000,3,7777,,,,,,,"));
        assert_eq!(lines[5], "state,2026-11-25T12:00:01.500000000Z,1795608001500000000,,,,,4,127.0.0.1,51234,10.0.0.7,8080,4026531840,,,,,,,,,,,,,,,,,,,,,,,,ESTABLISHED,FIN_WAIT1,340000,,,,");
        assert_eq!(
            lines[6],
            format!("retransmit,{common},,,,,,,,,,,,,,,3,,,,,,,,,,,,ESTABLISHED,false,,")
        );
        assert_eq!(
            lines[7],
            format!("reset,{common},,,,,,,,,,sent,,,,,,,,TCP_ABORT_ON_CLOSE,,,,,,,,,CLOSE,,1,")
        );
        assert_eq!(lines[8], format!("drop,{common},,,,,,,,,,in,,,,,,,,NETFILTER_DROP,,,,,,,,,ESTABLISHED,,12,nft_do_chain+0x46f"));
        for line in &lines {
            assert_eq!(line.matches(',').count(), 42, "{line}");
        }
    }

    #[test]
    fn relative_times_count_from_the_start() {
        let start = 1_795_608_000_000_000_000;
        let mut p = Printer::new(Vec::new(), OutputMode::Plain, jiff::tz::TimeZone::UTC, false)
            .relative_to(start);
        p.event(&all_kinds()[2]).expect("write to vec");
        let mut t = Printer::new(Vec::new(), OutputMode::Table, jiff::tz::TimeZone::UTC, false)
            .relative_to(start);
        t.event(&all_kinds()[2]).expect("write to vec");
        assert!(String::from_utf8(p.into_inner())
            .expect("utf8")
            .starts_with("1.500000000 accept 4242 "));
        assert!(String::from_utf8(t.into_inner())
            .expect("utf8")
            .starts_with("1.500        accept "));
        assert_eq!(relative(start - 5, start, 3), "0.000");
        assert_eq!(relative(start + 61_000_123_456, start, 6), "61.000123");
    }

    #[test]
    fn no_header_means_no_header() {
        let mut p = Printer::new(Vec::new(), OutputMode::Csv, jiff::tz::TimeZone::UTC, false);
        p.event(&all_kinds()[2]).expect("write to vec");
        let got = String::from_utf8(p.into_inner()).expect("utf8");
        assert!(got.starts_with("accept,"), "{got}");
        assert_eq!(got.lines().count(), 1);
    }

    #[test]
    fn unknown_errno_is_shown_by_number() {
        assert_eq!(result_text(ConnectResult::Failed(250)), "errno250");
        assert_eq!(column_safe(""), "-");
        assert_eq!(column_safe("a\tb"), "a\\x09b");
    }

    /// A process can name itself anything; no output mode may pass its bytes to a
    /// terminal raw (an escape sequence there would act on the reader's terminal).
    #[test]
    fn hostile_process_names_reach_no_output_raw() {
        let mut e = all_kinds()[2].clone();
        e.owner.comm = "x\u{1b}]0;pwn\u{7}\ny".into();
        for mode in [OutputMode::Table, OutputMode::Plain, OutputMode::Json, OutputMode::Csv] {
            let got = render(mode, std::slice::from_ref(&e));
            assert!(!got.contains('\u{1b}') && !got.contains('\u{7}'), "{mode:?}: {got:?}");
            assert_eq!(
                got.lines().count(),
                if mode == OutputMode::Json { 1 } else { 2 },
                "{mode:?}: {got:?}"
            );
        }
        assert!(render(OutputMode::Table, &[e]).contains(" x\\x1b]0;pwn\\x07\\x0ay "));
    }

    /// A name that spells an escape (`a\x09b`, backslash included) must not print as the
    /// name with a tab in it: every escaping mode escapes the backslash itself.
    #[test]
    fn a_literal_backslash_is_told_apart_from_an_escape() {
        let mut literal = all_kinds()[2].clone();
        literal.owner.comm = "a\\x09b".into();
        let mut tab = literal.clone();
        tab.owner.comm = "a\tb".into();
        for mode in [OutputMode::Table, OutputMode::Plain, OutputMode::Csv] {
            let (got_literal, got_tab) = (
                render(mode, std::slice::from_ref(&literal)),
                render(mode, std::slice::from_ref(&tab)),
            );
            assert!(got_literal.contains("a\\x5cx09b"), "{mode:?}: {got_literal:?}");
            assert!(got_tab.contains("a\\x09b"), "{mode:?}: {got_tab:?}");
        }
    }
}
