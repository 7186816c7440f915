//! The reset event: one per RST this host sent or received.

use crate::{addr::Endpoints, event::EventHeader};

/// `direction` values.
pub const RESET_SENT: u8 = 1;
pub const RESET_RECEIVED: u8 = 2;

/// `reason` when the kernel gives none: Linux before 6.10 (no `enum sk_rst_reason`), and
/// every reset received.
pub const REASON_NONE: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetEvent {
    /// Owner of the connection the reset belongs to, from the connect or accept it was seen
    /// in; pid 0 when it belongs to no tracked connection (a segment that reached no
    /// socket, a time-wait socket, a connection older than tcptrace).
    pub header: EventHeader,
    /// Local and remote end: the socket's, or for a reset that answers a segment, that
    /// segment's addresses and ports turned round (its destination is our end).
    pub endpoints: Endpoints,
    /// The kernel's `enum sk_rst_reason` value (Linux 6.10+, resets sent), raw: user space
    /// names it from the running kernel's BTF. `REASON_NONE` where there is none.
    pub reason: u32,
    /// `RESET_SENT` or `RESET_RECEIVED`.
    pub direction: u8,
    /// The socket's `TCP_*` state at that moment; 0 when no socket was there.
    pub state: u8,
    /// 1 when the reset belongs to a socket (full, time-wait or request), 0 when it
    /// answered a segment that reached none.
    pub has_socket: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<ResetEvent>() == 104);

/// Reset events one CPU sends in a second; past that, its resets are counted in the kernel
/// by `ResetKey` (the `RESETS` map) and user space reports each key's growth once a second.
/// A storm (a port scan, a SYN flood to a closed port, a peer hammering a restarted
/// server) then costs one map update a reset and one line a key a second, and every count
/// stays exact, where one event a reset would fill the ring buffer and cost other events.
pub const EVENTS_PER_CPU_SECOND: u64 = 1_000;

/// What resets past the budget are counted by: which way, the kernel's reason, whether a
/// socket was there, and both addresses (not the ports: a storm's come from or go to many).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResetKey {
    /// Local and remote address, as `Endpoints::saddr` and `daddr`.
    pub local: [u8; 16],
    pub remote: [u8; 16],
    /// As `ResetEvent::reason`.
    pub reason: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `RESET_SENT` or `RESET_RECEIVED`.
    pub direction: u8,
    /// As `ResetEvent::has_socket`.
    pub has_socket: u8,
}

const _: () = assert!(core::mem::size_of::<ResetKey>() == 40);

/// The count of one key, and what the last reset showed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetCount {
    /// Resets counted under the key since it was made (added to atomically).
    pub count: u64,
    /// `bpf_ktime_get_ns()` of the last one.
    pub last_ns: u64,
    /// The last one's owner (pid 0 when none).
    pub task: crate::conn::Task,
    /// The last one's socket's network namespace, 0 when unknown.
    pub netns: u32,
    /// The last one's local and remote port.
    pub local_port: u16,
    pub remote_port: u16,
    /// The last one's socket's `TCP_*` state; 0 without a socket.
    pub state: u8,
    pub _pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<ResetCount>() == 64);
