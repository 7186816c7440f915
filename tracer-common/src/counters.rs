//! Indices into the per-CPU `COUNTERS` array: what the kernel side could not deliver,
//! or chose not to. Userspace sums them over CPUs and reports them.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// `bpf_ringbuf_reserve` failed: the ring buffer was full, the event is lost.
    RingbufFull = 0,
    /// A kernel read (`bpf_probe_read_kernel`) failed; the event was not sent.
    ReadError = 1,
    /// The event was dropped on purpose by a kernel-side filter.
    Filtered = 2,
    /// Unused (was: events covered by the backup state program); kept so ids stay stable.
    Covered = 3,
    /// A transition whose old state is not the new state tcptrace last saw for that
    /// socket: a state change was missed somewhere (whatever the cause, on any kernel).
    /// Also a new socket (a listener's child, or one that connects) found on the entry
    /// of a freed connection whose CLOSE was missed, when that entry still owed an event.
    StateGap = 4,
    /// A per-connection map update failed (the kernel refused the insert): the
    /// transition was not recorded.
    MapError = 5,
    /// Entries put in `SOCKS` (new keys only). With `Untracked`, what userspace needs to
    /// tell how many entries the LRU map dropped on its own (`--max-connections` reached):
    /// inserted - removed - still there.
    Tracked = 6,
    /// Entries taken out of `SOCKS` by the programs.
    Untracked = 7,
    /// A kprobe'd call whose return was never seen, found when the same thread makes the
    /// same call again on a connection tcptrace reports: the kretprobe had no instance
    /// for it (it has max(10, 2 x possible CPUs); a call asleep holds one), its run was
    /// skipped, or a nested call took its key. What that return would have counted is
    /// lost. Reported among the hook runs the kernel skipped.
    ReturnUnseen = 8,
}

/// Number of slots in `COUNTERS`.
pub const COUNTER_SLOTS: u32 = 16;
