//! Which hook family this run tests, and what the running kernel can do with it.

/// The family under test.
pub fn probe() -> String {
    std::env::var("TT_PROBE").unwrap_or_else(|_| "auto".into())
}

/// The family auto mode picks on this kernel.
pub fn expect_auto() -> String {
    std::env::var("TT_EXPECT_AUTO").unwrap_or_else(|_| "tracepoint".into())
}

/// Running inside the Debian 6.1 VM (auto picks fentry there).
pub fn in_vm() -> bool {
    expect_auto() == "fentry"
}

/// Whether per-call byte counting (`--bytes calls`, `top`) can attach in this run: not on
/// the tracepoint family of kernels before 6.3, which lack `sock:sock_send_length`
/// (Debian's 6.1 in the VM); there tcptrace must refuse with one line instead.
pub fn calls_mode_available() -> bool {
    !(in_vm() && effective_family() == "tracepoint")
}

/// Asserts the one-line refusal of a run that needs per-call counting where it cannot be.
pub fn assert_calls_mode_refused(stderr: &[String]) {
    assert!(!calls_mode_available(), "per-call counting failed: {stderr:?}");
    assert_eq!(stderr.len(), 1, "one line: {stderr:?}");
    assert!(
        stderr[0].starts_with("tcptrace: hook bytes: no hook family attaches on this kernel ("),
        "{stderr:?}"
    );
}

/// Whether the running kernel names the reasons of resets it sends (`enum sk_rst_reason`,
/// Linux 6.10), and fires `tcp:tcp_send_reset` for a reset without a socket (the same
/// release): told from its release, not from tcptrace.
pub fn kernel_gives_reset_reasons() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut numbers = release.trim().split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (6, 10)
}

/// Whether this run sees a reset sent for a segment that reached no socket: every family
/// but the tracepoint one before Linux 6.10.
pub fn no_socket_resets_seen() -> bool {
    effective_family() != "tracepoint" || kernel_gives_reset_reasons()
}

/// The family the connect hook really uses in this run (`raw-tracepoint` is the
/// tracepoint family without BTF-typed programs).
pub fn effective_family() -> String {
    match probe().as_str() {
        "auto" => expect_auto(),
        "raw-tracepoint" => "tracepoint".into(),
        other => other.to_string(),
    }
}

/// More threads than a kretprobe has instances: the kernel gives one max(10, 2 x possible
/// CPUs) (`register_kretprobe`), so that many threads asleep in a call use them all up.
pub fn more_than_kretprobe_instances() -> usize {
    let possible =
        std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("possible CPUs");
    // Ranges like "0-3,8-11", or one CPU.
    let cpus: usize = possible
        .trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((first, last)) => {
                last.parse::<usize>().expect("a CPU number")
                    - first.parse::<usize>().expect("a CPU number")
                    + 1
            }
            None => 1,
        })
        .sum();
    10.max(2 * cpus) + 14
}
