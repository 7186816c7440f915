//! tcptrace's lines on stderr at exit, and the numbers in them: the summary
//! (`tcptrace: 5 events (connect 5); lost 0 (ring buffer full 0, ...); filtered in the
//! kernel 3`) and, with `-v`, `tcptrace: connections tracked at exit: N (...)`. Every test
//! reads them through here: one parser, one place to change if the wording does.

use super::Finished;

/// The summary line among tcptrace's stderr lines (the trace's and `serve`'s).
pub fn summary_in(stderr: &[String]) -> &str {
    stderr
        .iter()
        .find(|l| l.contains(" events ("))
        .unwrap_or_else(|| panic!("no summary: {stderr:?}"))
}

/// The number right after `label` in `line`, up to the next space, comma, semicolon or
/// closing parenthesis; `None` when `label` is not there or no number follows it.
pub fn number_after(line: &str, label: &str) -> Option<usize> {
    line.split(label).nth(1)?.split([' ', ',', ';', ')']).next()?.parse().ok()
}

/// The number after `label` in a summary (its loss list, its filtered count).
pub fn count_in(summary: &str, label: &str) -> usize {
    number_after(summary, label).unwrap_or_else(|| panic!("no {label:?} count in {summary}"))
}

/// The events a summary says were printed (`tcptrace: N events`).
pub fn events_in(summary: &str) -> usize {
    count_in(summary, "tcptrace: ")
}

/// The events a summary says were lost (`; lost N (...)`): what tcptrace counted and
/// reported, hook runs the kernel skipped among them.
pub fn lost_in(summary: &str) -> usize {
    count_in(summary, "; lost ")
}

/// The entries a summary says the full connection table evicted
/// (`entries evicted from the full connection table N`).
pub fn forgotten_in(summary: &str) -> usize {
    count_in(summary, "entries evicted from the full connection table ")
}

/// The hook runs a summary says the kernel skipped (`hook runs skipped by the kernel N`).
pub fn skipped_in(summary: &str) -> usize {
    count_in(summary, "hook runs skipped by the kernel ")
}

/// The state changes a summary says were missed (`state changes out of sequence N`).
pub fn gaps_in(summary: &str) -> usize {
    count_in(summary, "state changes out of sequence ")
}

/// The events a summary says were dropped by the kernel-side filters
/// (`filtered in the kernel N`), if it says.
pub fn filtered_in(summary: &str) -> Option<usize> {
    number_after(summary, "filtered in the kernel ")
}

/// The connections `-v` says were still tracked at exit
/// (`tcptrace: connections tracked at exit: N (M with a known owner)`).
pub fn tracked_at_exit(stderr: &[String]) -> usize {
    stderr
        .iter()
        .find_map(|l| number_after(l, "tcptrace: connections tracked at exit: "))
        .unwrap_or_else(|| panic!("no tracked count: {stderr:?}"))
}

impl Finished {
    /// tcptrace's summary line on stderr (`N events (...); lost N (...); ...`).
    pub fn summary(&self) -> &str {
        summary_in(&self.stderr)
    }

    /// The events tcptrace said it lost (`lost_in` its summary).
    pub fn lost(&self) -> usize {
        lost_in(self.summary())
    }

    /// What the summary says the kernel-side filters dropped, if it says.
    pub fn filtered(&self) -> Option<usize> {
        self.stderr.iter().find_map(|l| filtered_in(l))
    }
}
