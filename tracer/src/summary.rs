//! What a run saw and lost: the summary said on stderr at its end (the trace's, `serve`'s
//! and `top`'s; its formats are `tracer_common::summary::Summary`'s), and `serve`'s loss
//! metrics.

use tracer_common::{
    counters::Counter,
    summary::{ByType, LostByReason, Summary},
};

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

    /// Events per type, what was lost and why.
    pub(crate) fn summary(&self, end: &Losses) -> Summary {
        let count = |name: &str| {
            let at = crate::event::KINDS.iter().position(|k| *k == name);
            at.and_then(|i| self.per_kind.get(i)).copied().unwrap_or(0)
        };
        let lost_by_reason = end.by_reason();
        Summary {
            events: self.per_kind.iter().sum(),
            by_type: ByType {
                accept: count("accept"),
                close: count("close"),
                connect: count("connect"),
                drop: count("drop"),
                reset: count("reset"),
                retransmit: count("retransmit"),
                state: count("state"),
            },
            lost: lost_by_reason.total(),
            lost_by_reason,
            filtered: end.filtered,
            undecodable: self.undecodable,
        }
    }
}

/// "; N undecodable" for top's summary, or nothing when every record decoded.
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
    pub(crate) const fn by_reason(&self) -> LostByReason {
        LostByReason {
            ring_buffer_full: self.ring_full,
            kernel_read_failed: self.read_errors,
            hook_run_skipped: self.missed_runs,
            state_out_of_sequence: self.state_gaps,
            map_update_refused: self.map_errors,
            connection_table_full: self.forgotten,
        }
    }

    pub(crate) const fn lost(&self) -> u64 {
        self.by_reason().total()
    }

    /// The loss part of the summary, e.g. `lost 3 (ring buffer full 3, ...)`; a hint
    /// when the connection table was too small.
    pub(crate) fn describe(&self) -> String {
        self.by_reason().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event type has its field, named as `event::KINDS` names it, in its order.
    #[test]
    fn the_summary_counts_every_event_type_under_its_name() {
        let tally = Tally { per_kind: [1, 2, 3, 4, 5, 6, 7], undecodable: 8 };
        let end = Losses {
            ring_full: 10,
            read_errors: 20,
            missed_runs: 30,
            state_gaps: 40,
            map_errors: 50,
            forgotten: 60,
            filtered: 70,
        };
        let summary = tally.summary(&end);
        let names: Vec<&str> = summary.by_type.named().iter().map(|(name, _)| *name).collect();
        assert_eq!(names, crate::event::KINDS);
        let counts: Vec<u64> = summary.by_type.named().iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!((summary.events, summary.lost, summary.filtered), (28, 210, 70));
    }
}
