//! Reading the kernel side: the ring buffer (woken through tokio's `AsyncFd`) and the
//! per-CPU counters of what could not be delivered.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::{unix::AsyncFd, Interest};
use tracer_common::counters::Counter;

use crate::loader::Tracer;

pub(crate) struct Source {
    pub(crate) ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
}

impl Source {
    /// Must run inside the tokio runtime (the ring buffer fd is registered with it).
    pub(crate) fn new(tracer: &mut Tracer) -> anyhow::Result<Self> {
        let ring = tracer.ebpf.take_map("EVENTS").ok_or_else(|| anyhow::anyhow!("EVENTS map missing from the object"))?;
        let counters = tracer.ebpf.take_map("COUNTERS").ok_or_else(|| anyhow::anyhow!("COUNTERS map missing from the object"))?;
        let ring = RingBuf::try_from(ring)?;
        // SAFETY: the RingBuf owns its map fd and keeps it open for as long as it lives,
        // which is as long as the AsyncFd that owns it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(|e| e.into_parts().1)?;
        Ok(Self { ring, counters: PerCpuArray::try_from(counters)? })
    }

    /// The sum over CPUs of one counter.
    pub(crate) fn counter(&self, which: Counter) -> u64 {
        self.counters.get(&(which as u32), 0).map_or(0, |values| values.iter().sum())
    }
}
