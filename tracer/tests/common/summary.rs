//! tcptrace's summary line on stderr at exit, e.g. `tcptrace: 5 events (connect 5); lost 0
//! (ring buffer full 0, ...); filtered in the kernel 3`, and the numbers in it.

/// The summary line among tcptrace's stderr lines (the trace's and `serve`'s).
pub fn summary_in(stderr: &[String]) -> &str {
    stderr
        .iter()
        .find(|l| l.contains(" events ("))
        .unwrap_or_else(|| panic!("no summary: {stderr:?}"))
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

/// The number after `label` in a summary's loss list.
pub fn count_in(summary: &str, label: &str) -> usize {
    summary
        .split(label)
        .nth(1)
        .and_then(|rest| rest.split([',', ';', ')']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} count in {summary}"))
}
