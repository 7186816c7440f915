//! Drop events: the kernel counts dropped TCP segments per connection, direction and reason
//! in its `DROPS` map (tracer-ebpf/src/drop); once a second, and once more at the end, this
//! reads the map and makes one event for each key whose count grew, carrying exactly what
//! it grew by. A storm of drops is then one line a key a second, and no count is lost or
//! guessed. The names of reasons come from the running kernel's BTF, and locations from
//! `/proc/kallsyms`.

use tracer_common::drop::{DropCount, DropKey, REASON_NONE};

use crate::{
    decode::{owner_of, Clock},
    event::{Detail, Event, TcpState},
    grown::Grown,
    loader::Tracer,
};

/// The running kernel's names of `enum skb_drop_reason` (set once at load).
static DROP_REASONS: std::sync::OnceLock<Vec<(u32, String)>> = std::sync::OnceLock::new();

/// Keeps the kernel's drop reason names (the loader calls this once, from BTF).
pub(crate) fn know_drop_reasons(names: Vec<(u32, String)>) {
    let _first = DROP_REASONS.set(names);
}

/// The kernel's name of drop reason `raw`; `None` when it gave none, its number where this
/// kernel has no name for it.
pub(crate) fn reason_name(raw: u32) -> Option<String> {
    if raw == REASON_NONE {
        return None;
    }
    let names = DROP_REASONS.get().map_or(&[][..], Vec::as_slice);
    Some(
        names
            .iter()
            .find(|(value, _)| *value == raw)
            .map_or_else(|| format!("reason{raw}"), |(_, name)| name.clone()),
    )
}

/// The kernel's map of drop counts, and what has been reported of each key.
pub(crate) struct Drops {
    counts: Grown<DropKey, DropCount>,
    symbols: Option<Symbols>,
}

impl Drops {
    /// Takes the counts map from `tracer` when drop events were asked for.
    pub(crate) fn take(tracer: &mut Tracer, wanted: bool) -> anyhow::Result<Option<Self>> {
        if !wanted {
            return Ok(None);
        }
        Ok(Some(Self { counts: Grown::take(tracer, "DROPS")?, symbols: None }))
    }

    /// One event for each key whose count grew since the last sweep, with the growth.
    pub(crate) fn sweep(&mut self, clock: Clock) -> Vec<Event> {
        let mut events = Vec::new();
        for (key, counted, grew) in self.counts.sweep(|c| c.count) {
            let Ok(endpoints) = crate::decode::endpoints(&key.endpoints) else { continue };
            let location = (counted.location != 0)
                .then(|| self.symbols.get_or_insert_with(Symbols::read).name(counted.location));
            events.push(Event {
                time_ns: clock.wall(counted.last_ns),
                sock: 0,
                owner: owner_of(
                    counted.task.pid,
                    counted.task.tid,
                    counted.task.uid,
                    &counted.task.comm,
                ),
                endpoints,
                netns: counted.netns,
                detail: Detail::Drop {
                    outgoing: key.outgoing != 0,
                    state: (counted.has_socket != 0).then_some(TcpState(u32::from(counted.state))),
                    reason: reason_name(key.reason),
                    count: grew,
                    location,
                },
            });
        }
        events.sort_by_key(|e| e.time_ns);
        events
    }
}

/// Kernel text symbols, to name where a drop was made (`/proc/kallsyms`: addresses are
/// shown to root; elsewhere they read as zero and locations go unnamed).
struct Symbols {
    sorted: Vec<(u64, String)>,
}

impl Symbols {
    fn read() -> Self {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut sorted: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_string()))
            })
            .collect();
        sorted.sort_unstable();
        Self { sorted }
    }

    /// `function+0xoffset`, or the address where no symbol covers it.
    fn name(&self, addr: u64) -> String {
        let at = self.sorted.partition_point(|(a, _)| *a <= addr);
        match at.checked_sub(1).and_then(|i| self.sorted.get(i)) {
            Some((start, name)) => format!("{name}+{:#x}", addr - start),
            None => format!("{addr:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Symbols;

    #[test]
    fn locations_are_named_by_the_symbol_below_them() {
        let symbols = Symbols {
            sorted: vec![(0x1000, "tcp_v4_rcv".into()), (0x2000, "nf_hook_slow".into())],
        };
        assert_eq!(symbols.name(0x1010), "tcp_v4_rcv+0x10");
        assert_eq!(symbols.name(0x2000), "nf_hook_slow+0x0");
        assert_eq!(symbols.name(0x10), "0x10");
    }
}
