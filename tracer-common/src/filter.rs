//! The filter configuration, a read-only global set by userspace before load.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Filter {
    /// Only this process (thread-group id); 0 = any.
    pub pid: u32,
    /// Only connections with this port on either side; 0 = any.
    pub port: u16,
    /// Keeps the next field 4-byte aligned without hidden padding.
    pub _pad: u16,
    /// tcptrace's own pid: its own activity is never reported.
    pub self_pid: u32,
}

impl Filter {
    #[must_use]
    pub const fn pid_matches(&self, pid: u32) -> bool {
        pid != self.self_pid && (self.pid == 0 || self.pid == pid)
    }

    #[must_use]
    pub const fn port_matches(&self, sport: u16, dport: u16) -> bool {
        self.port == 0 || self.port == sport || self.port == dport
    }
}

const _: () = assert!(core::mem::size_of::<Filter>() == 12);

/// What the user asked for, fixed before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// Bit set of `event::kind_bit(kind)`: events to send.
    pub events: u32,
    /// 1: count bytes per call (`tcp_sendmsg`/`tcp_recvmsg`), 0: read them from the socket.
    pub count_calls: u32,
}
