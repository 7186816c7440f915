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
}

/// Number of slots in `COUNTERS`.
pub const COUNTER_SLOTS: u32 = 4;
