//! Dropped TCP segments, counted in the kernel per connection (or per 4-tuple), direction
//! and reason, in the `DROPS` map; user space reads the counts once a second and reports
//! what grew as drop events. A storm costs the kernel one map update per segment and user
//! space one line per key per second, and every count stays exact.

use crate::{addr::Endpoints, conn::Task};

/// `DropKey::reason` on kernels without drop reasons (before 5.17).
pub const REASON_NONE: u32 = u32::MAX;

/// What drops are counted by: the connection's ends (from the segment's headers, turned so
/// that `saddr`/`sport` is this host's end), which way the segment went, and why.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DropKey {
    pub endpoints: Endpoints,
    /// The kernel's `enum skb_drop_reason` value, raw (user space names it from BTF).
    pub reason: u32,
    /// 1: a segment this host sent; 0: one it received.
    pub outgoing: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<DropKey>() == 48);

/// The count of one key, and what the last drop showed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropCount {
    /// Segments dropped since the key was made (added to atomically).
    pub count: u64,
    /// `bpf_ktime_get_ns()` of the last drop.
    pub last_ns: u64,
    /// Where the kernel freed the last one (a kernel text address), 0 where the hook does
    /// not say (fentry, kprobe).
    pub location: u64,
    /// The owner of the socket the segment belonged to (`skb->sk`), pid 0 when none or
    /// not tracked.
    pub task: Task,
    /// The socket's network namespace, 0 when unknown.
    pub netns: u32,
    /// The socket's `TCP_*` state at the first drop; 0 without a socket.
    pub state: u8,
    /// 1 when the segment belonged to a socket.
    pub has_socket: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<DropCount>() == 64);
