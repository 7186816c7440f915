//! Kernel layout facts that userspace reads at load time (from BTF and from tracepoint
//! `format` files) and passes to the programs as read-only globals. Nothing here is
//! hard-coded for one kernel.

/// Marks a field this kernel does not have.
pub const OFFSET_ABSENT: u32 = u32::MAX;

/// Byte offsets from the start of `struct sock` (the `__sk_common` member included).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// `__sk_common.skc_family` (u16)
    pub family: u32,
    /// `__sk_common.skc_state` (u8)
    pub state: u32,
    /// `inet_sock.inet_sport`: local port, network order (u16). Not `skc_num`: the kernel
    /// zeroes that when it releases the port, before the CLOSE transition is traced.
    pub sport: u32,
    /// `__sk_common.skc_dport`: remote port, network order (u16)
    pub dport: u32,
    /// `__sk_common.skc_daddr` (4 bytes)
    pub daddr: u32,
    /// `__sk_common.skc_rcv_saddr` (4 bytes)
    pub rcv_saddr: u32,
    /// `__sk_common.skc_v6_daddr` (16 bytes)
    pub v6_daddr: u32,
    /// `__sk_common.skc_v6_rcv_saddr` (16 bytes)
    pub v6_rcv_saddr: u32,
    /// `sk_err` (int): the error a failed connect left on the socket.
    pub err: u32,
}

impl SockOffsets {
    #[must_use]
    pub const fn absent() -> Self {
        Self {
            family: OFFSET_ABSENT,
            state: OFFSET_ABSENT,
            sport: OFFSET_ABSENT,
            dport: OFFSET_ABSENT,
            daddr: OFFSET_ABSENT,
            rcv_saddr: OFFSET_ABSENT,
            v6_daddr: OFFSET_ABSENT,
            v6_rcv_saddr: OFFSET_ABSENT,
            err: OFFSET_ABSENT,
        }
    }
}

/// Field offsets in the record of the `sock:inet_sock_set_state` tracepoint, read from
/// `/sys/kernel/tracing/events/sock/inet_sock_set_state/format`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTpOffsets {
    /// `const void * skaddr`
    pub skaddr: u32,
    /// `int oldstate`
    pub oldstate: u32,
    /// `int newstate`
    pub newstate: u32,
    /// `__u16 protocol`
    pub protocol: u32,
}

impl StateTpOffsets {
    #[must_use]
    pub const fn absent() -> Self {
        Self {
            skaddr: OFFSET_ABSENT,
            oldstate: OFFSET_ABSENT,
            newstate: OFFSET_ABSENT,
            protocol: OFFSET_ABSENT,
        }
    }
}
