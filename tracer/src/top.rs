//! `tcptrace top`: the busiest connections, refreshed every interval. On a terminal a
//! full-screen table (ratatui); otherwise one batch snapshot per interval, like `top -b`.
//!
//! Where the numbers come from: the per-call hooks (`tcp_sendmsg` / `tcp_recvmsg`, or
//! their tracepoints) add what each call sent or what the application read to the
//! connection's `SOCKS` entry, which also keeps its endpoints, owner, retransmits and RTT
//! (`Config::live`). Every interval tcptrace reads the map; a rate is the difference from
//! the last reading. A connection that closes within the interval is gone from the map by
//! then: its close event brings its final counts. Received bytes are what the application
//! read, not what arrived (bcc's tcptop counts the latter: bcc issue 5352).

use std::{
    collections::HashMap,
    io::{self, IsTerminal, Write},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{HashMap as BpfHashMap, MapData, RingBuf};
use tracer_common::{conn::SockInfo, event::kind_bit, event::EventKind, filter::Config};

use crate::{
    cli::{Cli, SortKey, TopArgs},
    decode::{self, decode, Clock},
    event::{Detail, Endpoints, Owner},
    printer::units,
};

/// One connection's line for one interval.
#[derive(Clone, Debug)]
struct Row {
    owner: Owner,
    endpoints: Endpoints,
    tx_total: u64,
    rx_total: u64,
    tx_rate: f64,
    rx_rate: f64,
    retrans: u32,
    /// Resets it sent or received while the view ran.
    resets: u32,
    srtt_us: u32,
    /// Since the handshake ended, when tcptrace saw it end; otherwise (a connection older
    /// than tcptrace) since tcptrace first showed it.
    age: Duration,
    closed: bool,
}

/// What the last reading saw of a connection (by socket: see `Event::sock`).
struct Seen {
    tx: u64,
    rx: u64,
    since: Instant,
}

/// Rows from one reading of `SOCKS` plus the close events of the interval.
struct Tracker {
    seen: HashMap<u64, Seen>,
    last: Instant,
}

impl Tracker {
    fn new() -> Self {
        Self { seen: HashMap::new(), last: Instant::now() }
    }

    /// `resets`: resets seen so far, by socket; those of the closed connections are taken.
    fn rows(
        &mut self,
        live: &[Counts],
        closed: Vec<Counts>,
        resets: &mut HashMap<u64, u32>,
    ) -> Vec<Row> {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64().max(1e-3);
        self.last = now;
        let mut rows = Vec::new();
        let mut still = HashMap::new();
        let mut row = |c: &Counts, closed: bool| {
            let before = self.seen.remove(&c.sock);
            let (tx0, rx0, since) = before.map_or((0, 0, now), |s| (s.tx, s.rx, s.since));
            rows.push(Row {
                owner: c.owner.clone(),
                endpoints: c.endpoints,
                tx_total: c.tx,
                rx_total: c.rx,
                tx_rate: c.tx.saturating_sub(tx0) as f64 / secs,
                rx_rate: c.rx.saturating_sub(rx0) as f64 / secs,
                retrans: c.retrans,
                resets: resets.get(&c.sock).copied().unwrap_or(0),
                srtt_us: c.srtt_us,
                age: c.age.unwrap_or_else(|| now.duration_since(since)),
                closed,
            });
            if !closed {
                still.insert(c.sock, Seen { tx: c.tx, rx: c.rx, since });
            }
        };
        for c in live {
            row(c, false);
        }
        for c in &closed {
            row(c, true);
        }
        for c in &closed {
            resets.remove(&c.sock);
        }
        self.seen = still;
        rows
    }
}

fn sort(rows: &mut [Row], key: SortKey) {
    let total_rate = |r: &Row| r.tx_rate + r.rx_rate;
    match key {
        SortKey::Rate => rows.sort_by(|a, b| total_rate(b).total_cmp(&total_rate(a))),
        SortKey::Tx => rows.sort_by(|a, b| b.tx_rate.total_cmp(&a.tx_rate)),
        SortKey::Rx => rows.sort_by(|a, b| b.rx_rate.total_cmp(&a.rx_rate)),
        SortKey::Total => rows.sort_by_key(|r| std::cmp::Reverse(r.tx_total + r.rx_total)),
        SortKey::Retrans => rows.sort_by_key(|r| std::cmp::Reverse(r.retrans)),
        SortKey::Age => rows.sort_by_key(|r| std::cmp::Reverse(r.age)),
    }
}

fn matches(row: &Row, needle: &str) -> bool {
    needle.is_empty()
        || row.owner.comm.contains(needle)
        || row.owner.pid.to_string() == needle
        || row.endpoints.laddr.to_string().contains(needle)
        || row.endpoints.raddr.to_string().contains(needle)
        || row.endpoints.lport.to_string() == needle
        || row.endpoints.rport.to_string() == needle
}

/// Set by the stop signals (`source::STOP_SIGNALS`).
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// The kernel side of the view: `SOCKS` to read and the close events.
struct Source {
    socks: BpfHashMap<MapData, u64, SockInfo>,
    ring: RingBuf<MapData>,
    clock: Clock,
    losses: crate::source::LossCounters,
    /// Records in the ring buffer that did not decode.
    undecodable: u64,
    /// Resets sent or received, by socket (see `Event::sock`), until its row shows closed.
    resets: HashMap<u64, u32>,
}

/// The most sockets whose resets are kept at once: resets of sockets the view never shows
/// (time-wait ones, filtered ones) would otherwise pile up. Beyond it the counts start over.
const RESETS_KEPT: usize = 65_536;

/// One connection's figures, from `SOCKS` or its close event.
struct Counts {
    /// Which socket (see `Event::sock`).
    sock: u64,
    owner: Owner,
    endpoints: Endpoints,
    tx: u64,
    rx: u64,
    retrans: u32,
    srtt_us: u32,
    /// Since the handshake ended, where tcptrace saw it end.
    age: Option<Duration>,
}

impl Source {
    fn live(&self) -> Vec<Counts> {
        let now_ns = decode::monotonic_now_ns();
        self.socks
            .iter()
            .filter_map(Result::ok)
            // Ends unknown yet, or dropped by the socket filters (see socks::live_ends_wanted).
            .filter(|(_, info)| info.endpoints.family != 0 && info.filtered_out == 0)
            .filter_map(|(sock, info)| {
                let t = &info.task;
                Some(Counts {
                    sock,
                    owner: decode::owner_of(t.pid, t.tid, t.uid, &t.comm),
                    endpoints: decode::endpoints(&info.endpoints).ok()?,
                    tx: info.sent_bytes,
                    rx: info.received_bytes,
                    retrans: info.total_retrans,
                    srtt_us: info.srtt_us,
                    age: (info.established_ns != 0)
                        .then(|| Duration::from_nanos(now_ns.saturating_sub(info.established_ns))),
                })
            })
            .collect()
    }

    /// Close events waiting in the ring buffer.
    fn closed(&mut self) -> Vec<Counts> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            match decode(&item, self.clock) {
                Ok(e) => {
                    if matches!(e.detail, Detail::Reset { .. }) && e.sock != 0 {
                        if self.resets.len() >= RESETS_KEPT {
                            self.resets.clear();
                        }
                        *self.resets.entry(e.sock).or_insert(0) += 1;
                    }
                    if let Detail::Close(c) = e.detail {
                        out.push(Counts {
                            sock: e.sock,
                            owner: e.owner,
                            endpoints: e.endpoints,
                            tx: c.bytes_sent,
                            rx: c.bytes_received,
                            retrans: c.total_retrans,
                            srtt_us: c.srtt_us,
                            age: c.lifetime,
                        });
                    }
                }
                Err(_) => self.undecodable += 1,
            }
        }
        out
    }

    /// Events lost so far (a lost close takes its connection's last counts with it).
    fn lost(&self) -> u64 {
        crate::run::losses(&self.losses).lost() + self.undecodable
    }
}

