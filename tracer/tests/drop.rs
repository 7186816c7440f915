//! Dropped TCP segments (`-e drop`), made for real in private network namespaces with
//! nftables rules, and checked against the rules' own counters:
//! - a storm of 200,000 SYNs dropped at the input hook is a few events (at most one a
//!   second) whose counts add up to exactly the rule's count, with nothing lost;
//! - SYNs this host drops on their way out are drop events owned by the connecting process;
//! - a connection's segments dropped on their way in, before any socket is looked up, are
//!   owned by the connection's socket, found through its ends;
//! - data dropped on its way out ends the connection in an `unsent` timeout.

mod common;

use common::{
    events::{assert_fields, only},
    fork_with, raw, serial, sockaddr_of,
    tools::{pipe, write_sysctl, PrivateRules},
    wait_child, Trace,
};
use serde_json::{json, Value};

/// A storm: 200,000 SYNs (raw, one source port) to a port whose segments an nftables rule
/// drops, in a private namespace, as fast as they go. The kernel counts them and tcptrace
/// reports the connection's drops at most once a second: a handful of events, whose counts
/// add up to exactly the rule's own count, and nothing lost.
#[test]
fn a_drop_storm_is_a_few_events_whose_counts_are_exact() {
    const SYNS: u32 = 200_000;
    let _serial = serial();
    let port = 16_000 + (std::process::id() % 1_000) as u16;
    let rules = PrivateRules::new(
        &format!("tt-storm-{port}.nft"),
        "input",
        &format!("tcp dport {port} counter drop"),
    );
    let to = sockaddr_of(format!("127.0.0.1:{port}").parse().expect("addr"));
    let report = pipe();
    let started = std::time::Instant::now();
    let trace = Trace::new(&["-e", "drop", "--port", &port.to_string()]).start();
    let storm = fork_with(c"tt-end-storm", move || {
        // SAFETY: raw system calls in a forked child.
        unsafe {
            if !rules.enter() {
                return 60;
            }
            let s = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
            // A bare TCP header: source port 40000, the port, data offset 5, SYN. Its
            // checksum is never checked: the rule drops it first.
            let mut syn = [0u8; 20];
            syn[0..2].copy_from_slice(&40_000u16.to_be_bytes());
            syn[2..4].copy_from_slice(&port.to_be_bytes());
            syn[12] = 5 << 4;
            syn[13] = 0x02;
            for _ in 0..SYNS {
                if libc::sendto(
                    s,
                    syn.as_ptr().cast(),
                    syn.len(),
                    0,
                    (&raw const to.0).cast(),
                    to.1,
                ) != 20
                {
                    return 61;
                }
            }
            let dropped = rules.counted().unwrap_or(0);
            i32::from(libc::write(report[1], (&raw const dropped).cast(), 8) != 8) * 62
        }
    });
    assert_eq!(wait_child(storm), 0, "the storm failed");
    let mut dropped = 0u64;
    // SAFETY: a read of the count the child wrote.
    assert_eq!(unsafe { libc::read(report[0], (&raw mut dropped).cast(), 8) }, 8);
    close_all(&report);
    assert_eq!(dropped, u64::from(SYNS), "the rule's counter");
    let done = trace.stop();
    let seconds = started.elapsed().as_secs() + 2;
    let drops: Vec<&Value> = done.events.iter().filter(|e| e["type"] == "drop").collect();
    assert!(
        !drops.is_empty() && drops.len() as u64 <= seconds,
        "{} events in {seconds} s",
        drops.len()
    );
    for drop in &drops {
        assert_fields(
            drop,
            &json!({
                "pid": null, "direction": "in", "state": null, "reason": "NETFILTER_DROP",
                "laddr": "127.0.0.1", "lport": port, "raddr": "127.0.0.1", "rport": 40_000,
            }),
        );
    }
    assert_eq!(drops.iter().map(|d| d["count"].as_u64().expect("a count")).sum::<u64>(), dropped);
    assert_eq!(done.lost(), 0, "{}", done.summary());
}

