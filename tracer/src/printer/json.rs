//! NDJSON: one object per event, a `type` per kind, numbers as numbers, addresses as
//! strings. Field names are stable once documented in docs/events.md.

use std::io::{self, Write};

use serde::Serialize;

use crate::event::{errno_name, ConnectResult, Event};

#[derive(Serialize)]
struct ConnectJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    time_ns: u64,
    pid: u32,
    tid: u32,
    uid: u32,
    comm: &'a str,
    ip: u8,
    laddr: String,
    lport: u16,
    raddr: String,
    rport: u16,
    latency_ns: u128,
    result: &'static str,
    errno: Option<u32>,
    error: Option<&'static str>,
}

pub(super) fn event<W: Write>(out: &mut W, event: &Event) -> io::Result<()> {
    match event {
        Event::Connect(c) => {
            let ep = &c.endpoints;
            let (result, errno) = match c.result {
                ConnectResult::Ok => ("ok", None),
                ConnectResult::Failed(0) => ("failed", None),
                ConnectResult::Failed(n) => ("failed", Some(n)),
            };
            let time = jiff::Timestamp::from_nanosecond(i128::from(c.time_ns)).map_or_else(|_| String::new(), |t| t.to_string());
            let row = ConnectJson {
                kind: "connect",
                time,
                time_ns: c.time_ns,
                pid: c.owner.pid,
                tid: c.owner.tid,
                uid: c.owner.uid,
                comm: &c.owner.comm,
                ip: ep.ip_version(),
                laddr: ep.laddr.to_string(),
                lport: ep.lport,
                raddr: ep.raddr.to_string(),
                rport: ep.rport,
                latency_ns: c.latency.as_nanos(),
                result,
                errno,
                error: errno.and_then(errno_name),
            };
            serde_json::to_writer(&mut *out, &row)?;
            out.write_all(b"\n")
        }
    }
}
