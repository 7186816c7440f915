//! What a run saw and lost, for the line said on stderr at its end (the trace's,
//! `serve`'s and `top`'s) and for `serve`'s loss metrics.

use tracer_common::counters::Counter;

/// What went through, and what did not, for the summary line (the trace's and `serve`'s).
#[derive(Default)]
pub(crate) struct Tally {
    /// Indexed like `event::KINDS`: a map lookup per event showed in profiles.
    per_kind: [u64; crate::event::KINDS.len()],
    pub(crate) undecodable: u64,
}

impl Tally {
    pub(crate) fn event(&mut self, event: &crate::event::Event) {
        if let Some(n) = self.per_kind.get_mut(event.kind_index()) {
            *n += 1;
        }
    }

    /// The line printed on stderr at exit: events per type, what was lost and why.
    pub(crate) fn summary(&self, end: &Losses) -> String {
        let seen: u64 = self.per_kind.iter().sum();
        let kinds: Vec<String> = crate::event::KINDS
            .iter()
            .zip(self.per_kind)
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let kinds =
            if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) };
        format!(
            "tcptrace: {seen} events{kinds}; {}; filtered in the kernel {}{}",
            end.describe(),
            end.filtered,
            undecodable_note(self.undecodable)
        )
    }
}

/// "; N undecodable" for the exit summaries, or nothing when every record decoded.
pub(crate) fn undecodable_note(undecodable: u64) -> String {
    if undecodable > 0 {
        format!("; {undecodable} undecodable")
    } else {
        String::new()
    }
}

/// Losses as the kernel side counted them.
pub(crate) struct Losses {
    pub(crate) ring_full: u64,
    pub(crate) read_errors: u64,
    /// Program runs the kernel skipped (paired state programs excepted: see loader::stats).
    pub(crate) missed_runs: u64,
    pub(crate) state_gaps: u64,
    pub(crate) map_errors: u64,
    /// Entries the kernel's full connection table evicted (see
    /// `LossCounters::forgotten_at_least`): each connection's owner, lost with it, so its
    /// later events lack it, or never come. Evictions, not connections: with every state
    /// change followed, a connection evicted is tracked anew (owner unknown) at its next
    /// change, and that entry can be evicted too.
    pub(crate) forgotten: u64,
    pub(crate) filtered: u64,
}

/// The losses so far, while the hooks run (forgotten connections: a lower bound).
pub(crate) fn losses(source: &crate::source::LossCounters) -> Losses {
    Losses { forgotten: source.forgotten_at_least(), ..counted_losses(source) }
}

/// The losses at the end, exact: only once the hooks are gone.
pub(crate) fn final_losses(source: &crate::source::LossCounters) -> Losses {
    Losses { forgotten: source.forgotten_at_exit(), ..counted_losses(source) }
}

fn counted_losses(source: &crate::source::LossCounters) -> Losses {
    Losses {
        ring_full: source.counter(Counter::RingbufFull),
        read_errors: source.counter(Counter::ReadError),
        missed_runs: source.missed_runs(),
        state_gaps: source.counter(Counter::StateGap),
        map_errors: source.counter(Counter::MapError),
        forgotten: 0,
        filtered: source.counter(Counter::Filtered),
    }
}

impl Losses {
    /// Each reason with its count, named as `tcptrace serve` labels them.
    pub(crate) const fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            ("ring_buffer_full", self.ring_full),
            ("kernel_read_failed", self.read_errors),
            ("hook_run_skipped", self.missed_runs),
            ("state_out_of_sequence", self.state_gaps),
            ("map_update_refused", self.map_errors),
            ("connection_table_full", self.forgotten),
        ]
    }

    pub(crate) fn lost(&self) -> u64 {
        self.ring_full
            + self.read_errors
            + self.missed_runs
            + self.state_gaps
            + self.map_errors
            + self.forgotten
    }

    /// The loss part of the summary, e.g. `lost 3 (ring buffer full 3, ...)`; a hint
    /// when the connection table was too small.
    pub(crate) fn describe(&self) -> String {
        let hint = if self.forgotten > 0 { "; raise --max-connections" } else { "" };
        format!(
            "lost {} (ring buffer full {}, kernel reads failed {}, hook runs skipped by the kernel {}, state changes out of sequence {}, map updates refused {}, entries evicted from the full connection table {}{hint})",
            self.lost(),
            self.ring_full,
            self.read_errors,
            self.missed_runs,
            self.state_gaps,
            self.map_errors,
            self.forgotten
        )
    }
}
