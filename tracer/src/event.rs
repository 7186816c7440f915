//! Userspace event types: decoded, typed, not yet formatted.

use std::{net::IpAddr, time::Duration};

/// Who an event belongs to. `pid == 0` means the owner could not be known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    pub(crate) uid: u32,
    pub(crate) comm: Comm,
}

/// A task name, kept inline: one per event, and a heap copy of each showed as a tenth of
/// the tracer's CPU time under connection churn.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Comm {
    len: u8,
    /// UTF-8 only: the kernel's bytes, each invalid sequence replaced by U+FFFD as
    /// `String::from_utf8_lossy` does. Three bytes for each of the kernel's sixteen covers
    /// a name made wholly of such sequences.
    bytes: [u8; Comm::CAPACITY],
}

impl Comm {
    const CAPACITY: usize = 3 * tracer_common::event::COMM_LEN;

    /// The kernel's `comm` field: up to its first NUL, at most `COMM_LEN` bytes.
    pub(crate) fn from_kernel(raw: &[u8]) -> Self {
        let raw = raw.get(..tracer_common::event::COMM_LEN).unwrap_or(raw);
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let mut comm = Self::default();
        let name = raw.get(..end).unwrap_or_default();
        // Nearly every name is ASCII: copied whole (a name a character at a time showed
        // as a twentieth of the tracer's time under connection churn).
        if name.is_ascii() {
            if let Some(dst) = comm.bytes.get_mut(..name.len()) {
                dst.copy_from_slice(name);
                comm.len = name.len() as u8;
                return comm;
            }
        }
        for chunk in name.utf8_chunks() {
            comm.push(chunk.valid());
            if !chunk.invalid().is_empty() {
                comm.push(char::REPLACEMENT_CHARACTER.encode_utf8(&mut [0; 4]));
            }
        }
        comm
    }

