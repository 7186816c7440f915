//! Checking, before touching the kernel, that we may load and attach BPF programs, so
//! the user gets one line naming what is missing instead of an EPERM from deep inside.

pub(crate) const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Parses the effective capability set from /proc/self/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// What is missing, or `None` when tracing is allowed.
fn missing(caps: u64) -> Option<&'static str> {
    let has = |bit: u32| caps >> bit & 1 == 1;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    Some(match (has(CAP_BPF), has(CAP_PERFMON)) {
        (false, false) => "CAP_BPF and CAP_PERFMON",
        (false, true) => "CAP_BPF",
        _ => "CAP_PERFMON",
    })
}

/// This process's effective capability set, or `None` when /proc cannot say.
fn own_effective_caps() -> Option<u64> {
    effective_caps(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Whether this process has capability `cap` in effect (false when /proc cannot say).
pub(crate) fn has_effective(cap: u32) -> bool {
    own_effective_caps().is_some_and(|caps| caps >> cap & 1 == 1)
}

/// Ok when the process may trace; otherwise the one-line reason.
pub(crate) fn check() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let caps = effective_caps(&status).ok_or("cannot read capabilities from /proc/self/status")?;
    match missing(caps) {
        None => Ok(()),
        Some(what) => {
            Err(format!("tracing needs root, or CAP_BPF and CAP_PERFMON (missing: {what})"))
        }
    }
}

/// A note for attach failures that were permission errors (EACCES) while tcptrace held
/// CAP_BPF and CAP_PERFMON without CAP_SYS_ADMIN, on a kernel with
/// `kernel.perf_event_paranoid` above 2: Debian's kernels (`SECURITY_PERF_EVENTS_RESTRICT`)
/// then keep `perf_event_open`, which kprobes and classic tracepoints attach through, for
/// CAP_SYS_ADMIN alone. `None` when that is not the cause.
/// `forced`: one family was asked for (`--probe`), so `--probe auto` is a way out.
pub(crate) fn perf_events_note(reasons: &str, forced: bool) -> Option<String> {
    if !reasons.contains("(os error 13)") {
        return None;
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").ok()?;
    perf_events_note_for(own_effective_caps()?, paranoid.trim().parse().ok()?, forced)
}

fn perf_events_note_for(caps: u64, paranoid: i32, forced: bool) -> Option<String> {
    let ways_out = if forced {
        "add it, set the sysctl to 2, or let --probe auto pick hooks attached without perf events"
    } else {
        "add it, or set the sysctl to 2"
    };
    (paranoid > 2 && caps >> CAP_SYS_ADMIN & 1 == 0)
        .then(|| format!("kernel.perf_event_paranoid is {paranoid}, which on this kernel keeps perf events (kprobes, tracepoints) for CAP_SYS_ADMIN: {ways_out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_bpf_perfmon_pass_others_name_what_is_missing() {
        assert_eq!(effective_caps("Name:\tx\nCapEff:\t000001ffffffffff\n"), Some(0x1ff_ffff_ffff));
        assert_eq!(missing(0x1ff_ffff_ffff), None);
        assert_eq!(missing(1 << CAP_SYS_ADMIN), None);
        assert_eq!(missing(1 << CAP_BPF | 1 << CAP_PERFMON), None);
        assert_eq!(missing(0), Some("CAP_BPF and CAP_PERFMON"));
        assert_eq!(missing(1 << CAP_BPF), Some("CAP_PERFMON"));
        assert_eq!(missing(1 << CAP_PERFMON), Some("CAP_BPF"));
    }

    #[test]
    fn the_perf_events_note_is_for_paranoid_3_without_sys_admin_only() {
        let bpf_perfmon = 1 << CAP_BPF | 1 << CAP_PERFMON;
        let forced = perf_events_note_for(bpf_perfmon, 3, true).unwrap_or_default();
        assert!(
            forced.starts_with("kernel.perf_event_paranoid is 3, ")
                && forced
                    .ends_with(", or let --probe auto pick hooks attached without perf events")
        );
        // Already automatic: no advice to be.
        assert!(perf_events_note_for(bpf_perfmon, 3, false)
            .is_some_and(|n| n.ends_with(": add it, or set the sysctl to 2")));
        assert_eq!(perf_events_note_for(bpf_perfmon, 2, true), None);
        assert_eq!(perf_events_note_for(bpf_perfmon | 1 << CAP_SYS_ADMIN, 3, true), None);
    }
}
