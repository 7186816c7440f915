//! Running tcptrace with fewer capabilities than root's, as a container runtime does, and
//! the sysctls that decide what those capabilities allow.

use super::{fork_with, wait_child};

/// capget/capset's `struct __user_cap_header_struct`: version 3 (two 32-bit data
/// structs), this process (pid 0).
const CAPABILITY_HEADER: [u32; 2] = [0x2008_0522, 0];

/// Cuts this process's capability bounding set to the capabilities in the mask `keep`
/// (bit N: capability N), and empties its inheritable and ambient sets (an exec by root
/// adds those to what the bounding set allows): an exec by root then grants exactly
/// `keep`. Async-signal-safe.
pub(super) fn bound_capabilities(keep: u64) -> std::io::Result<()> {
    // SAFETY: prctl and capget/capset on this process only, with valid buffers.
    unsafe {
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // Two __user_cap_data_struct: effective, permitted, inheritable.
        let header = CAPABILITY_HEADER;
        let mut data = [0u32; 6];
        if libc::syscall(libc::SYS_capget, header.as_ptr(), data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        (data[2], data[5]) = (0, 0);
        if libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for cap in 0..64u32 {
        // SAFETY: prctl on this process only.
        if keep >> cap & 1 == 0
            && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0
        {
            let err = std::io::Error::last_os_error();
            // Past the last capability the kernel knows: done.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Capability numbers, from `linux/capability.h`.
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Whether perf_event_open is refused to a root process with CAP_BPF and CAP_PERFMON
/// alone, as Debian's kernels do when `kernel.perf_event_paranoid` is above 2: a forked
/// child with only those capabilities tries to open a software event on itself.
pub fn perf_events_need_sys_admin() -> bool {
    let keep = 1u64 << CAP_BPF | 1 << CAP_PERFMON;
    let child = fork_with(c"tt-perf-check", || {
        if bound_capabilities(keep).is_err() {
            return 10;
        }
        let header = CAPABILITY_HEADER;
        let (low, high) = (keep as u32, (keep >> 32) as u32);
        // Effective, permitted, inheritable: the low words, then the high ones.
        let data: [u32; 6] = [low, low, 0, high, high, 0];
        // SAFETY: valid header and data for capset(2) on this process.
        if unsafe { libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) } != 0 {
            return 11;
        }
        // A perf_event_attr of 128 bytes: type PERF_TYPE_SOFTWARE, size, config
        // PERF_COUNT_SW_DUMMY; counting only (no sampling), disabled.
        let mut attr = [0u64; 16];
        attr[0] = 1 | 128 << 32;
        attr[1] = 9;
        attr[5] = 1; // the `disabled` bit
                     // SAFETY: a valid attr; pid 0 (this process), any CPU, no group.
        let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
        match fd {
            0.. => 0,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) => 1,
            _ => 12,
        }
    });
    match wait_child(child) {
        0 => false,
        1 => true,
        other => panic!("the perf event check failed in its step {other}"),
    }
}

/// Sets a sysctl (`kernel.perf_event_paranoid`) for as long as the guard lives.
pub struct Sysctl {
    path: String,
    old: String,
}

impl Sysctl {
    pub fn set(name: &str, value: &str) -> Self {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let old = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _restored = std::fs::write(&self.path, self.old.trim());
    }
}