/// This host drops its own SYNs (an nftables rule on the output hook, in a private
/// namespace): the connect times out after its two SYNs, and the drop events say why, on
/// the way out, owned by the connecting process, two segments in all.
#[test]
fn a_syn_this_host_drops_on_its_way_out_is_a_drop_owned_by_the_connecting_process() {
    let _serial = serial();
    let port = 18_000 + (std::process::id() % 1_000) as u16;
    let rules = PrivateRules::new(
        &format!("tt-out-{port}.nft"),
        "output",
        &format!("tcp dport {port} counter drop"),
    );
    let to = sockaddr_of(format!("127.0.0.1:{port}").parse().expect("addr"));
    let trace = Trace::new(&["-e", "connect,drop", "--port", &port.to_string()]).start();
    let client = fork_with(c"tt-end-cli", move || {
        if !rules.enter() {
            return 50;
        }
        if !write_sysctl(c"/proc/sys/net/ipv4/tcp_syn_retries", b"1", false)
            || !write_sysctl(c"/proc/sys/net/ipv4/tcp_syn_linear_timeouts", b"0", true)
        {
            return 51;
        }
        i32::from(raw::connect(&to, libc::AF_INET) != -libc::ETIMEDOUT) * 52
    });
    assert_eq!(wait_child(client), 0, "the connect did not time out");
    let done = trace.stop();
    assert_fields(
        only(&done.of("connect", client)),
        &json!({
            "result": "failed", "error": "ETIMEDOUT", "end": "timeout", "timeout": "syn_retries", "syns_sent": 2,
            // Both dropped here, and the connect says so, with why.
            "syns_dropped": 2, "syn_drop_reason": "NETFILTER_DROP",
        }),
    );
    let drops = done.of("drop", client);
    for drop in &drops {
        assert_fields(
            drop,
            &json!({
                "comm": "tt-end-cli", "direction": "out", "state": "SYN_SENT", "reason": "NETFILTER_DROP",
                "laddr": "127.0.0.1", "raddr": "127.0.0.1", "rport": port,
            }),
        );
    }
    assert_eq!(
        drops.iter().map(|d| d["count"].as_u64().expect("a count")).sum::<u64>(),
        2,
        "{:#?}",
        done.events
    );
}

/// One connection's segments dropped at the input hook (an nftables rule on its data
/// segments, in a private namespace on loopback), where the segment has no socket yet
/// (loopback skips the early lookup): its owner is found through the connection's ends.
/// The drops are owned by the process that accepted, on the server's socket, still
/// ESTABLISHED, and add up to exactly the rule's count.
#[test]
fn a_connection_s_dropped_segments_are_owned_by_its_socket() {
    let _serial = serial();
    let port = 19_000 + (std::process::id() % 1_000) as u16;
    let rules = PrivateRules::new(
        &format!("tt-conn-{port}.nft"),
        "input",
        // The data segments only: the handshake, ACKs and the reset are shorter.
        &format!("tcp dport {port} meta length > 500 counter drop"),
    );
    let at = sockaddr_of(format!("127.0.0.1:{port}").parse().expect("addr"));
    let report = pipe();
    let trace = Trace::new(&["-e", "drop", "--port", &port.to_string()]).start();
    let peer = fork_with(c"tt-drop-peer", move || {
        if !rules.enter() {
            return 70;
        }
        // SAFETY: plain system calls in a forked child, on its own descriptors.
        unsafe {
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if l < 0
                || libc::bind(l, (&raw const at.0).cast(), at.1) != 0
                || libc::listen(l, 1) != 0
            {
                return 71;
            }
            let c = raw::connect(&at, libc::AF_INET);
            let s = raw::accept(l);
            if c < 0 || s < 0 {
                return 72;
            }
            let client_port = raw::local_port(c);
            // 1,000 bytes: dropped, then resent at each timeout, dropped again.
            let data = [b'd'; 1_000];
            if libc::write(c, data.as_ptr().cast(), data.len()) != 1_000 {
                return 73;
            }
            libc::sleep(1);
            // A reset ends the resending; then the rule's count is final.
            if !common::sides::abort(c) {
                return 74;
            }
            let dropped = rules.counted().unwrap_or(0);
            let both = [dropped, u64::from(client_port)];
            i32::from(libc::write(report[1], both.as_ptr().cast(), 16) != 16) * 75
        }
    });
    assert_eq!(wait_child(peer), 0, "the peer failed");
    let mut both = [0u64; 2];
    // SAFETY: a read of what the child wrote.
    assert_eq!(unsafe { libc::read(report[0], both.as_mut_ptr().cast(), 16) }, 16);
    close_all(&report);
    let [dropped, client_port] = both;
    assert!(dropped >= 2, "the first send and a resend at least: {dropped}");
    let done = trace.stop();
    // The rule's drops; the kernel's own after the reset (the reset itself, once handled,
    // and what reached the client's port after it) belong to sockets already closed.
    let by_rule: Vec<&Value> =
        done.events.iter().filter(|e| e["reason"] == "NETFILTER_DROP").collect();
    for drop in &by_rule {
        assert_fields(
            drop,
            &json!({
                "type": "drop", "pid": peer, "comm": "tt-drop-peer", "direction": "in", "state": "ESTABLISHED",
                "laddr": "127.0.0.1", "lport": port, "raddr": "127.0.0.1", "rport": client_port,
            }),
        );
    }
    assert_eq!(
        by_rule.iter().map(|d| d["count"].as_u64().expect("a count")).sum::<u64>(),
        dropped,
        "{:#?}",
        done.events
    );
    assert_eq!(done.lost(), 0, "{}", done.summary());
}