    /// Appends what fits, whole characters only.
    fn push(&mut self, s: &str) {
        for c in s.chars() {
            let at = usize::from(self.len);
            let Some(slot) = self.bytes.get_mut(at..at + c.len_utf8()) else { return };
            c.encode_utf8(slot);
            self.len += c.len_utf8() as u8;
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // SAFETY: `push` and `from_kernel`'s ASCII copy write whole UTF-8 encoded characters
        // only, and `len` ends the last.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl Default for Comm {
    fn default() -> Self {
        Self { len: 0, bytes: [0; Self::CAPACITY] }
    }
}

impl std::ops::Deref for Comm {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Comm {
    fn from(s: &str) -> Self {
        let mut comm = Self::default();
        comm.push(s);
        comm
    }
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

impl ConnectResult {
    /// How a failed connect ended (`end` and `timeout`), by name; `None` for one that got
    /// through.
    pub(crate) const fn end_names(self) -> (Option<&'static str>, Option<&'static str>) {
        match self {
            Self::Ok => (None, None),
            Self::Failed(errno) => {
                let (end, timeout) = crate::end::of_failed_connect(errno);
                (
                    Some(end.name()),
                    match timeout {
                        Some(t) => Some(t.name()),
                        None => None,
                    },
                )
            }
        }
    }
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
    pub(crate) const SYN_SENT: Self = Self(2);
    pub(crate) const SYN_RECV: Self = Self(3);

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
    /// How it ended and what it lost.
    pub(crate) ending: crate::end::Ending,
}

impl CloseInfo {
    /// Bytes the application wrote: acknowledged plus never acknowledged (per-call
    /// counting sums what `tcp_sendmsg` accepted, which is that already).
    pub(crate) fn bytes_written(&self) -> Option<u64> {
        match self.bytes_source {
            BytesSource::Calls => Some(self.bytes_sent),
            BytesSource::Socket => {
                self.ending.unacked_bytes.map(|u| self.bytes_sent.saturating_add(u))
            }
        }
    }

    /// Bytes the application read: received less never read (per-call counting sums
    /// what `tcp_recvmsg` returned, which is that already).
    pub(crate) fn bytes_read(&self) -> Option<u64> {
        match self.bytes_source {
            BytesSource::Calls => Some(self.bytes_received),
            BytesSource::Socket => {
                self.ending.unread_bytes.map(|u| self.bytes_received.saturating_sub(u))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// `syns_sent`: the SYN and its retransmissions; 0 when `connect()` failed before one.
    /// `syns_dropped`: how many of them this host dropped on their way out, `None` when
    /// drops were not watched; `syn_drop_reason`: the kernel's reason for the last one.
    Connect {
        latency: Duration,
        result: ConnectResult,
        syns_sent: u32,
        syns_dropped: Option<u32>,
        syn_drop_reason: Option<String>,
    },
    Accept,
    Close(CloseInfo),
    State {
        old: TcpState,
        new: TcpState,
        in_old: Option<Duration>,
    },
    /// `tail_loss_probe`: the probe timer resent the last segment before any loss was
    /// detected (RFC 8985), rather than a retransmission after loss or a timeout.
    Retransmit {
        state: TcpState,
        total_retrans: u32,
        tail_loss_probe: bool,
    },
    /// A RST sent or received. `state`: the socket's, `None` without a socket; `reason`:
    /// the kernel's name for why it was sent (Linux 6.10+), `None` where it gives none;
    /// `count`: 1, or in a storm the resets of one key (direction, reason, addresses)
    /// since the last such event (at most one a second), the ports being the last one's.
    Reset {
        sent: bool,
        state: Option<TcpState>,
        reason: Option<String>,
        count: u64,
    },
    /// `count` TCP segments of one connection, direction and reason dropped since the last
    /// drop event of the same (at most one a second). `state`: the socket's, `None` when
    /// the segment had none; `reason`: the kernel's name (Linux 5.17+); `location`: where
    /// the kernel freed the last one, as a symbol (tracepoint family only).
    Drop {
        outgoing: bool,
        state: Option<TcpState>,
        reason: Option<String>,
        count: u64,
        location: Option<String>,
    },
}

/// The event types by name, in alphabetical order (the summary line lists them so).
pub(crate) const KINDS: [&str; 7] =
    ["accept", "close", "connect", "drop", "reset", "retransmit", "state"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// Nanoseconds since the Unix epoch.
    pub(crate) time_ns: u64,
    /// Which socket, as an opaque id (`EventHeader::sock`): tells apart connections with
    /// the same addresses and ports in different network namespaces. Never printed.
    pub(crate) sock: u64,
    pub(crate) owner: Owner,
    pub(crate) endpoints: Endpoints,
    /// The socket's network namespace (its inode number), 0 when not known.
    pub(crate) netns: u32,
    pub(crate) detail: Detail,
}

impl Event {
    /// The event's type, as `--events` and the JSON `type` field name it.
    pub(crate) const fn kind(&self) -> &'static str {
        KINDS[self.kind_index()]
    }

    /// The event's type as an index into `KINDS`.
    pub(crate) const fn kind_index(&self) -> usize {
        match self.detail {
            Detail::Accept => 0,
            Detail::Close(_) => 1,
            Detail::Connect { .. } => 2,
            Detail::Drop { .. } => 3,
            Detail::Reset { .. } => 4,
            Detail::Retransmit { .. } => 5,
            Detail::State { .. } => 6,
        }
    }
}

/// Names of the errno values a connect can fail with, or a socket end with; others print
/// as their number.
pub(crate) fn errno_name(errno: u32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        4 => "EINTR",
        32 => "EPIPE",
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

#[cfg(test)]
mod tests {
    use super::Comm;

    #[test]
    fn comm_stops_at_the_nul_and_replaces_what_is_not_utf8() {
        assert_eq!(Comm::from_kernel(b"curl\0garbage\0\0\0\0").as_str(), "curl");
        assert_eq!(Comm::from_kernel(b"sixteen-bytes-ab").as_str(), "sixteen-bytes-ab");
        assert_eq!(Comm::from_kernel(b"a\xffb\xc3").as_str(), "a\u{fffd}b\u{fffd}");
        // Sixteen bytes that are all invalid: every one replaced, none dropped.
        assert_eq!(Comm::from_kernel(&[0xff; 16]).as_str(), "\u{fffd}".repeat(16));
        assert_eq!(Comm::from_kernel(b"").as_str(), "");
    }
}
