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
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{HashMap as BpfHashMap, MapData};
use tracer_common::{conn::SockInfo, event::kind_bit, event::EventKind, filter::Config};

use crate::{
    cli::{Cli, SortKey, TopArgs},
    config::Settings,
    decode,
    event::{Detail, Endpoints, Owner},
    printer::units,
    session::{Flow, Session, Sink, SoFar},
    summary::{Losses, Tally},
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

fn sort_rows(rows: &mut [Row], key: SortKey) {
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

/// `top`'s sink: the close and reset events, and a reading of `SOCKS` every interval,
/// shown on the terminal or printed as batch snapshots.
struct TopSink {
    /// What tcptrace knows of each connection, read every interval.
    socks: BpfHashMap<MapData, u64, SockInfo>,
    /// Resets sent or received, by socket (see `Event::sock`), until its row shows closed.
    resets: HashMap<u64, u32>,
    /// Close events since the last reading.
    closed: Vec<Counts>,
    tracker: Tracker,
    interval: Duration,
    sort: SortKey,
    /// `-n`: readings to show, and how many have been.
    iterations: Option<u64>,
    readings: u64,
    /// When the next reading is due: the first after one interval, as top does (a rate
    /// needs two readings).
    next: Instant,
    /// Events lost so far, as the last tick said.
    lost: u64,
    view: View,
}

enum View {
    /// One snapshot per interval, like `top -b`.
    Batch(io::BufWriter<io::Stdout>),
    /// The full-screen table; the terminal taken at the first tick (after `-v`'s lines).
    Screen(Option<Screen>),
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

pub(crate) fn run(cli: &Cli, args: &TopArgs) -> Result<()> {
    let config = Config {
        events: kind_bit(EventKind::Close) | kind_bit(EventKind::Reset),
        count_calls: 1,
        live: 1,
        count_states: 0,
        close_reasons: 0,
        _pad: 0,
    };
    let settings = Settings::new(cli, config)?;
    let mut session = Session::load(&settings)?;
    let socks = session.tracer.ebpf.take_map("SOCKS").context("SOCKS map missing")?;
    let view = if io::stdout().is_terminal() && !args.batch {
        View::Screen(None)
    } else {
        View::Batch(io::BufWriter::new(io::stdout()))
    };
    let mut sink = TopSink {
        socks: BpfHashMap::try_from(socks)?,
        resets: HashMap::new(),
        closed: Vec::new(),
        tracker: Tracker::new(),
        interval: args.interval,
        sort: args.sort,
        iterations: args.iterations,
        readings: 0,
        next: Instant::now() + args.interval,
        lost: 0,
        view,
    };
    session.run(&mut sink)
}

impl TopSink {
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

    /// This interval's rows, when a reading is due.
    fn reading(&mut self) -> Option<Vec<Row>> {
        let now = Instant::now();
        if now < self.next {
            return None;
        }
        // A fixed cadence, as top's: the next reading an interval after this one was due
        // (after a stall, an interval from now).
        self.next += self.interval;
        if self.next <= now {
            self.next = now + self.interval;
        }
        self.readings += 1;
        let live = self.live();
        Some(self.tracker.rows(&live, std::mem::take(&mut self.closed), &mut self.resets))
    }

    /// Whether `-n` readings have been shown.
    fn shown_all(&self) -> bool {
        self.iterations.is_some_and(|n| self.readings >= n)
    }
}

impl Sink for TopSink {
    fn event(&mut self, e: &crate::event::Event) -> Result<Flow> {
        if matches!(e.detail, Detail::Reset { .. }) && e.sock != 0 {
            if self.resets.len() >= RESETS_KEPT {
                self.resets.clear();
            }
            *self.resets.entry(e.sock).or_insert(0) += 1;
        }
        if let Detail::Close(c) = &e.detail {
            self.closed.push(Counts {
                sock: e.sock,
                owner: e.owner.clone(),
                endpoints: e.endpoints,
                tx: c.bytes_sent,
                rx: c.bytes_received,
                retrans: c.total_retrans,
                srtt_us: c.srtt_us,
                age: c.lifetime,
            });
        }
        Ok(Flow::Continue)
    }

    /// Often enough for keys to feel immediate; a reading only every interval.
    fn tick_every(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn tick(&mut self, so_far: &SoFar) -> Result<Flow> {
        // A lost close takes its connection's last counts with it.
        self.lost = so_far.lost();
        let lost = self.lost;
        let sort = self.sort;
        let rows = self.reading();
        let shown_all = self.shown_all();
        match &mut self.view {
            View::Batch(out) => {
                if let Some(mut rows) = rows {
                    sort_rows(&mut rows, sort);
                    snapshot(out, &rows, lost).context("writing the snapshots to stdout")?;
                }
                Ok(if shown_all { Flow::Stop } else { Flow::Continue })
            }
            View::Screen(screen) => {
                let screen = match screen {
                    Some(screen) => screen,
                    None => screen.insert(Screen::enter(sort)?),
                };
                if let Some(rows) = rows {
                    screen.rows = rows;
                }
                if screen.keys()? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                screen.draw(lost)?;
                // `-n`: the view ends once the last reading has been drawn.
                Ok(if shown_all { Flow::Stop } else { Flow::Continue })
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        // The terminal back before the summary is said.
        if let View::Screen(screen) = &mut self.view {
            screen.take();
        }
        Ok(())
    }

    const SUMMARY_AFTER_FAILURE: bool = true;

    /// What the view could not show.
    fn summary(&self, tally: &Tally, end: &Losses) -> String {
        format!(
            "tcptrace: {}{}",
            end.describe(),
            crate::summary::undecodable_note(tally.undecodable)
        )
    }
}

/// One batch snapshot.
fn snapshot(out: &mut impl Write, rows: &[Row], lost: u64) -> io::Result<()> {
    let time = jiff::Zoned::now().strftime("%H:%M:%S");
    writeln!(out, "{time} connections {} lost {lost}", rows.len())?;
    writeln!(out, "PID COMM LADDR LPORT RADDR RPORT TX_BPS RX_BPS TX_BYTES RX_BYTES RETRANS RESETS SRTT_US AGE_MS STATE")?;
    for r in rows {
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
    out.flush()
}

/// The full-screen view: the terminal in raw mode on the alternate screen while it lives.
struct Screen {
    terminal: ratatui::Terminal<ratatui::backend::CrosstermBackend<io::Stdout>>,
    rows: Vec<Row>,
    sort: SortKey,
    filter: String,
    typing: bool,
}

impl Screen {
    fn enter(sort: SortKey) -> Result<Self> {
        crossterm::terminal::enable_raw_mode()?;
        let taken = crossterm::execute!(io::stdout(), crossterm::terminal::EnterAlternateScreen)
            .and_then(|()| {
                ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))
            });
        match taken {
            Ok(terminal) => {
                Ok(Self { terminal, rows: Vec::new(), sort, filter: String::new(), typing: false })
            }
            Err(err) => {
                // No Screen to drop: the terminal goes back here.
                restore_terminal();
                Err(err.into())
            }
        }
    }

    /// The keys pressed since the last look: `Flow::Stop` for q, Esc or Ctrl-C.
    fn keys(&mut self) -> Result<Flow> {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        while event::poll(Duration::ZERO)? {
            let Event::Key(key) = event::read()? else { continue };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            // Raw mode turns Ctrl-C into a key press rather than SIGINT.
            if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
                return Ok(Flow::Stop);
            }
            if self.typing {
                match key.code {
                    KeyCode::Enter => self.typing = false,
                    KeyCode::Esc => {
                        self.typing = false;
                        self.filter.clear();
                    }
                    KeyCode::Backspace => {
                        self.filter.pop();
                    }
                    KeyCode::Char(c) => self.filter.push(c),
                    _ => {}
                }
                continue;
            }
            match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(Flow::Stop),
                KeyCode::Char('s') => self.sort = self.sort.next(),
                KeyCode::Char('/') => {
                    self.typing = true;
                    self.filter.clear();
                }
                _ => {}
            }
        }
        Ok(Flow::Continue)
    }

    fn draw(&mut self, lost: u64) -> Result<()> {
        use ratatui::{
            layout::Constraint,
            style::{Modifier, Style},
            widgets::{Block, Cell, Paragraph, Row as TableRow, Table},
        };
        let (filter, typing) = (&self.filter, self.typing);
        let sort_key = self.sort;
        let mut shown: Vec<Row> =
            self.rows.iter().filter(|r| matches(r, filter)).cloned().collect();
        sort_rows(&mut shown, sort_key);
        let terminal = &mut self.terminal;
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
        Ok(())
    }
}

impl Drop for Screen {
    /// Puts the terminal back however the view ends.
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
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
        sort_rows(&mut rows, SortKey::Total);
        assert_eq!(rows.iter().map(|r| r.endpoints.lport).collect::<Vec<_>>(), [3, 2, 1]);
        sort_rows(&mut rows, SortKey::Tx);
        assert_eq!(rows[0].endpoints.lport, 2);
        assert!(
            matches(&rows[0], "")
                && matches(&rows[0], "127.0")
                && matches(&rows[0], "80")
                && !matches(&rows[0], "nginx")
        );
    }
}
