//! The kernel's own count of program runs it skipped (`recursion_misses` in
//! `bpf_prog_info`, Linux 5.12+ for trampolines and raw tracepoints, 6.7+ for kprobes and
//! classic tracepoints): a skipped run is a lost event, so it is reported, never hidden.
//! aya 0.14 does not expose the field, so this asks the kernel directly.

use std::os::fd::{AsFd, AsRawFd};

use aya::Ebpf;

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `recursion_misses` of one program (0 where the kernel does not count them).
fn recursion_misses(fd: i32) -> std::io::Result<u64> {
    // bpf_prog_info (include/uapi/linux/bpf.h) only ever grows at its end, so this offset
    // is ABI: recursion_misses follows run_time_ns (192) and run_cnt (200).
    const OFFSET: usize = 208;
    let mut info = [0u8; 256];
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr =
        InfoAttr { bpf_fd: fd as u32, info_len: info.len() as u32, info: info.as_mut_ptr() as u64 };
    // SAFETY: a valid attr for BPF_OBJ_GET_INFO_BY_FD pointing at a buffer we own.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &raw mut attr, size_of::<InfoAttr>())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if (attr.info_len as usize) < OFFSET + 8 {
        return Ok(0);
    }
    Ok(u64::from_ne_bytes(info[OFFSET..OFFSET + 8].try_into().unwrap_or_default()))
}

/// Whether a skipped run of the program `name` can be a lost event. The owner side of a
/// state hook pair (tracer-ebpf/src/state/mod.rs `pair`) is only ever skipped for softirq
/// changes, which the other side takes: not losses. The other side's skips are counted,
/// though some of those the owner side took.
/// The return probes whose skips the programs count themselves are left out too.
fn skip_may_lose(name: &str) -> bool {
    !crate::loader::family::STATE_PAIRS.iter().any(|[owner_side, _]| *owner_side == name)
        && !crate::loader::family::RETURN_PROBES.contains(&name)
}

/// Copies of the descriptors of every loaded program whose skipped runs are losses: they
/// keep each program readable after `Tracer::stop_hooks` unloads it, so the count taken
/// after the last event still includes every skip.
pub(crate) fn counted_programs(ebpf: &Ebpf) -> Vec<aya::programs::ProgramFd> {
    ebpf.programs()
        .filter(|(name, _)| skip_may_lose(name))
        .filter_map(|(_, p)| p.fd().ok().and_then(|fd| fd.try_clone().ok()))
        .collect()
}

/// The sum of skipped runs over `programs` (see `counted_programs`).
pub(crate) fn total_misses(programs: &[aya::programs::ProgramFd]) -> u64 {
    programs.iter().map(|fd| recursion_misses(fd.as_fd().as_raw_fd()).unwrap_or(0)).sum()
}

#[cfg(test)]
mod tests {
    use super::skip_may_lose;

    #[test]
    fn owner_sides_of_state_pairs_and_return_probes_counted_by_the_programs_are_left_out() {
        // Every family's owner side: the BTF-typed one was once missing, and its skips,
        // which the softirq side takes over, were reported as lost events.
        for owner_side in ["tt_state_fent", "tt_state_btf", "tt_state_rtp"] {
            assert!(!skip_may_lose(owner_side), "{owner_side}");
        }
        for counted in [
            "tt_state_fent2",
            "tt_state_btf2",
            "tt_state_rtp2",
            "tt_state_tp",
            "tt_state_kp",
            "tt_acc_tp",
            "tt_acc_tp_task",
            "tt_rtx_btf",
            "tt_rtx_kp",
            "tt_synack_btf",
            "tt_synack_kp",
        ] {
            assert!(skip_may_lose(counted), "{counted}");
        }
        // Counted by the programs when found (Counter::ReturnUnseen): never twice.
        for counted_by_programs in
            ["tt_send_krp", "tt_recv_krp", "tt_rtx_krp", "tt_tlp_krp", "tt_synack_krp"]
        {
            assert!(!skip_may_lose(counted_by_programs), "{counted_by_programs}");
        }
    }
}
