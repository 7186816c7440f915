//! Whole-event assertions on tcptrace's JSON events.

use serde_json::Value;

/// The one event in `events`.
pub fn only<'a>(events: &[&'a Value]) -> &'a Value {
    assert_eq!(events.len(), 1, "want exactly one event, got {events:?}");
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
