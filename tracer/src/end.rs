//! How a connection ended, and what it lost: the close event's raw `Ending` (what the
//! socket showed as it reached CLOSE) classified into `fin`, `reset_received`,
//! `reset_sent`, `timeout` or `error`, and a failed connect's errno likewise.
//!
//! The kernel sends raw values only; every rule lives here, each with the kernel code it
//! follows (Linux v6.1 and v6.18 agree on all of them):
//! - a reset received leaves ECONNRESET on the socket (EPIPE in CLOSE_WAIT, ECONNREFUSED
//!   in SYN_SENT) before CLOSE: `tcp_reset()`, net/ipv4/tcp_input.c;
//! - retries that ran out leave ETIMEDOUT, or the last soft error (an ICMP unreachable),
//!   before CLOSE: `tcp_write_err()`, net/ipv4/tcp_timer.c; the retransmission timer
//!   counts in `icsk_retransmits`, the keepalive and zero-window probe timers in
//!   `icsk_probes_out`;
//! - an abortive close leaves no error and goes to CLOSE straight from a state that needs
//!   a reset (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, SYN_RECV), the reset going out right
//!   after: `tcp_close()` with unread data (`TCP_ABORT_ON_CLOSE`), or with SO_LINGER set
//!   to zero through `tcp_disconnect()`, net/ipv4/tcp.c. Since 6.10 the kernel names
//!   the second case `TCP_STATE` (`tcp_disconnect()`'s reason, as the `tcp:tcp_send_reset`
//!   tracepoint shows it on 6.18), not `TCP_ABORT_ON_LINGER`, which is the FIN_WAIT2
//!   timeout of a negative `TCP_LINGER2`; tcptrace names it as the kernel does.
//!
//! The reason of a reset sent is inferred from the socket here on every kernel (named as
//! Linux 6.10's `enum sk_rst_reason` names the same cases), and marked as inferred.

use tracer_common::{
    close::{Ending as RawEnding, ENDING_LINGER_ZERO, ENDING_READ, ENDING_ZERO_WINDOW},
    kernel::{
        ECONNABORTED, ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT, TCP_CLOSE_WAIT, TCP_CLOSING,
        TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_SYN_RECV, TCP_TIME_WAIT,
    },
};

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum End {
    /// Orderly: both FINs.
    Fin,
    ResetReceived,
    ResetSent,
    /// The kernel gave up: its retries ran out (see `Timeout`).
    Timeout,
    /// Any other error on the socket.
    Error,
}

impl End {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Fin => "fin",
            Self::ResetReceived => "reset_received",
            Self::ResetSent => "reset_sent",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// Which retries ran out, where the kernel lets it be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// A connect's SYNs went unanswered (`tcp_syn_retries`).
    SynRetries,
    /// Data went unacknowledged (`tcp_retries2`).
    Retransmissions,
    /// Keepalive probes went unanswered (`TCP_KEEPCNT`).
    Keepalive,
    /// The peer's window stayed shut while its probes went unanswered.
    ZeroWindowProbes,
    /// Data waited to be sent with the window open, nothing in flight: each send failed on
    /// this host (a firewall's output rule, a full queue) until the kernel's probe timer
    /// gave up (`tcp_check_probe_timer()`, `tcp_probe_timer()`).
    Unsent,
}

impl Timeout {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::SynRetries => "syn_retries",
            Self::Retransmissions => "retransmissions",
            Self::Keepalive => "keepalive",
            Self::ZeroWindowProbes => "zero_window_probes",
            Self::Unsent => "unsent",
        }
    }
}

/// The reason of a reset: the kernel's own name for the case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reason {
    pub(crate) name: std::borrow::Cow<'static, str>,
    /// Told from the socket's state by tcptrace, not given by the kernel.
    pub(crate) inferred: bool,
}

/// A close event's ending, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ending {
    pub(crate) end: End,
    /// The socket's error at CLOSE (a positive errno), if any.
    pub(crate) errno: Option<u32>,
    pub(crate) timeout: Option<Timeout>,
    pub(crate) reason: Option<Reason>,
    /// Written but never acknowledged, and received but never read; `None` where the
    /// kernel's sequence numbers could not be read.
    pub(crate) unacked_bytes: Option<u64>,
    pub(crate) unread_bytes: Option<u64>,
}

