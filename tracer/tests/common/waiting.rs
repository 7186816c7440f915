//! Waiting for what the kernel does in its own time: sockets to finish closing, softirqs
//! to end, queues to fill, SYNs to be resent.

use std::time::{Duration, Instant};

use super::{
    procnet::{tcp_sockets, TcpSocket},
    raw, START_TIMEOUT,
};

/// Waits until no TCP socket with `port` at either end is still open or closing (as
/// /proc/net/tcp{,6} list them; TIME_WAIT and LISTEN are done). The last steps of a close
/// run in softirq, possibly after both processes have exited; stopping the trace before
/// then would leave those connections unfinished. A segment the loopback device drops
/// under load (its backlog is bounded) is sent again only after a backed-off timeout, so
/// this allows 30 s, then panics naming what is still open.
pub fn wait_port_settled(port: u16) {
    // 06 TIME_WAIT, 07 CLOSE, 0A LISTEN.
    let busy = || -> Vec<TcpSocket> {
        tcp_sockets()
            .into_iter()
            .filter(|s| {
                (s.local_port == port || s.remote_port == port)
                    && !matches!(s.state.as_str(), "06" | "07" | "0A")
                    && !s.is_time_wait_minisock()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = busy();
        if open.is_empty() {
            wait_out_softirqs();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} connections on port {port} still not closed after 30 s, e.g. {:?}",
            open.len(),
            &open[..open.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Returns once every softirq running now, on any CPU, has ended. A socket gone from
/// /proc/net/tcp may still have its CLOSE to announce: `tcp_set_state` takes it out of the
/// kernel's tables first and fires `inet_sock_set_state` after (`inet_sk_state_store`), and
/// when a packet or a timer closes it, that runs in a softirq, maybe on another CPU, maybe
/// stalled there (a vCPU the host has not scheduled). `membarrier(MEMBARRIER_CMD_GLOBAL)` is
/// a `synchronize_rcu()`, which waits for every CPU to leave such a section: after it, the
/// close's programs have run and its event is in the ring buffer.
pub fn wait_out_softirqs() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: a system call with no pointers.
    let done = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    assert_eq!(done, 0, "membarrier: {}", std::io::Error::last_os_error());
}

/// Polls `done` every 10 ms until it holds; after `START_TIMEOUT`, panics with `what`.
/// For what the kernel does in its own time (a queue filling, a timer firing): waiting
/// for the event itself, not for a guess at how long it takes on a slow machine.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "still waiting, after {START_TIMEOUT:?}, for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `listener`'s accept queue holds `n` connections.
pub fn wait_accept_queue(listener: i32, n: u32) {
    wait_until(&format!("{n} connection(s) in the accept queue"), || {
        raw::accept_queue_len(listener) == Some(n)
    });
}

/// Waits until a connect to `port` (a socket in SYN_SENT, 02) has sent its SYN again.
pub fn wait_syn_resent(port: u16) {
    wait_until(&format!("a SYN to port {port} sent again"), || {
        tcp_sockets().iter().any(|s| s.remote_port == port && s.state == "02" && s.retransmits > 0)
    });
}

/// Waits until `count` threads of this process sleep inside the system call `nr`:
/// `/proc/self/task/*/syscall` gives a thread's system call number only while it is blocked
/// in one ("running" otherwise), so each counted thread is past the hook at its entry.
pub fn wait_until_asleep_in(nr: libc::c_long, count: usize) {
    let nr = nr.to_string();
    let asleep = || {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("syscall"))
                            .is_ok_and(|s| s.split(' ').next() == Some(nr.as_str()))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until(&format!("{count} threads asleep in system call {nr}"), || asleep() >= count);
}
