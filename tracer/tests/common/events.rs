//! Whole-event assertions on tcptrace's JSON events.

use serde_json::{json, Value};

/// The one event in `events`.
pub fn only<'a>(events: &[&'a Value]) -> &'a Value {
    assert_eq!(events.len(), 1, "want exactly one event, got {events:?}");
    events[0]
}

/// The one event in `events`, which are `what` (named in the message if there are more or
/// none).
pub fn only_one<'a>(events: Vec<&'a Value>, what: &str) -> &'a Value {
    assert_eq!(events.len(), 1, "want exactly one {what}, got {events:?}");
    events[0]
}

/// Asserts every field of `want` in `event` at once: one diff shows all that differ, a
/// field the event lacks as `"<absent>"`.
pub fn assert_fields(event: &Value, want: &Value) {
    let got: serde_json::Map<String, Value> = want
        .as_object()
        .expect("an object")
        .keys()
        .map(|k| (k.clone(), event.get(k).cloned().unwrap_or_else(|| "<absent>".into())))
        .collect();
    assert_eq!(Value::Object(got), *want, "in {event}");
}

/// In `assert_event`'s expected object: a field that must be there, whatever its value (a
/// time, a latency: what a test cannot know, checked apart if at all).
pub const ANY: &str = "<any>";

/// Asserts that `event` is `want`, the whole event: every field it has, no more, no fewer,
/// each with its value (or `ANY`). One message lists every field that differs, a missing
/// or unexpected one as `<absent>`. For a subset of the fields, see `assert_fields`.
pub fn assert_event(event: &Value, want: Value) {
    let got = event.as_object().unwrap_or_else(|| panic!("not a JSON object: {event}"));
    let want = want.as_object().expect("an expected object");
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let show = |v: Option<&Value>| v.map_or_else(|| "<absent>".to_string(), Value::to_string);
    let differ: Vec<String> = keys
        .into_iter()
        .filter_map(|k| match (got.get(k), want.get(k)) {
            (Some(_), Some(w)) if w == ANY => None,
            (g, w) if g == w => None,
            (g, w) => Some(format!("  {k}: got {}, want {}", show(g), show(w))),
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} field(s) differ from the expected event:\n{}\nin {event}",
        differ.len(),
        differ.join("\n")
    );
}

/// `name` where the kernel gives reset reasons, `null` where it gives none.
pub fn kernel_reason(name: &str) -> Value {
    if super::kernel_gives_reset_reasons() {
        json!(name)
    } else {
        Value::Null
    }
}

/// The resets `pid` sent.
pub fn resets_sent_by(done: &super::Finished, pid: i32) -> Vec<&Value> {
    done.of("reset", pid).into_iter().filter(|e| e["direction"] == "sent").collect()
}