impl Ending {
    /// Classifies what the kernel read at CLOSE.
    pub(crate) fn classify(raw: &RawEnding) -> Self {
        let old = i32::from(raw.old_state);
        let err = raw.err;
        let probed = raw.probes_out > 0;
        let retried = raw.retransmits > 0 || probed;
        let end = match err {
            0 => match old {
                TCP_FIN_WAIT2 | TCP_CLOSING | TCP_LAST_ACK | TCP_TIME_WAIT => End::Fin,
                TCP_ESTABLISHED | TCP_CLOSE_WAIT | TCP_FIN_WAIT1 | TCP_SYN_RECV => End::ResetSent,
                _ => End::Error,
            },
            ECONNRESET | EPIPE | ECONNREFUSED => End::ResetReceived,
            ETIMEDOUT => End::Timeout,
            // A soft error (an ICMP unreachable) that stood when the retries ran out.
            _ if retried && err != ECONNABORTED => End::Timeout,
            _ => End::Error,
        };
        // The probe timer runs for keepalive only with nothing written unacknowledged
        // (`tcp_keepalive_timer()` waits while data is queued); with data waiting it is the
        // zero-window probe timer, which also runs when sends fail on this host.
        let waiting = raw.flags & ENDING_READ != 0 && raw.unacked_bytes > 0;
        let timeout = (end == End::Timeout).then_some(
            match (probed, waiting, raw.flags & ENDING_ZERO_WINDOW != 0) {
                (true, _, true) => Timeout::ZeroWindowProbes,
                (true, true, false) => Timeout::Unsent,
                (true, false, false) => Timeout::Keepalive,
                (false, _, _) => Timeout::Retransmissions,
            },
        );
        let read = raw.flags & ENDING_READ != 0;
        let reason = match raw.reset_reason.checked_sub(1) {
            // The kernel's, for a reset sent before the CLOSE (see `RawEnding`).
            Some(kernel) => reset_reason_name(kernel).map(Reason::kernels),
            None => inferred_reason(end, timeout, read, raw),
        };
        Self {
            end,
            errno: u32::try_from(err).ok().filter(|&e| e != 0),
            timeout,
            reason,
            unacked_bytes: read.then_some(u64::from(raw.unacked_bytes)),
            unread_bytes: read.then_some(u64::from(raw.unread_bytes)),
        }
    }
}

/// The reason of the reset a socket sent as it ended, told from what it showed at CLOSE:
/// for a kernel that names none (before 6.10), or a reset whose name is joined to the
/// close later (the reset of an abortive close comes after its CLOSE: tracer/src/join.rs).
fn inferred_reason(
    end: End,
    timeout: Option<Timeout>,
    read: bool,
    raw: &RawEnding,
) -> Option<Reason> {
    let name = match (end, timeout) {
        // tcp_close() tests unread data first, then SO_LINGER.
        (End::ResetSent, _) if read && raw.unread_bytes > 0 => "TCP_ABORT_ON_CLOSE",
        (End::ResetSent, _) if raw.flags & ENDING_LINGER_ZERO != 0 => "TCP_STATE",
        // The keepalive timer resets the connection, then gives up (`tcp_keepalive_timer()`,
        // net/ipv4/tcp_timer.c); the other timeouts send no reset. A kernel that names its
        // resets names that one too, and the reset hook notes it: never told there.
        (End::Timeout, Some(Timeout::Keepalive)) if !kernel_names_resets() => {
            "TCP_KEEPALIVE_TIMEOUT"
        }
        _ => return None,
    };
    Some(Reason { name: name.into(), inferred: true })
}

impl Reason {
    /// The kernel's own name for a reset it sent.
    pub(crate) fn kernels(name: String) -> Self {
        Self { name: name.into(), inferred: false }
    }
}

/// The running kernel's names of `enum sk_rst_reason`, by value (empty before Linux
/// 6.10): set once at load, read by the decoder.
static RESET_REASONS: std::sync::OnceLock<Vec<(u32, String)>> = std::sync::OnceLock::new();

/// Whether the running kernel names its resets (Linux 6.10+).
fn kernel_names_resets() -> bool {
    RESET_REASONS.get().is_some_and(|names| !names.is_empty())
}

/// Keeps the kernel's reset reason names (the loader calls this once, from BTF).
pub(crate) fn know_reset_reasons(names: Vec<(u32, String)>) {
    let _first = RESET_REASONS.set(names);
}

/// The kernel's name of reset reason `raw`; `None` when the kernel gave none
/// (`REASON_NONE`), its number where this kernel has no name for it.
pub(crate) fn reset_reason_name(raw: u32) -> Option<String> {
    if raw == tracer_common::reset::REASON_NONE {
        return None;
    }
    let names = RESET_REASONS.get().map_or(&[][..], Vec::as_slice);
    Some(
        names
            .iter()
            .find(|(value, _)| *value == raw)
            .map_or_else(|| format!("reason{raw}"), |(_, name)| name.clone()),
    )
}

#[cfg(test)]
impl Ending {
    /// An orderly close that lost nothing (for other modules' tests).
    pub(crate) const fn orderly() -> Self {
        Self {
            end: End::Fin,
            errno: None,
            timeout: None,
            reason: None,
            unacked_bytes: Some(0),
            unread_bytes: Some(0),
        }
    }
}

