//! Userspace event types: decoded, typed, not yet formatted.

use std::{net::IpAddr, time::Duration};

/// Who an event belongs to. `pid == 0` means the owner could not be known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    pub(crate) uid: u32,
    pub(crate) comm: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) laddr: IpAddr,
    pub(crate) lport: u16,
    pub(crate) raddr: IpAddr,
    pub(crate) rport: u16,
}

impl Endpoints {
    /// 4 or 6: the bcc `IP` column.
    pub(crate) const fn ip_version(&self) -> u8 {
        if self.laddr.is_ipv4() {
            4
        } else {
            6
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectResult {
    Ok,
    /// A positive errno, or 0 when the kernel left none.
    Failed(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectEvent {
    /// Nanoseconds since the Unix epoch.
    pub(crate) time_ns: u64,
    pub(crate) owner: Owner,
    pub(crate) endpoints: Endpoints,
    pub(crate) latency: Duration,
    pub(crate) result: ConnectResult,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Connect(ConnectEvent),
}

/// Names of the errno values a connect can fail with; others print as their number.
pub(crate) fn errno_name(errno: u32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        4 => "EINTR",
        11 => "EAGAIN",
        13 => "EACCES",
        22 => "EINVAL",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        112 => "EHOSTDOWN",
        113 => "EHOSTUNREACH",
        _ => return None,
    })
}
