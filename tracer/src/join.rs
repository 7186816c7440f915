//! The kernel's reason on the close event of an abortive close.
//!
//! Since Linux 6.10 the kernel names each reset it sends (`enum sk_rst_reason`). A reset
//! sent before the socket's CLOSE (a keepalive timeout, `tcp_abort()`) is noted in its
//! kernel entry and comes with the close event. The reset of an abortive close comes
//! after it: `tcp_close()` with unread data, SO_LINGER zero and `tcp_disconnect()` move the
//! socket to CLOSE, and then send the reset. The close event is already out by then, so
//! the kernel sends that reset as an event of its own, even when reset events are not
//! wanted (`Config::close_reasons`), and this joins the two: a close that ended in a reset
//! sent, without the kernel's reason, is held until its socket's reset arrives (within
//! microseconds: the same call, on the same CPU) or `HOLD` passes. A held close is never
//! lost: without its reset it goes on with the reason told from the socket, marked inferred.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::{
    end::{End, Reason},
    event::{Detail, Event},
};

/// How long a close waits for its reset. The reset is sent in the same kernel call as the
/// CLOSE, so it is in the ring buffer at once; the wait only covers a drain that took the
/// close just before the reset went in.
const HOLD: Duration = Duration::from_millis(100);

/// Closes waiting for their reset's reason.
pub(crate) struct Join {
    /// Whether the kernel sends the resets (`Tracer::close_reasons`).
    on: bool,
    /// Whether reset events go on to the sink: otherwise they came for the join only.
    resets_wanted: bool,
    /// In arrival order, with when each came.
    held: VecDeque<(Instant, Event)>,
}

impl Join {
    pub(crate) const fn new(on: bool, resets_wanted: bool) -> Self {
        Self { on, resets_wanted, held: VecDeque::new() }
    }

    /// Takes a decoded event; puts what can go to the sink now into `ready`, in order.
    pub(crate) fn push(&mut self, mut event: Event, ready: &mut Vec<Event>) {
        if !self.on {
            ready.push(event);
            return;
        }
        match &mut event.detail {
            Detail::Close(close) if waits_for_reason(&close.ending) => {
                self.held.push_back((Instant::now(), event));
                return;
            }
            Detail::Reset { sent: true, reason: Some(name), .. } => {
                let sock = event.sock;
                if let Some(at) = self.held.iter().position(|(_, held)| held.sock == sock) {
                    if let Some((_, mut close)) = self.held.remove(at) {
                        if let Detail::Close(info) = &mut close.detail {
                            info.ending.reason = Some(Reason::kernels(name.clone()));
                        }
                        ready.push(close);
                    }
                }
            }
            _ => {}
        }
        if self.resets_wanted || !matches!(event.detail, Detail::Reset { .. }) {
            ready.push(event);
        }
    }

    /// Puts into `ready` the closes that waited `HOLD` without their reset.
    pub(crate) fn expire(&mut self, now: Instant, ready: &mut Vec<Event>) {
        while self.held.front().is_some_and(|(since, _)| now.duration_since(*since) >= HOLD) {
            if let Some((_, close)) = self.held.pop_front() {
                ready.push(close);
            }
        }
    }

    /// Puts every held close into `ready`: the hooks are gone, no reset can come.
    pub(crate) fn flush(&mut self, ready: &mut Vec<Event>) {
        ready.extend(self.held.drain(..).map(|(_, close)| close));
    }
}