/// How a failed connect ended, from its errno (0: the application gave up first).
pub(crate) const fn of_failed_connect(errno: u32) -> (End, Option<Timeout>) {
    match errno as i32 {
        ECONNREFUSED | ECONNRESET => (End::ResetReceived, None),
        ETIMEDOUT => (End::Timeout, Some(Timeout::SynRetries)),
        _ => (End::Error, None),
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::kernel::{EPIPE, TCP_SYN_SENT};

    use super::*;

    fn raw(old: i32, err: i32) -> RawEnding {
        RawEnding {
            err,
            unacked_bytes: 0,
            unread_bytes: 0,
            old_state: old as u8,
            retransmits: 0,
            probes_out: 0,
            flags: ENDING_READ,
            reset_reason: 0,
        }
    }

    #[test]
    fn an_orderly_close_is_fin_from_every_closing_state() {
        for old in [TCP_FIN_WAIT2, TCP_CLOSING, TCP_LAST_ACK] {
            let e = Ending::classify(&raw(old, 0));
            assert_eq!(
                (e.end, e.errno, e.reason, e.timeout),
                (End::Fin, None, None, None),
                "from {old}"
            );
        }
    }

    #[test]
    fn a_reset_received_is_told_by_the_error_it_leaves() {
        assert_eq!(Ending::classify(&raw(TCP_ESTABLISHED, ECONNRESET)).end, End::ResetReceived);
        assert_eq!(Ending::classify(&raw(TCP_CLOSE_WAIT, EPIPE)).end, End::ResetReceived);
        assert_eq!(Ending::classify(&raw(TCP_ESTABLISHED, ECONNRESET)).errno, Some(104));
    }

    #[test]
    fn an_abortive_close_names_its_reason_unread_data_first() {
        let mut r = raw(TCP_ESTABLISHED, 0);
        r.unread_bytes = 400_000;
        r.flags |= ENDING_LINGER_ZERO;
        let e = Ending::classify(&r);
        assert_eq!(e.end, End::ResetSent);
        assert_eq!(e.reason, Some(Reason { name: "TCP_ABORT_ON_CLOSE".into(), inferred: true }));
        assert_eq!(e.unread_bytes, Some(400_000));
        r.unread_bytes = 0;
        assert_eq!(
            Ending::classify(&r).reason,
            Some(Reason { name: "TCP_STATE".into(), inferred: true })
        );
        r.flags = ENDING_READ;
        assert_eq!(Ending::classify(&r).reason, None);
    }

    #[test]
    fn timeouts_say_which_retries_ran_out() {
        let mut r = raw(TCP_ESTABLISHED, ETIMEDOUT);
        r.retransmits = 3;
        assert_eq!(Ending::classify(&r).timeout, Some(Timeout::Retransmissions));
        r.retransmits = 0;
        r.probes_out = 2;
        assert_eq!(Ending::classify(&r).timeout, Some(Timeout::Keepalive));
        // Probes with data waiting: not keepalive, which waits while data is queued.
        r.unacked_bytes = 3_000;
        assert_eq!(Ending::classify(&r).timeout, Some(Timeout::Unsent));
        r.flags |= ENDING_ZERO_WINDOW;
        assert_eq!(Ending::classify(&r).timeout, Some(Timeout::ZeroWindowProbes));
        // An ICMP error that stood when the retries ran out is still a timeout, with its errno.
        let mut soft = raw(TCP_ESTABLISHED, 113);
        soft.retransmits = 5;
        let e = Ending::classify(&soft);
        assert_eq!(
            (e.end, e.errno, e.timeout),
            (End::Timeout, Some(113), Some(Timeout::Retransmissions))
        );
        assert_eq!(Ending::classify(&raw(TCP_ESTABLISHED, 113)).end, End::Error);
    }

    #[test]
    fn unread_sequence_numbers_leave_the_byte_counts_unknown() {
        let mut r = raw(TCP_ESTABLISHED, 0);
        r.flags = 0;
        let e = Ending::classify(&r);
        assert_eq!((e.unacked_bytes, e.unread_bytes), (None, None));
        assert_eq!(Ending::classify(&raw(TCP_SYN_SENT, 0)).end, End::Error);
    }

    #[test]
    fn failed_connects_end_by_their_errno() {
        assert_eq!(of_failed_connect(111), (End::ResetReceived, None));
        assert_eq!(of_failed_connect(110), (End::Timeout, Some(Timeout::SynRetries)));
        assert_eq!(of_failed_connect(113), (End::Error, None));
        assert_eq!(of_failed_connect(0), (End::Error, None));
    }
}
