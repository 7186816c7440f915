//! The summary of a run, said on stderr at its end: one text line, or with `-o json` one
//! JSON object. Written by `tcptrace` and read back by its tests and `cargo xtask bench`
//! through this one type, so that its formats are defined once, here.

extern crate std;

use core::fmt;
use std::string::String;

use serde::{Deserialize, Serialize};

/// `{"type":"summary","events":N,"by_type":{...},"lost":N,"lost_by_reason":{...},
/// "filtered":N,"undecodable":N}`, or as text: `tcptrace: N events (accept N, ...); lost N
/// (ring buffer full N, ...); filtered in the kernel N[; N undecodable]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "summary")]
pub struct Summary {
    /// Events delivered (printed), every type.
    pub events: u64,
    pub by_type: ByType,
    /// Events lost, every reason (the sum of `lost_by_reason`).
    pub lost: u64,
    pub lost_by_reason: LostByReason,
    /// Events the kernel programs filtered out (not losses).
    pub filtered: u64,
    /// Records in the ring buffer that did not decode (a bug if ever non-zero).
    pub undecodable: u64,
}

/// Events delivered, by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByType {
    pub accept: u64,
    pub close: u64,
    pub connect: u64,
    pub drop: u64,
    pub reset: u64,
    pub retransmit: u64,
    pub state: u64,
}

impl ByType {
    /// Each type's name and count, in the order the text says them.
    pub const fn named(&self) -> [(&'static str, u64); 7] {
        [
            ("accept", self.accept),
            ("close", self.close),
            ("connect", self.connect),
            ("drop", self.drop),
            ("reset", self.reset),
            ("retransmit", self.retransmit),
            ("state", self.state),
        ]
    }

    fn set(&mut self, name: &str, n: u64) -> Option<()> {
        let slot = match name {
            "accept" => &mut self.accept,
            "close" => &mut self.close,
            "connect" => &mut self.connect,
            "drop" => &mut self.drop,
            "reset" => &mut self.reset,
            "retransmit" => &mut self.retransmit,
            "state" => &mut self.state,
            _ => return None,
        };
        *slot = n;
        Some(())
    }
}

/// Events lost, by reason, named as `tcptrace serve`'s `reason` label names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LostByReason {
    pub ring_buffer_full: u64,
    pub kernel_read_failed: u64,
    pub hook_run_skipped: u64,
    pub state_out_of_sequence: u64,
    pub map_update_refused: u64,
    /// Entries evicted from the full connection table (`--max-connections`).
    pub connection_table_full: u64,
}

/// Each reason: its label, and how the text says it.
const REASON_TEXTS: [(&str, &str); 6] = [
    ("ring_buffer_full", "ring buffer full"),
    ("kernel_read_failed", "kernel reads failed"),
    ("hook_run_skipped", "hook runs skipped by the kernel"),
    ("state_out_of_sequence", "state changes out of sequence"),
    ("map_update_refused", "map updates refused"),
    ("connection_table_full", "entries evicted from the full connection table"),
];

impl LostByReason {
    /// Each reason's label and count (the labels of `tcptrace_events_lost_total`).
    pub const fn named(&self) -> [(&'static str, u64); 6] {
        [
            ("ring_buffer_full", self.ring_buffer_full),
            ("kernel_read_failed", self.kernel_read_failed),
            ("hook_run_skipped", self.hook_run_skipped),
            ("state_out_of_sequence", self.state_out_of_sequence),
            ("map_update_refused", self.map_update_refused),
            ("connection_table_full", self.connection_table_full),
        ]
    }

    pub const fn total(&self) -> u64 {
        self.ring_buffer_full
            + self.kernel_read_failed
            + self.hook_run_skipped
            + self.state_out_of_sequence
            + self.map_update_refused
            + self.connection_table_full
    }

    fn set(&mut self, text: &str, n: u64) -> Option<()> {
        let slot = match text {
            "ring buffer full" => &mut self.ring_buffer_full,
            "kernel reads failed" => &mut self.kernel_read_failed,
            "hook runs skipped by the kernel" => &mut self.hook_run_skipped,
            "state changes out of sequence" => &mut self.state_out_of_sequence,
            "map updates refused" => &mut self.map_update_refused,
            "entries evicted from the full connection table" => &mut self.connection_table_full,
            _ => return None,
        };
        *slot = n;
        Some(())
    }
}

/// `lost N (ring buffer full N, ...)`, with a hint when the connection table was too small.
impl fmt::Display for LostByReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lost {} (", self.total())?;
        for (i, ((_, text), (_, n))) in REASON_TEXTS.iter().zip(self.named()).enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{text} {n}")?;
        }
        let hint = if self.connection_table_full > 0 { "; raise --max-connections" } else { "" };
        write!(f, "{hint})")
    }
}