/// A close that ended in a reset this host sent, whose reason the kernel has not given
/// yet (only inferred, or none).
fn waits_for_reason(ending: &crate::end::Ending) -> bool {
    ending.end == End::ResetSent && ending.reason.as_ref().is_none_or(|r| r.inferred)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        end::Ending,
        event::{BytesSource, CloseInfo, ClosedBy, Direction},
        printer::tests::event,
    };

    /// A close of socket `sock` that ended `end`, with `inferred` as its reason.
    fn close_event(sock: u64, end: End, inferred: Option<&'static str>) -> Event {
        let ending = Ending {
            end,
            errno: None,
            timeout: None,
            reason: inferred.map(|name| Reason { name: name.into(), inferred: true }),
            unacked_bytes: Some(0),
            unread_bytes: Some(0),
        };
        let close = CloseInfo {
            lifetime: None,
            bytes_sent: 1,
            bytes_received: 2,
            total_retrans: 0,
            srtt_us: 0,
            direction: Direction::Active,
            closed_by: ClosedBy::Local,
            bytes_source: BytesSource::Socket,
            ending,
        };
        Event { sock, ..event(Detail::Close(close), false, true) }
    }

    fn reset_event(sock: u64, sent: bool, reason: Option<&str>) -> Event {
        let reset = Detail::Reset { sent, state: None, reason: reason.map(String::from), count: 1 };
        Event { sock, ..event(reset, false, true) }
    }

    fn kinds(events: &[Event]) -> Vec<(&'static str, u64, Option<String>)> {
        events
            .iter()
            .map(|e| match &e.detail {
                Detail::Close(c) => (
                    "close",
                    e.sock,
                    c.ending
                        .reason
                        .as_ref()
                        .map(|r| format!("{}{}", r.name, if r.inferred { "?" } else { "" })),
                ),
                Detail::Reset { reason, .. } => ("reset", e.sock, reason.clone()),
                _ => ("other", e.sock, None),
            })
            .collect()
    }

    #[test]
    fn an_abortive_close_takes_the_reason_of_the_reset_that_follows_it() {
        let mut join = Join::new(true, false);
        let mut ready = Vec::new();
        join.push(close_event(7, End::ResetSent, Some("TCP_ABORT_ON_CLOSE")), &mut ready);
        join.push(close_event(8, End::Fin, None), &mut ready);
        assert_eq!(kinds(&ready), [("close", 8, None)], "the abortive close waits");
        join.push(reset_event(7, true, Some("TCP_ABORT_ON_CLOSE")), &mut ready);
        assert_eq!(
            kinds(&ready),
            [("close", 8, None), ("close", 7, Some("TCP_ABORT_ON_CLOSE".into()))],
            "the kernel's reason, not inferred; the reset itself was not asked for"
        );
    }

    #[test]
    fn resets_asked_for_follow_their_close() {
        let mut join = Join::new(true, true);
        let mut ready = Vec::new();
        join.push(close_event(7, End::ResetSent, None), &mut ready);
        join.push(reset_event(9, false, None), &mut ready);
        join.push(reset_event(7, true, Some("TCP_STATE")), &mut ready);
        assert_eq!(
            kinds(&ready),
            [
                ("reset", 9, None),
                ("close", 7, Some("TCP_STATE".into())),
                ("reset", 7, Some("TCP_STATE".into()))
            ]
        );
    }

    #[test]
    fn a_close_whose_reset_never_comes_goes_on_inferred_after_the_hold() {
        let mut join = Join::new(true, false);
        let mut ready = Vec::new();
        let start = Instant::now();
        join.push(close_event(7, End::ResetSent, Some("TCP_ABORT_ON_CLOSE")), &mut ready);
        join.expire(start, &mut ready);
        assert!(ready.is_empty());
        join.expire(start + HOLD + HOLD, &mut ready);
        assert_eq!(kinds(&ready), [("close", 7, Some("TCP_ABORT_ON_CLOSE?".into()))]);
        join.push(close_event(8, End::ResetSent, None), &mut ready);
        join.flush(&mut ready);
        assert_eq!(kinds(&ready).last(), Some(&("close", 8, None)), "flushed at the end");
    }

    #[test]
    fn without_the_kernel_s_resets_nothing_waits() {
        let mut join = Join::new(false, false);
        let mut ready = Vec::new();
        join.push(close_event(7, End::ResetSent, None), &mut ready);
        assert_eq!(kinds(&ready), [("close", 7, None)]);
    }
}
