//! tcptrace's lines on stderr at exit: the summary, read with the type tcptrace writes it
//! with (`tracer_common::summary::Summary`: the text line, or one JSON object under
//! `-o json`), and, with `-v`, `tcptrace: connections tracked at exit: N (...)`.

pub use tracer_common::summary::Summary;

use super::Finished;

/// The summary among tcptrace's stderr lines (the trace's and `serve`'s).
pub fn summary_in(stderr: &[String]) -> Summary {
    Summary::find(stderr.iter().map(String::as_str))
        .unwrap_or_else(|| panic!("no summary: {stderr:?}"))
}

/// The number right after `label` in `line`, up to the next space, comma, semicolon or
/// closing parenthesis; `None` when `label` is not there or no number follows it.
pub fn number_after(line: &str, label: &str) -> Option<usize> {
    line.split(label).nth(1)?.split([' ', ',', ';', ')']).next()?.parse().ok()
}

/// A count of a summary, as a `usize` for comparing with what a test counted.
pub fn count(n: u64) -> usize {
    usize::try_from(n).expect("a count that fits")
}

/// The entries a summary says the full connection table evicted.
pub fn forgotten_in(summary: &Summary) -> usize {
    count(summary.lost_by_reason.connection_table_full)
}

/// The hook runs a summary says the kernel skipped.
pub fn skipped_in(summary: &Summary) -> usize {
    count(summary.lost_by_reason.hook_run_skipped)
}

/// The state changes a summary says were missed.
pub fn gaps_in(summary: &Summary) -> usize {
    count(summary.lost_by_reason.state_out_of_sequence)
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
    /// tcptrace's summary on stderr.
    pub fn summary(&self) -> Summary {
        summary_in(&self.stderr)
    }

    /// The events tcptrace said it lost: what it counted and reported, hook runs the
    /// kernel skipped among them.
    pub fn lost(&self) -> usize {
        count(self.summary().lost)
    }

    /// What the summary says the kernel-side filters dropped, if there is a summary.
    pub fn filtered(&self) -> Option<usize> {
        Summary::find(self.stderr.iter().map(String::as_str)).map(|s| count(s.filtered))
    }
}