/// The text line.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcptrace: {} events", self.events)?;
        let mut first = true;
        for (name, n) in self.by_type.named().into_iter().filter(|&(_, n)| n > 0) {
            write!(f, "{}{name} {n}", if first { " (" } else { ", " })?;
            first = false;
        }
        if !first {
            f.write_str(")")?;
        }
        write!(f, "; {}; filtered in the kernel {}", self.lost_by_reason, self.filtered)?;
        if self.undecodable > 0 {
            write!(f, "; {} undecodable", self.undecodable)?;
        }
        Ok(())
    }
}

impl Summary {
    /// The summary among a run's stderr lines, in either form.
    pub fn find<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        lines.into_iter().find_map(Self::parse)
    }

    /// A summary line, in either form; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        if line.starts_with("{\"type\":\"summary\"") {
            serde_json::from_str(line).ok()
        } else {
            Self::parse_text(line)
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn parse_text(line: &str) -> Option<Self> {
        let number = |s: &str| s.trim().parse::<u64>().ok();
        let rest = line.strip_prefix("tcptrace: ")?;
        let (events, rest) = rest.split_once(" events")?;
        let mut summary = Self { events: number(events)?, ..Self::default() };
        let rest = match rest.strip_prefix(" (") {
            Some(kinds) => {
                let (kinds, rest) = kinds.split_once(')')?;
                for kind in kinds.split(", ") {
                    let (name, n) = kind.rsplit_once(' ')?;
                    summary.by_type.set(name, number(n)?)?;
                }
                rest
            }
            None => rest,
        };
        let rest = rest.strip_prefix("; lost ")?;
        let (lost, rest) = rest.split_once(" (")?;
        summary.lost = number(lost)?;
        let (reasons, rest) = rest.split_once(')')?;
        let reasons = reasons.split_once("; raise").map_or(reasons, |(r, _)| r);
        for reason in reasons.split(", ") {
            let (text, n) = reason.rsplit_once(' ')?;
            summary.lost_by_reason.set(text, number(n)?)?;
        }
        let rest = rest.strip_prefix("; filtered in the kernel ")?;
        let (filtered, undecodable) = rest.split_once("; ").unwrap_or((rest, ""));
        summary.filtered = number(filtered)?;
        if let Some(n) = undecodable.strip_suffix(" undecodable") {
            summary.undecodable = number(n)?;
        }
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn sample() -> Summary {
        Summary {
            events: 28,
            by_type: ByType { accept: 1, close: 2, state: 25, ..ByType::default() },
            lost: 21,
            lost_by_reason: LostByReason {
                ring_buffer_full: 1,
                hook_run_skipped: 2,
                connection_table_full: 18,
                ..LostByReason::default()
            },
            filtered: 3,
            undecodable: 4,
        }
    }

    #[test]
    fn text_says_each_figure_and_reads_back_the_same() {
        let text = sample().to_string();
        assert_eq!(
            text,
            "tcptrace: 28 events (accept 1, close 2, state 25); lost 21 (ring buffer full 1, \
             kernel reads failed 0, hook runs skipped by the kernel 2, state changes out of \
             sequence 0, map updates refused 0, entries evicted from the full connection table \
             18; raise --max-connections); filtered in the kernel 3; 4 undecodable"
        );
        assert_eq!(Summary::parse(&text), Some(sample()));
        let quiet = Summary::default();
        assert_eq!(Summary::parse(&quiet.to_string()), Some(quiet));
    }

    #[test]
    fn json_reads_back_the_same_and_other_lines_are_none() {
        let json = sample().to_json();
        assert!(json.starts_with("{\"type\":\"summary\",\"events\":28,"), "{json}");
        assert_eq!(Summary::parse(&json), Some(sample()));
        assert_eq!(Summary::parse("tcptrace: so far lost 3 (ring buffer full 3)"), None);
        assert_eq!(Summary::find(["tcptrace: tracing", json.as_str()]), Some(sample()));
    }
}
