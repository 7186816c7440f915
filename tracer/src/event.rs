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

impl Owner {
    pub(crate) const fn known(&self) -> bool {
        self.pid != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Unknown,
    Active,
    Passive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClosedBy {
    Unknown,
    Local,
    Remote,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BytesSource {
    Socket,
    Calls,
}

/// A `TCP_*` state number (include/net/tcp_states.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpState(pub(crate) u32);

impl TcpState {
    pub(crate) fn name(self) -> String {
        const NAMES: [&str; 13] = [
            "UNKNOWN",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "CLOSING",
            "NEW_SYN_RECV",
        ];
        NAMES.get(self.0 as usize).map_or_else(|| format!("STATE{}", self.0), |n| (*n).to_string())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CloseInfo {
    /// ESTABLISHED to CLOSE; `None` when established before tcptrace started.
    pub(crate) lifetime: Option<Duration>,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) total_retrans: u32,
    pub(crate) srtt_us: u32,
    pub(crate) direction: Direction,
    pub(crate) closed_by: ClosedBy,
    pub(crate) bytes_source: BytesSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    Connect { latency: Duration, result: ConnectResult },
    Accept,
    Close(CloseInfo),
    State { old: TcpState, new: TcpState, in_old: Option<Duration> },
    /// `tail_loss_probe`: the probe timer resent the last segment before any loss was
    /// detected (RFC 8985), rather than a retransmission after loss or a timeout.
    Retransmit { state: TcpState, total_retrans: u32, tail_loss_probe: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// Nanoseconds since the Unix epoch.
    pub(crate) time_ns: u64,
    pub(crate) owner: Owner,
    pub(crate) endpoints: Endpoints,
    pub(crate) detail: Detail,
}

impl Event {
    /// The event's type, as `--events` and the JSON `type` field name it.
    pub(crate) const fn kind(&self) -> &'static str {
        match self.detail {
            Detail::Connect { .. } => "connect",
            Detail::Accept => "accept",
            Detail::Close(_) => "close",
            Detail::State { .. } => "state",
            Detail::Retransmit { .. } => "retransmit",
        }
    }
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
