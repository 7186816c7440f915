//! A real peer: iperf3. Its server (`-s -1`) closes its data socket once the client says
//! it is done, and may find bytes still unread then, which makes the kernel reset the
//! connection (the issue-32 case). tcptrace's counts of the data connection must match
//! iperf3's own report (`-J`) to the byte, whichever way it ended: what the client wrote,
//! what the server read (each after iperf3's 37-byte cookie), and what the server threw
//! away; and a reset must say so on both sides.

mod common;

use std::process::{Command, Stdio};

use common::{events::assert_fields, serial, wait_until, Trace};
use serde_json::{json, Value};

/// iperf3's cookie: 36 characters and a NUL, written on the data connection before the
/// counted bytes.
const COOKIE: u64 = 37;

#[test]
fn iperf3_byte_counts_match_its_own_report_and_a_reset_says_why() {
    let _serial = serial();
    let iperf3 = std::env::var("TT_IPERF3").unwrap_or_else(|_| "iperf3".into());
    let port = (19_000 + std::process::id() % 1_000).to_string();
    let trace = Trace::new(&["-e", "close", "--port", &port]).start();
    let mut server = Command::new(&iperf3)
        .args(["-s", "-1", "-p", &port])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    let listening = port.parse().expect("a port");
    wait_until("iperf3 listens", || common::port_in_proc_net_tcp(listening));
    let client = Command::new(&iperf3)
        .args(["-c", "127.0.0.1", "-p", &port, "-n", "7654321", "-J"])
        .output()
        .expect("iperf3 -c");
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    assert!(server.wait().expect("iperf3 -s").success());
    let report: Value = serde_json::from_slice(&client.stdout).expect("iperf3's JSON report");
    let sent = report["end"]["sum_sent"]["bytes"].as_u64().expect("bytes sent");
    let received = report["end"]["sum_received"]["bytes"].as_u64().expect("bytes received");
    common::wait_out_softirqs();
    let done = trace.stop();
    // The data connection: the one that moved megabytes (the control one moves hundreds).
    let data = |direction: &str, field: &str| -> Value {
        let closes: Vec<&Value> = done
            .events
            .iter()
            .filter(|e| {
                e["type"] == "close"
                    && e["direction"] == direction
                    && e[field].as_u64() > Some(1_000_000)
            })
            .collect();
        assert_eq!(closes.len(), 1, "one {direction} data connection: {:#?}", done.events);
        closes[0].clone()
    };
    let (client_close, server_close) =
        (data("active", "bytes_written"), data("passive", "bytes_received"));
    assert_fields(
        &client_close,
        &json!({"comm": "iperf3", "bytes_written": sent + COOKIE, "bytes_read": 0}),
    );
    let unread = server_close["bytes_received"].as_u64().expect("received") - (received + COOKIE);
    assert_fields(
        &server_close,
        &json!({"comm": "iperf3", "bytes_read": received + COOKIE, "bytes_unread": unread, "bytes_written": 0}),
    );
    if unread > 0 {
        // It closed with data unread: the kernel reset the connection.
        assert_fields(
            &server_close,
            &json!({"end": "reset_sent", "reason": "TCP_ABORT_ON_CLOSE", "reason_inferred": !common::kernel_gives_reset_reasons()}),
        );
        assert_fields(&client_close, &json!({"end": "reset_received", "error": "ECONNRESET"}));
    } else {
        assert_fields(&server_close, &json!({"end": "fin"}));
        assert_fields(&client_close, &json!({"end": "fin", "bytes_unacked": 0}));
    }
}