pub(crate) fn run(cli: &Cli, args: &TopArgs) -> Result<()> {
    let config = Config {
        events: kind_bit(EventKind::Close) | kind_bit(EventKind::Reset),
        count_calls: 1,
        live: 1,
        count_states: 0,
    };
    // Before the programs load, as the trace's (see `StopSignals`): a stop signal sent in
    // the first moments ends the view at its first look.
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for number in crate::source::STOP_SIGNALS {
        // SAFETY: installing a handler that only stores to an atomic.
        unsafe { libc::signal(number, handler as libc::sighandler_t) };
    }
    let mut tracer = crate::run::load(cli, config)?;
    let losses = crate::source::LossCounters::new(&mut tracer)?;
    let socks = tracer.ebpf.take_map("SOCKS").context("SOCKS map missing")?;
    let ring = tracer.ebpf.take_map("EVENTS").context("EVENTS map missing")?;
    let mut source = Source {
        socks: BpfHashMap::try_from(socks)?,
        ring: RingBuf::try_from(ring)?,
        clock: Clock::now(),
        losses,
        undecodable: 0,
        resets: HashMap::new(),
    };
    if cli.verbose {
        say!("tcptrace: tracing; Ctrl-C to stop");
    }
    let end = cli.duration.map(|d| Instant::now() + d);
    let result = if io::stdout().is_terminal() && !args.batch {
        interactive(&mut source, args, end)
    } else {
        batch(&mut source, args, end).context("writing the snapshots to stdout")
    };
    // Said last, after the terminal is back: what the view could not show.
    tracer.stop_hooks();
    let end = crate::run::final_losses(&source.losses);
    say!("tcptrace: {}{}", end.describe(), crate::run::undecodable_note(source.undecodable));
    result
}

