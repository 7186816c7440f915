//! Checking, before touching the kernel, that we may load and attach BPF programs, so
//! the user gets one line naming what is missing instead of an EPERM from deep inside.

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

/// Ok when the process may trace; otherwise the one-line reason.
pub(crate) fn check() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let caps = effective_caps(&status).ok_or("cannot read capabilities from /proc/self/status")?;
    match missing(caps) {
        None => Ok(()),
        Some(what) => Err(format!("tracing needs root, or CAP_BPF and CAP_PERFMON (missing: {what})")),
    }
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
}
