//! CSV (RFC 4180): a header row, then one row per event with one column for every field
//! any event type has (the JSON field names, docs/events.md), empty where a field does not
//! apply to the row's type or is not known. Raw numbers, as in JSON.

use std::io::{self, Write};

use serde_json::Value;

use crate::event::Event;

/// The JSON fields, common ones first, then each type's in docs/events.md order; a field
/// two types share (`total_retrans`) has one column.
const COLUMNS: [&str; 43] = [
    "type",
    "time",
    "time_ns",
    "pid",
    "tid",
    "uid",
    "comm",
    "ip",
    "laddr",
    "lport",
    "raddr",
    "rport",
    "netns",
    // connect
    "latency_ns",
    "result",
    "errno",
    "error",
    "end",
    "timeout",
    "syns_sent",
    "syns_dropped",
    "syn_drop_reason",
    // close (and errno, error, end and timeout above)
    "direction",
    "closed_by",
    "lifetime_ns",
    "bytes_sent",
    "bytes_received",
    "total_retrans",
    "srtt_us",
    "bytes_from",
    "reason",
    "reason_inferred",
    "bytes_written",
    "bytes_read",
    "bytes_unacked",
    "bytes_unread",
    // state
    "old_state",
    "new_state",
    "in_old_state_ns",
    // retransmit (and total_retrans above)
    "state",
    "tail_loss_probe",
    // drop (and direction, state and reason above)
    "count",
    "location",
];

pub(super) fn header<W: Write>(out: &mut W) -> io::Result<()> {
    writeln!(out, "{}", COLUMNS.join(","))
}

pub(super) fn event<W: Write>(out: &mut W, e: &Event) -> io::Result<()> {
    let value = super::json::value(e);
    let mut line = String::with_capacity(256);
    for (i, column) in COLUMNS.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        match value.get(column) {
            None | Some(Value::Null) => {}
            // Control characters escaped: a process name is anyone's to choose.
            Some(Value::String(s)) => push_quoted(&mut line, &super::printable(s)),
            Some(other) => line.push_str(&other.to_string()),
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

/// A text cell, quoted only when it must be (a comma, quote or line break in it).
fn push_quoted(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_only_when_needed() {
        let mut line = String::new();
        push_quoted(&mut line, "curl");
        line.push(',');
        push_quoted(&mut line, "a,\"b\"");
        assert_eq!(line, "curl,\"a,\"\"b\"\"\"");
    }

    #[test]
    fn columns_cover_every_field_of_every_event_once() {
        let all = COLUMNS.to_vec();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "a column twice");
        for event in crate::printer::tests::one_of_each() {
            let value = crate::printer::json::value(&event);
            for key in value.as_object().expect("an object").keys() {
                assert!(
                    all.contains(&key.as_str()),
                    "field {key} of {} has no CSV column",
                    event.kind()
                );
            }
        }
    }
}