/// Whether to end the view: a signal, or `-d`'s time is up.
fn should_stop(end: Option<Instant>) -> bool {
    STOP.load(Ordering::Relaxed) || end.is_some_and(|end| Instant::now() >= end)
}

/// Sleeps until `deadline` in short steps, collecting close events; false when told to stop.
fn wait_until(
    deadline: Instant,
    end: Option<Instant>,
    source: &mut Source,
    closed: &mut Vec<Counts>,
) -> bool {
    while Instant::now() < deadline {
        if should_stop(end) {
            return false;
        }
        closed.extend(source.closed());
        std::thread::sleep(
            Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    closed.extend(source.closed());
    true
}

fn batch(source: &mut Source, args: &TopArgs, end: Option<Instant>) -> Result<()> {
    let mut tracker = Tracker::new();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut closed = Vec::new();
    let mut next = Instant::now() + args.interval;
    for _ in 0..args.iterations.unwrap_or(u64::MAX) {
        if !wait_until(next, end, source, &mut closed) {
            break;
        }
        next += args.interval;
        let live = source.live();
        let mut rows = tracker.rows(&live, std::mem::take(&mut closed), &mut source.resets);
        sort(&mut rows, args.sort);
        let time = jiff::Zoned::now().strftime("%H:%M:%S");
        writeln!(out, "{time} connections {} lost {}", rows.len(), source.lost())?;
        writeln!(out, "PID COMM LADDR LPORT RADDR RPORT TX_BPS RX_BPS TX_BYTES RX_BYTES RETRANS RESETS SRTT_US AGE_MS STATE")?;
        for r in &rows {
            let (pid, comm) = if r.owner.known() {
                (r.owner.pid.to_string(), crate::printer::column_safe(&r.owner.comm))
            } else {
                ("-".into(), "-".into())
            };
            writeln!(
                out,
                "{pid} {comm} {} {} {} {} {:.0} {:.0} {} {} {} {} {} {} {}",
                r.endpoints.laddr,
                r.endpoints.lport,
                r.endpoints.raddr,
                r.endpoints.rport,
                r.tx_rate,
                r.rx_rate,
                r.tx_total,
                r.rx_total,
                r.retrans,
                r.resets,
                r.srtt_us,
                r.age.as_millis(),
                if r.closed { "closed" } else { "open" }
            )?;
        }
        writeln!(out)?;
        out.flush()?;
    }
    Ok(())
}

/// Puts the terminal back however the view ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        let _ = crossterm::execute!(
            io::stdout(),
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

fn interactive(source: &mut Source, args: &TopArgs, end: Option<Instant>) -> Result<()> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::{
        layout::Constraint,
        style::{Modifier, Style},
        widgets::{Block, Cell, Paragraph, Row as TableRow, Table},
    };

    crossterm::terminal::enable_raw_mode()?;
    let _guard = TerminalGuard;
    crossterm::execute!(io::stdout(), crossterm::terminal::EnterAlternateScreen)?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))?;
    let mut tracker = Tracker::new();
    let mut sort_key = args.sort;
    let mut filter = String::new();
    let mut typing = false;
    let mut rows: Vec<Row> = Vec::new();
    let mut closed = Vec::new();
    let mut lost = 0;
    // The first reading after one interval, as top does: a rate needs two readings.
    let mut next = Instant::now() + args.interval;
    // `-n`: readings shown so far; the view ends once the last one has been drawn.
    let mut readings = 0;
    let mut last_drawn = false;
    loop {
        if should_stop(end) || last_drawn {
            return Ok(());
        }
        closed.extend(source.closed());
        if Instant::now() >= next {
            let live = source.live();
            rows = tracker.rows(&live, std::mem::take(&mut closed), &mut source.resets);
            lost = source.lost();
            next = Instant::now() + args.interval;
            readings += 1;
            last_drawn = args.iterations.is_some_and(|n| readings >= n);
        }
        let mut shown: Vec<Row> = rows.iter().filter(|r| matches(r, &filter)).cloned().collect();
        sort(&mut shown, sort_key);
        terminal.draw(|frame| {
            let status = format!(
                " tcptrace top: {} connections{}, sorted by {} (s: next sort, /: filter{}, q: quit){}",
                shown.len(),
                if lost > 0 { format!(", {lost} events lost") } else { String::new() },
                sort_key.name(),
                if filter.is_empty() { String::new() } else { format!(" \"{filter}\"") },
                if typing { format!("  filter: {filter}_") } else { String::new() }
            );
            let header = ["PID", "COMM", "LOCAL", "REMOTE", "TX/s", "RX/s", "TX", "RX", "RETRANS", "RST", "SRTT", "AGE"]
                .into_iter()
                .map(Cell::from)
                .collect::<TableRow>()
                .style(Style::default().add_modifier(Modifier::REVERSED));
            let body = shown.iter().map(|r| {
                let ep = &r.endpoints;
                let pid = if r.owner.known() { r.owner.pid.to_string() } else { "-".into() };
                TableRow::new(vec![
                    pid,
                    // Escaped as in the table: a process name is anyone's to choose.
                    crate::printer::printable(&r.owner.comm).into_owned(),
                    format!("{}:{}", ep.laddr, ep.lport),
                    format!("{}:{}", ep.raddr, ep.rport),
                    format!("{}/s", units::bytes(r.tx_rate as u64)),
                    format!("{}/s", units::bytes(r.rx_rate as u64)),
                    units::bytes(r.tx_total),
                    units::bytes(r.rx_total),
                    r.retrans.to_string(),
                    r.resets.to_string(),
                    units::duration(Duration::from_micros(u64::from(r.srtt_us))),
                    if r.closed { format!("closed {}", units::duration(r.age)) } else { units::duration(r.age) },
                ])
            });
            let widths = [7, 16, 22, 22, 11, 11, 10, 10, 7, 3, 9, 15].map(Constraint::Length);
            let area = frame.area();
            let [top, rest] = ratatui::layout::Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
            frame.render_widget(Paragraph::new(status), top);
            frame.render_widget(Table::new(body, widths).header(header).block(Block::default()), rest);
        })?;
        if event::poll(Duration::from_millis(100))? {
            if let Event::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                // Raw mode turns Ctrl-C into a key press rather than SIGINT.
                if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
                    return Ok(());
                }
                if typing {
                    match key.code {
                        KeyCode::Enter => typing = false,
                        KeyCode::Esc => {
                            typing = false;
                            filter.clear();
                        }
                        KeyCode::Backspace => {
                            filter.pop();
                        }
                        KeyCode::Char(c) => filter.push(c),
                        _ => {}
                    }
                    continue;
                }
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('s') => sort_key = sort_key.next(),
                    KeyCode::Char('/') => {
                        typing = true;
                        filter.clear();
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(port: u16, tx: u64, rx: u64) -> Counts {
        counts_of(u64::from(port), port, tx, rx)
    }

    fn counts_of(sock: u64, port: u16, tx: u64, rx: u64) -> Counts {
        let owner = Owner { pid: 7, tid: 7, uid: 0, comm: "x".into() };
        let ip = "127.0.0.1".parse().expect("ip");
        Counts {
            sock,
            owner,
            endpoints: Endpoints { laddr: ip, lport: port, raddr: ip, rport: 80 },
            tx,
            rx,
            retrans: 0,
            srtt_us: 0,
            age: None,
        }
    }

    /// Two network namespaces can each hold a connection with the same addresses and
    /// ports: two rows, each with its own rate.
    #[test]
    fn connections_alike_but_for_their_socket_are_two_rows() {
        let mut t = Tracker::new();
        t.rows(
            &[counts_of(1, 9, 100, 0), counts_of(2, 9, 1_000, 0)],
            Vec::new(),
            &mut HashMap::new(),
        );
        t.last = Instant::now() - Duration::from_secs(1);
        let rows = t.rows(
            &[counts_of(1, 9, 200, 0), counts_of(2, 9, 1_000, 0)],
            Vec::new(),
            &mut HashMap::new(),
        );
        let mut rates: Vec<u64> = rows.iter().map(|r| r.tx_rate.round() as u64).collect();
        rates.sort_unstable();
        assert_eq!(rates.len(), 2);
        assert!(rates[0] == 0 && (99..=101).contains(&rates[1]), "{rows:?}");
    }

    #[test]
    fn rates_are_differences_and_closed_connections_count_their_last_bytes() {
        let mut t = Tracker::new();
        let first = t.rows(&[counts(1, 100, 10)], Vec::new(), &mut HashMap::new());
        assert_eq!((first[0].tx_total, first[0].rx_total), (100, 10));
        t.last = Instant::now() - Duration::from_secs(2);
        let second = t.rows(&[counts(1, 300, 10)], vec![counts(2, 50, 0)], &mut HashMap::new());
        let open = second.iter().find(|r| r.endpoints.lport == 1).expect("open row");
        assert!((open.tx_rate - 100.0).abs() < 1.0, "{open:?}");
        assert_eq!(open.rx_rate, 0.0);
        let gone = second.iter().find(|r| r.endpoints.lport == 2).expect("closed row");
        assert!(gone.closed && gone.tx_total == 50);
        let third = t.rows(&[], Vec::new(), &mut HashMap::new());
        assert!(third.is_empty(), "closed rows are shown once: {third:?}");
    }

    /// A row shows its connection's resets; once its closed row is shown they are gone.
    #[test]
    fn resets_are_shown_per_connection_until_it_has_closed() {
        let mut t = Tracker::new();
        let mut resets = HashMap::from([(1, 1), (2, 2)]);
        let rows = t.rows(&[counts(1, 0, 0)], vec![counts(2, 0, 0)], &mut resets);
        assert_eq!(
            rows.iter().map(|r| (r.endpoints.lport, r.resets)).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        assert_eq!(resets, HashMap::from([(1, 1)]), "the closed one's taken");
    }

    /// A connection's age is from the end of its handshake where tcptrace saw it (its
    /// close event's lifetime, once closed), else from the first reading that showed it.
    #[test]
    fn age_is_the_connections_own_where_known() {
        let mut t = Tracker::new();
        let known = Counts { age: Some(Duration::from_secs(90)), ..counts(1, 0, 0) };
        let first = t.rows(&[known, counts(2, 0, 0)], Vec::new(), &mut HashMap::new());
        assert_eq!(first.iter().map(|r| r.age.as_secs()).collect::<Vec<_>>(), [90, 0]);
        t.seen.get_mut(&2).expect("seen").since -= Duration::from_secs(5);
        let closed = Counts { age: Some(Duration::from_secs(91)), ..counts(1, 0, 0) };
        let second = t.rows(&[counts(2, 0, 0)], vec![closed], &mut HashMap::new());
        assert_eq!(
            second
                .iter()
                .map(|r| (r.endpoints.lport, r.age.as_secs(), r.closed))
                .collect::<Vec<_>>(),
            [(2, 5, false), (1, 91, true)]
        );
    }

    #[test]
    fn sorting_and_filtering() {
        let mut t = Tracker::new();
        let mut rows = t.rows(
            &[counts(1, 5, 0), counts(2, 500, 0), counts(3, 50, 9000)],
            Vec::new(),
            &mut HashMap::new(),
        );
        sort(&mut rows, SortKey::Total);
        assert_eq!(rows.iter().map(|r| r.endpoints.lport).collect::<Vec<_>>(), [3, 2, 1]);
        sort(&mut rows, SortKey::Tx);
        assert_eq!(rows[0].endpoints.lport, 2);
        assert!(
            matches(&rows[0], "")
                && matches(&rows[0], "127.0")
                && matches(&rows[0], "80")
                && !matches(&rows[0], "nginx")
        );
    }
}
