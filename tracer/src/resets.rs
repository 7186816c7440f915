//! Reset events in a storm: past a CPU's budget of reset events a second, the kernel counts
//! resets in its `RESETS` map by direction, reason, socket or none, and addresses
//! (tracer-ebpf/src/reset); once a second, and once more at the end, this makes one reset
//! event for each key whose count grew, carrying exactly what it grew by.

use tracer_common::{
    addr::Endpoints,
    reset::{ResetCount, ResetKey, RESET_SENT},
};

use crate::{
    decode::{owner_of, Clock},
    event::{Detail, Event, TcpState},
    grown::Grown,
    loader::Tracer,
};

/// The kernel's map of reset counts, and what has been reported of each key.
pub(crate) struct Resets {
    counts: Grown<ResetKey, ResetCount>,
}

impl Resets {
    /// Takes the counts map from `tracer` when reset events were asked for.
    pub(crate) fn take(tracer: &mut Tracer, wanted: bool) -> anyhow::Result<Option<Self>> {
        if !wanted {
            return Ok(None);
        }
        Ok(Some(Self { counts: Grown::take(tracer, "RESETS")? }))
    }

    /// One event for each key whose count grew since the last sweep, with the growth.
    pub(crate) fn sweep(&mut self, clock: Clock) -> Vec<Event> {
        let mut events = Vec::new();
        for (key, counted, grew) in self.counts.sweep(|c| c.count) {
            let ends = Endpoints {
                saddr: key.local,
                daddr: key.remote,
                sport: counted.local_port,
                dport: counted.remote_port,
                family: key.family,
                _pad: 0,
            };
            let Ok(endpoints) = crate::decode::endpoints(&ends) else { continue };
            let task = &counted.task;
            events.push(Event {
                time_ns: clock.wall(counted.last_ns),
                sock: 0,
                owner: owner_of(task.pid, task.tid, task.uid, &task.comm),
                endpoints,
                netns: counted.netns,
                detail: Detail::Reset {
                    sent: key.direction == RESET_SENT,
                    state: (key.has_socket != 0).then_some(TcpState(u32::from(counted.state))),
                    reason: crate::end::reset_reason_name(key.reason),
                    count: grew,
                },
            });
        }
        events.sort_by_key(|e| e.time_ns);
        events
    }
}
