//! `tcptrace_state_transitions_total`: state changes are counted in the kernel
//! (`STATE_COUNTS`, one copy per CPU) rather than sent as events, ten fewer per
//! connection, and read at each scrape, so a scrape always has the latest counts.

use std::fmt;

use aya::maps::{MapData, PerCpuArray};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::Counter, family::Family},
};
use tracer_common::state::StateCounts;

use super::metrics::Labels;
use crate::event::TcpState;

pub(crate) struct StateTransitions {
    counts: PerCpuArray<MapData, StateCounts>,
}

// Collector wants Debug; aya's map types have none.
impl fmt::Debug for StateTransitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateTransitions")
    }
}

impl StateTransitions {
    /// Takes the kernel's counts map out of the loaded object.
    pub(crate) fn take(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        let map = ebpf
            .take_map("STATE_COUNTS")
            .ok_or_else(|| anyhow::anyhow!("STATE_COUNTS map missing"))?;
        Ok(Self { counts: PerCpuArray::try_from(map)? })
    }
}

impl Collector for StateTransitions {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // A failed read fails the scrape (500) rather than showing counts that are wrong.
        let per_cpu = self.counts.get(&0, 0).map_err(|_| fmt::Error)?;
        let family = Family::<Labels, Counter>::default();
        for cpu in per_cpu.iter() {
            for (old, row) in (0u32..).zip(&cpu.by_change) {
                for (new, &count) in (0u32..).zip(row).filter(|(_, n)| **n > 0) {
                    family
                        .get_or_create(&vec![
                            ("from", TcpState(old).name()),
                            ("to", TcpState(new).name()),
                        ])
                        .inc_by(count);
                }
            }
        }
        let metric = encoder.encode_descriptor(
            "state_transitions",
            "TCP state transitions, by state left and state entered",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}
