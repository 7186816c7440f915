//! Shared harness for the integration tests: run `tcptrace` as a child, make real TCP
//! traffic from forked processes with a known pid, comm and uid, and read back the events.
//!
//! Environment (set by `cargo xtask test`, on the host and inside the VM):
//! - `TT_PROBE`: the hook family to force (`auto`, `fentry`, `kprobe`, `tracepoint`).
//! - `TT_EXPECT_AUTO`: which family auto mode must pick on this kernel (`tracepoint` on the
//!   host, whose kernel has no kprobes and refuses fentry; `fentry` on Debian 6.1).
//! - `TCPTRACE_BIN`: the binary to run (inside the VM, where cargo's path does not exist).
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]
#![allow(unreachable_pub, reason = "a module of each test crate, not a library")]

use std::{
    sync::{Mutex, MutexGuard},
    time::Duration,
};

pub mod capabilities;
pub mod events;
pub mod family;
pub mod http;
pub mod peers;
pub mod procnet;
pub mod raw;
pub mod serve;
pub mod sides;
pub mod summary;
pub mod tools;
pub mod trace;
pub mod waiting;

// The harness's names as the tests know them: `common::Trace`, `common::wait_until`, ...

#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use capabilities::{perf_events_need_sys_admin, Sysctl, CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use family::{
    assert_calls_mode_refused, calls_mode_available, effective_family, expect_auto, in_vm,
    kernel_gives_reset_reasons, more_than_kretprobe_instances, no_socket_resets_seen, probe,
};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use http::{http_get, http_get_accepting};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use peers::{
    close_counted, connect_all, fork_with, listen_v4, wait_child, HeldExchange, Peer, PeerSetup,
};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use procnet::port_in_proc_net_tcp;
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use raw::{local_port, monotonic_ns, own_netns, peer_port, pin_to_one_cpu, sockaddr_of};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use serve::{parse_samples, sum, Sample, Serve};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use summary::{count, forgotten_in, gaps_in, skipped_in, summary_in, tracked_at_exit, Summary};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use trace::{connection_map, run_to_end, tcptrace_bin, Finished, Trace, TraceBuilder};
#[allow(unused_imports, reason = "re-exports: each test binary uses a different part")]
pub use waiting::{
    wait_accept_queue, wait_out_softirqs, wait_port_settled, wait_syn_resent, wait_until,
    wait_until_asleep_in,
};

/// Tests attach kernel programs and count events machine-wide: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Generous: inside the VM everything runs under software emulation.
const START_TIMEOUT: Duration = Duration::from_secs(180);
