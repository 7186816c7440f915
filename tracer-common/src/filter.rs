//! The filters, a read-only global set by userspace before load, and the tests the
//! kernel programs apply. The tests live here, in plain `no_std` Rust, so that the same
//! code runs in the kernel and in userspace unit tests.
//!
//! Filters combine with AND; a list (pids, port ranges) matches when any entry does.
//! Owner filters (pid, uid, comm, cgroup) apply to the process that connected or
//! accepted; a connection whose owner is unknown (older than tcptrace) never matches one.

use crate::event::COMM_LEN;

/// How many `--pid` values, and port ranges per port flag, the kernel side holds.
pub const MAX_PIDS: usize = 8;
pub const MAX_PORT_RANGES: usize = 8;

/// Ports `first..=last`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Up to `MAX_PORT_RANGES` ranges; `count == 0` means any port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortSet {
    pub count: u32,
    pub ranges: [PortRange; MAX_PORT_RANGES],
}

impl PortSet {
    #[must_use]
    pub const fn is_any(&self) -> bool {
        self.count == 0
    }

    #[inline(always)]
    #[must_use]
    pub fn contains(&self, port: u16) -> bool {
        let mut i = 0;
        while i < MAX_PORT_RANGES {
            if i as u32 >= self.count {
                break;
            }
            let r = self.ranges[i];
            if r.first <= port && port <= r.last {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Adds a range; false when the set is full.
    pub fn push(&mut self, range: PortRange) -> bool {
        let Some(slot) = self.ranges.get_mut(self.count as usize) else { return false };
        *slot = range;
        self.count += 1;
        true
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    /// tcptrace's own pid: its own activity is never reported.
    pub self_pid: u32,
    /// How many of `pids` are set; 0 = any process.
    pub pid_count: u32,
    pub pids: [u32; MAX_PIDS],
    /// Only this uid, when `has_uid`.
    pub uid: u32,
    pub has_uid: u32,
    /// Only this comm (NUL-padded, as the kernel keeps it), when `has_comm`.
    pub comm: [u8; COMM_LEN],
    pub has_comm: u32,
    /// `AF_INET` or `AF_INET6`; 0 = both.
    pub family: u32,
    /// A port on either side (`--port`), the local port, the remote port.
    pub ports: PortSet,
    pub lports: PortSet,
    pub rports: PortSet,
    /// Only processes in this cgroup v2 (its id, the directory's inode); 0 = any.
    pub cgroup_id: u64,
    /// Connect events: only handshakes at least this long (ns); 0 = any.
    pub min_latency_ns: u64,
    /// Connect events: 1 = only failed ones.
    pub failed_only: u32,
    /// Only sockets in this network namespace (its inode number, as `lsns -t net` shows
    /// it); 0 = any.
    pub netns: u32,
}

impl Default for Filter {
    fn default() -> Self {
        Self::ANY
    }
}

impl Filter {
    /// Everything passes (but tcptrace's own pid, once set).
    pub const ANY: Self = Self {
        self_pid: 0,
        pid_count: 0,
        pids: [0; MAX_PIDS],
        uid: 0,
        has_uid: 0,
        comm: [0; COMM_LEN],
        has_comm: 0,
        family: 0,
        ports: PortSet { count: 0, ranges: [PortRange { first: 0, last: 0 }; MAX_PORT_RANGES] },
        lports: PortSet { count: 0, ranges: [PortRange { first: 0, last: 0 }; MAX_PORT_RANGES] },
        rports: PortSet { count: 0, ranges: [PortRange { first: 0, last: 0 }; MAX_PORT_RANGES] },
        cgroup_id: 0,
        min_latency_ns: 0,
        failed_only: 0,
        netns: 0,
    };

    /// Whether any owner filter is set (then an unknown owner never matches).
    #[inline(always)]
    #[must_use]
    pub const fn has_owner_filter(&self) -> bool {
        self.pid_count != 0 || self.has_uid != 0 || self.has_comm != 0 || self.cgroup_id != 0
    }

    /// The owner filters that can be checked from what `SOCKS` keeps (pid, uid, comm; the
    /// cgroup is checked when the owner is captured, see `cgroup_matches`). `pid == 0`:
    /// unknown owner.
    #[inline(always)]
    #[must_use]
    pub fn owner_matches(&self, pid: u32, uid: u32, comm: &[u8; COMM_LEN]) -> bool {
        if pid != 0 && pid == self.self_pid {
            return false;
        }
        if !self.has_owner_filter() {
            return true;
        }
        if pid == 0 {
            return false;
        }
        if self.has_uid != 0 && uid != self.uid {
            return false;
        }
        if self.has_comm != 0 && !same_comm(comm, &self.comm) {
            return false;
        }
        self.pid_count == 0 || self.pid_listed(pid)
    }

    #[inline(always)]
    fn pid_listed(&self, pid: u32) -> bool {
        let mut i = 0;
        while i < MAX_PIDS {
            if i as u32 >= self.pid_count {
                break;
            }
            if self.pids[i] == pid {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The cgroup filter, for the current task's cgroup id where the owner is captured.
    #[inline(always)]
    #[must_use]
    pub const fn cgroup_matches(&self, cgroup_id: u64) -> bool {
        self.cgroup_id == 0 || self.cgroup_id == cgroup_id
    }

    /// The address family and port filters.
    #[inline(always)]
    #[must_use]
    pub fn endpoints_match(&self, family: u16, lport: u16, rport: u16) -> bool {
        if self.family != 0 && u32::from(family) != self.family {
            return false;
        }
        (self.ports.is_any() || self.ports.contains(lport) || self.ports.contains(rport))
            && (self.lports.is_any() || self.lports.contains(lport))
            && (self.rports.is_any() || self.rports.contains(rport))
    }

    /// The network namespace filter; a socket whose namespace could not be read (0)
    /// never matches one.
    #[inline(always)]
    #[must_use]
    pub const fn netns_matches(&self, netns: u32) -> bool {
        self.netns == 0 || self.netns == netns
    }

    /// Whether the socket filters (`endpoints_match`, `netns_matches`) can say no:
    /// without them the endpoints need not be read to decide.
    #[inline(always)]
    #[must_use]
    pub const fn has_endpoint_rules(&self) -> bool {
        self.family != 0
            || !self.ports.is_any()
            || !self.lports.is_any()
            || !self.rports.is_any()
            || self.netns != 0
    }

    /// The filters that only connect events have.
    #[inline(always)]
    #[must_use]
    pub const fn connect_matches(&self, failed: bool, latency_ns: u64) -> bool {
        (self.failed_only == 0 || failed) && latency_ns >= self.min_latency_ns
    }
}

/// Comms as the kernel keeps them: up to the first NUL.
#[inline(always)]
fn same_comm(a: &[u8; COMM_LEN], b: &[u8; COMM_LEN]) -> bool {
    let mut i = 0;
    while i < COMM_LEN {
        if a[i] != b[i] {
            return false;
        }
        if a[i] == 0 {
            return true;
        }
        i += 1;
    }
    true
}

const _: () = assert!(core::mem::size_of::<Filter>().is_multiple_of(8));

/// What the user asked for, fixed before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// Bit set of `event::kind_bit(kind)`: events to send.
    pub events: u32,
    /// 1: count bytes per call (`tcp_sendmsg`/`tcp_recvmsg`), 0: read them from the socket.
    pub count_calls: u32,
    /// 1: the live view (`tcptrace top`): the per-call hooks also track connections older
    /// than tcptrace (owner: the first process seen sending or receiving) and keep each
    /// one's endpoints, retransmits and RTT in `SOCKS` for userspace to read.
    pub live: u32,
    /// 1: count state changes in the kernel (`state::StateCounts`, for `tcptrace serve`)
    /// rather than sending an event for each: the same filters apply.
    pub count_states: u32,
    /// 1: the reset hook also runs for the close event's `reason` (close events wanted, on
    /// a kernel that names its resets: Linux 6.10+), though reset events are not wanted: a
    /// reset a socket sends before its CLOSE is noted in its entry, one sent right after
    /// goes out as a reset event for user space to join to the close (tracer/src/join.rs).
    pub close_reasons: u32,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{AF_INET, AF_INET6};

    fn comm(name: &str) -> [u8; COMM_LEN] {
        let mut c = [0; COMM_LEN];
        c[..name.len()].copy_from_slice(name.as_bytes());
        c
    }

    fn ports(ranges: &[(u16, u16)]) -> PortSet {
        let mut set = PortSet::default();
        for &(first, last) in ranges {
            assert!(set.push(PortRange { first, last }));
        }
        set
    }

    #[test]
    fn no_filter_passes_everything_but_tcptrace_itself() {
        let f = Filter { self_pid: 7, ..Filter::ANY };
        assert!(f.owner_matches(1, 0, &comm("a")));
        assert!(
            f.owner_matches(0, 0, &[0; COMM_LEN]),
            "unknown owners pass when no owner filter is set"
        );
        assert!(!f.owner_matches(7, 0, &comm("tcptrace")));
        assert!(f.endpoints_match(AF_INET6, 1, 2));
        assert!(f.connect_matches(false, 0));
        assert!(f.cgroup_matches(12345));
    }

    #[test]
    fn owner_filters_combine_and_never_match_an_unknown_owner() {
        let mut f = Filter { pid_count: 2, uid: 1000, has_uid: 1, ..Filter::ANY };
        f.pids[0] = 10;
        f.pids[1] = 20;
        assert!(f.owner_matches(10, 1000, &comm("x")));
        assert!(f.owner_matches(20, 1000, &comm("x")));
        assert!(!f.owner_matches(30, 1000, &comm("x")));
        assert!(!f.owner_matches(10, 0, &comm("x")), "uid must match too");
        assert!(!f.owner_matches(0, 1000, &[0; COMM_LEN]));
        let f = Filter { comm: comm("curl"), has_comm: 1, ..Filter::ANY };
        assert!(f.owner_matches(5, 0, &comm("curl")));
        assert!(!f.owner_matches(5, 0, &comm("curly")));
        assert!(!f.owner_matches(5, 0, &comm("cur")));
        let full = comm("fifteen_chars__");
        assert!(Filter { comm: full, has_comm: 1, ..Filter::ANY }.owner_matches(5, 0, &full));
        let f = Filter { cgroup_id: 99, ..Filter::ANY };
        assert!(f.cgroup_matches(99) && !f.cgroup_matches(98));
        assert!(!f.owner_matches(0, 0, &[0; COMM_LEN]), "a cgroup filter needs a known owner");
    }

    #[test]
    fn port_filters_take_ranges_on_either_or_one_side() {
        let f = Filter { ports: ports(&[(8000, 8100), (443, 443)]), ..Filter::ANY };
        assert!(f.endpoints_match(AF_INET, 8000, 1));
        assert!(f.endpoints_match(AF_INET, 1, 8100));
        assert!(f.endpoints_match(AF_INET, 443, 1));
        assert!(!f.endpoints_match(AF_INET, 7999, 8101));
        let f =
            Filter { lports: ports(&[(80, 80)]), rports: ports(&[(5000, 5001)]), ..Filter::ANY };
        assert!(f.endpoints_match(AF_INET, 80, 5001));
        assert!(!f.endpoints_match(AF_INET, 5001, 80));
        assert!(!f.endpoints_match(AF_INET, 80, 5002));
        let mut full = PortSet::default();
        for p in 0..MAX_PORT_RANGES as u16 {
            assert!(full.push(PortRange { first: p, last: p }));
        }
        assert!(!full.push(PortRange { first: 9, last: 9 }));
        assert!(full.contains(7) && !full.contains(8));
    }

    #[test]
    fn family_and_connect_filters() {
        let f = Filter { family: u32::from(AF_INET6), ..Filter::ANY };
        assert!(f.endpoints_match(AF_INET6, 1, 2) && !f.endpoints_match(AF_INET, 1, 2));
        let f = Filter { failed_only: 1, min_latency_ns: 1_000, ..Filter::ANY };
        assert!(f.connect_matches(true, 1_000));
        assert!(!f.connect_matches(false, 5_000));
        assert!(!f.connect_matches(true, 999));
    }

    #[test]
    fn netns_filter_keeps_one_namespace_and_never_an_unread_one() {
        assert!(Filter::ANY.netns_matches(0) && Filter::ANY.netns_matches(4026531840));
        assert!(!Filter::ANY.has_endpoint_rules());
        let f = Filter { netns: 4026531840, ..Filter::ANY };
        assert!(f.has_endpoint_rules());
        assert!(f.netns_matches(4026531840));
        assert!(!f.netns_matches(4026532000));
        assert!(!f.netns_matches(0));
    }
}