/// Data this host drops on its way out (an nftables output rule on one connection's data
/// segments, in a private namespace): nothing ever leaves, so no retransmission timer runs;
/// the probe timer gives up at the socket's TCP_USER_TIMEOUT. The close says so
/// (`timeout=unsent`, every byte unacknowledged) and the drop events say why, owned by the
/// writing process, summing to the rule's count.
#[test]
fn data_this_host_cannot_send_ends_in_an_unsent_timeout() {
    const WRITTEN: usize = 3_000;
    let _serial = serial();
    let port = 20_000 + (std::process::id() % 1_000) as u16;
    let rules = PrivateRules::new(
        &format!("tt-unsent-{port}.nft"),
        "output",
        &format!("tcp dport {port} meta length > 500 counter drop"),
    );
    let at = sockaddr_of(format!("127.0.0.1:{port}").parse().expect("addr"));
    let report = pipe();
    let trace = Trace::new(&["-e", "close,drop", "--port", &port.to_string()]).start();
    let peer = fork_with(c"tt-drop-peer", move || {
        if !rules.enter() {
            return 80;
        }
        // SAFETY: plain system calls in a forked child, on its own descriptors.
        unsafe {
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if l < 0
                || libc::bind(l, (&raw const at.0).cast(), at.1) != 0
                || libc::listen(l, 1) != 0
            {
                return 81;
            }
            let c = raw::connect(&at, libc::AF_INET);
            let s = raw::accept(l);
            if c < 0
                || s < 0
                || !common::sides::set_int(c, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 1_000)
            {
                return 82;
            }
            let data = [b'u'; WRITTEN];
            if libc::write(c, data.as_ptr().cast(), WRITTEN) != WRITTEN as isize {
                return 83;
            }
            let mut byte = 0u8;
            if libc::read(c, (&raw mut byte).cast(), 1) != -1
                || *libc::__errno_location() != libc::ETIMEDOUT
            {
                return 84;
            }
            let dropped = rules.counted().unwrap_or(0);
            let both = [dropped, u64::from(raw::local_port(s))];
            libc::close(c);
            libc::close(s);
            i32::from(libc::write(report[1], both.as_ptr().cast(), 16) != 16) * 85
        }
    });
    assert_eq!(wait_child(peer), 0, "the peer failed");
    let mut both = [0u64; 2];
    // SAFETY: a read of what the child wrote.
    assert_eq!(unsafe { libc::read(report[0], both.as_mut_ptr().cast(), 16) }, 16);
    close_all(&report);
    let [dropped, _] = both;
    let done = trace.stop();
    let closes = done.of("close", peer);
    let client = closes.iter().find(|c| c["rport"] == port).expect("the client's close");
    assert_fields(
        client,
        &json!({
            "comm": "tt-drop-peer", "direction": "active", "closed_by": "local",
            "end": "timeout", "errno": 110, "error": "ETIMEDOUT", "timeout": "unsent", "reason": null,
            "bytes_written": WRITTEN, "bytes_sent": 0, "bytes_unacked": WRITTEN,
        }),
    );
    let by_rule: Vec<&Value> =
        done.events.iter().filter(|e| e["reason"] == "NETFILTER_DROP").collect();
    for drop in &by_rule {
        assert_fields(
            drop,
            &json!({
                "type": "drop", "pid": peer, "direction": "out", "state": "ESTABLISHED",
                "laddr": "127.0.0.1", "lport": client["lport"], "raddr": "127.0.0.1", "rport": port,
            }),
        );
    }
    assert!(dropped >= 1, "the rule dropped the data: {dropped}");
    assert_eq!(
        by_rule.iter().map(|d| d["count"].as_u64().expect("a count")).sum::<u64>(),
        dropped,
        "{:#?}",
        done.events
    );
}

fn close_all(fds: &[i32]) {
    for &fd in fds {
        // SAFETY: closing descriptors of ours.
        unsafe { libc::close(fd) };
    }
}
