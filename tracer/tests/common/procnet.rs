//! The kernel's own list of TCP sockets (`/proc/net/tcp{,6}`).

/// Whether a full socket (any state but TIME_WAIT, 06) with this local port is open.
pub fn port_in_proc_net_tcp(port: u16) -> bool {
    tcp_sockets()
        .iter()
        .any(|s| s.local_port == port && s.state != "06" && !s.is_time_wait_minisock())
}

/// One line of /proc/net/tcp{,6}: the ports, the state (hex, as the kernel prints it) and
/// the timer columns (which timer, when it fires, how often it fired), for diagnostics.
#[derive(Debug)]
pub(super) struct TcpSocket {
    pub(super) local_port: u16,
    pub(super) remote_port: u16,
    pub(super) state: String,
    pub(super) timer: String,
    /// How often its timer fired unanswered (`icsk_retransmits`): for a socket in
    /// SYN_SENT, how often its SYN was sent again.
    pub(super) retransmits: u32,
}

impl TcpSocket {
    /// A time-wait mini-socket: the full socket is gone (its CLOSE came and went) and the
    /// kernel keeps only this for the connection's last packets. Its state column is its
    /// substate, which is FIN_WAIT2 (05) for an orphan closed before the peer's FIN, for up
    /// to `tcp_fin_timeout` (60 s) when that FIN is lost (once in a rare while under the
    /// 20,000-connection load in the VM); only time-wait sockets show timer 3.
    pub(super) fn is_time_wait_minisock(&self) -> bool {
        self.timer.starts_with("03:")
    }
}

/// Every TCP socket the kernel lists now, IPv4 and IPv6 (lines it cannot parse are left out).
pub(super) fn tcp_sockets() -> Vec<TcpSocket> {
    let port_of =
        |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                local_port: port_of(f.get(1)?)?,
                remote_port: port_of(f.get(2)?)?,
                state: (*f.get(3)?).to_string(),
                timer: format!("{} retransmits={}", f.get(5)?, f.get(6)?),
                retransmits: u32::from_str_radix(f.get(6)?, 16).ok()?,
            })
        })
        .collect()
}
