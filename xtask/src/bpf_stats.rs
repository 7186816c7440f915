//! Per-program cost as the kernel measures it (`kernel.bpf_stats_enabled`): run count and
//! run time of every loaded BPF program, what `bpftool prog` shows, read with the bpf(2)
//! commands directly (aya 0.14 does not expose these fields).

use std::collections::BTreeMap;

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Offsets in `struct bpf_prog_info` (include/uapi/linux/bpf.h; it only grows at its end).
const NAME_OFFSET: usize = 64;
const RUN_TIME_OFFSET: usize = 192;
const RUN_CNT_OFFSET: usize = 200;

/// One program's counters at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgStats {
    pub(crate) name: String,
    pub(crate) run_time_ns: u64,
    pub(crate) run_cnt: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut [u32; 4]) -> i64 {
    // SAFETY: `attr` is a valid, zero-padded bpf_attr prefix for the id/fd commands.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of::<[u32; 4]>()) }
}

fn info(id: u32) -> Option<ProgStats> {
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut [id, 0, 0, 0]);
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 256];
    let ptr = buf.as_mut_ptr() as u64;
    let mut attr = [fd as u32, buf.len() as u32, ptr as u32, (ptr >> 32) as u32];
    let rc = bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr);
    // SAFETY: closing the fd we were given.
    unsafe { libc::close(fd as i32) };
    if rc != 0 || (attr[1] as usize) < RUN_CNT_OFFSET + 8 {
        return None;
    }
    let u64_at = |at: usize| u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or_default());
    let name = &buf[NAME_OFFSET..NAME_OFFSET + 16];
    let name = String::from_utf8_lossy(&name[..name.iter().position(|&b| b == 0).unwrap_or(16)])
        .into_owned();
    Some(ProgStats { name, run_time_ns: u64_at(RUN_TIME_OFFSET), run_cnt: u64_at(RUN_CNT_OFFSET) })
}

/// Every loaded program, by id.
pub(crate) fn snapshot() -> BTreeMap<u32, ProgStats> {
    let mut all = BTreeMap::new();
    let mut id = 0;
    loop {
        let mut attr = [id, 0, 0, 0];
        if bpf(BPF_PROG_GET_NEXT_ID, &mut attr) != 0 {
            break;
        }
        id = attr[1];
        if let Some(stats) = info(id) {
            all.insert(id, stats);
        }
    }
    all
}

/// What each program that is in `after` ran between the two snapshots (programs new in
/// `after` count from zero), summed by name, busiest first.
pub(crate) fn delta(
    before: &BTreeMap<u32, ProgStats>,
    after: &BTreeMap<u32, ProgStats>,
) -> Vec<ProgStats> {
    let mut by_name: BTreeMap<String, ProgStats> = BTreeMap::new();
    for (id, now) in after {
        let then = before.get(id).cloned().unwrap_or_default();
        let runs = now.run_cnt.saturating_sub(then.run_cnt);
        if runs == 0 {
            continue;
        }
        let entry = by_name
            .entry(now.name.clone())
            .or_insert_with(|| ProgStats { name: now.name.clone(), ..ProgStats::default() });
        entry.run_cnt += runs;
        entry.run_time_ns += now.run_time_ns.saturating_sub(then.run_time_ns);
    }
    let mut list: Vec<ProgStats> = by_name.into_values().collect();
    list.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
    list
}

/// Turns `kernel.bpf_stats_enabled` on for as long as the guard lives, then restores it.
pub(crate) struct Enabled(Option<String>);

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

pub(crate) fn enable() -> Enabled {
    let old = std::fs::read_to_string(SYSCTL).ok();
    let _ = std::fs::write(SYSCTL, "1");
    Enabled(old)
}

impl Drop for Enabled {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(SYSCTL, old.trim());
        }
    }
}
