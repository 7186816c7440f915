//! The header every event starts with, and the stable numeric id of each event kind.

/// Kind ids are part of the wire format: never renumber, only append.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Connect = 1,
    Accept = 2,
    Close = 3,
    State = 4,
    Retransmit = 5,
    Reset = 6,
    /// Never sent through the ring buffer: drops are counted in the `DROPS` map. The bit
    /// in `Config::events` says they are wanted.
    Drop = 7,
}

impl EventKind {
    #[must_use]
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Connect),
            2 => Some(Self::Accept),
            3 => Some(Self::Close),
            4 => Some(Self::State),
            5 => Some(Self::Retransmit),
            6 => Some(Self::Reset),
            7 => Some(Self::Drop),
            _ => None,
        }
    }
}

/// Length of a task's `comm` in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Who did it and when. `pid` is the thread-group id (what users call the pid),
/// `tid` the thread; both are 0 when the hook ran where the owner cannot be known.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC; userspace converts to wall-clock time.
    pub ts_ns: u64,
    /// Which socket (the kernel's address of it, used as an opaque id and never shown):
    /// the same for every event of a connection, where its four addresses and ports may
    /// be another connection's too, in another network namespace.
    pub sock: u64,
    /// NUL-padded task name.
    pub comm: [u8; COMM_LEN],
    /// The socket's network namespace, as the inode number `ls -i /proc/PID/ns/net` and
    /// `lsns` show; 0 when it could not be read.
    pub netns: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 56);

/// Bit of each kind in `Config::events`: which events the user asked for.
#[must_use]
pub const fn kind_bit(kind: EventKind) -> u32 {
    1 << (kind as u32)
}
