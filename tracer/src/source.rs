//! Reading the kernel side: the ring buffer (woken through tokio's `AsyncFd`) and the
//! per-CPU counters of what could not be delivered.

use anyhow::Context;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, Signal, SignalKind},
};
use tracer_common::counters::Counter;

use crate::loader::Tracer;

pub(crate) struct Source {
    pub(crate) ring: AsyncFd<RingBuf<MapData>>,
    pub(crate) losses: LossCounters,
}

impl Source {
    /// Must run inside the tokio runtime (the ring buffer fd is registered with it).
    pub(crate) fn new(tracer: &mut Tracer) -> anyhow::Result<Self> {
        let ring = tracer
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow::anyhow!("EVENTS map missing from the object"))?;
        let ring = RingBuf::try_from(ring)?;
        // SAFETY: the RingBuf owns its map fd and keeps it open for as long as it lives,
        // which is as long as the AsyncFd that owns it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self { ring, losses: LossCounters::new(tracer)? })
    }
}

/// What ends a trace, `serve` or `top` as cleanly as its end of `-d`: SIGINT, SIGTERM,
/// and SIGHUP (the terminal or ssh session gone), so that what is buffered still reaches
/// its file and the summary says what was lost.
pub(crate) const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// `STOP_SIGNALS`, for the tokio runtime of the trace and `serve`.
pub(crate) struct StopSignals([Signal; 3]);

impl StopSignals {
    /// From now on these signals no longer kill: installed before the programs load, so
    /// that one sent in the first moments (a supervisor's restart) still ends the run
    /// cleanly once it starts. Each is kept until `recv` is polled in `runtime`.
    pub(crate) fn install(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        let _in_runtime = runtime.enter();
        let listen =
            |number| signal(SignalKind::from_raw(number)).context("installing the signal handlers");
        let [a, b, c] = STOP_SIGNALS;
        Ok(Self([listen(a)?, listen(b)?, listen(c)?]))
    }

    /// Resolves when any of them comes.
    pub(crate) async fn recv(&mut self) {
        let [a, b, c] = &mut self.0;
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = c.recv() => {}
        }
    }
}

/// The single-threaded tokio runtime the trace and `serve` run on.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// A timer for `-d`: fires after `after`, or never (a century) without it.
pub(crate) fn deadline(after: Option<std::time::Duration>) -> tokio::time::Sleep {
    tokio::time::sleep(after.unwrap_or(std::time::Duration::from_secs(100 * 365 * 86_400)))
}

/// The kernel's counts of what it could not deliver: per-CPU counters and the programs'
/// skipped runs.
pub(crate) struct LossCounters {
    counters: PerCpuArray<MapData, u64>,
    /// The programs whose skipped runs count as losses (see `loader::stats`).
    programs: Vec<aya::programs::ProgramFd>,
    /// A handle of our own on `SOCKS` (`top` takes the tracer's), to count its entries.
    socks: aya::maps::HashMap<MapData, u64, tracer_common::conn::SockInfo>,
    /// Its size: `--max-connections`.
    socks_capacity: u64,
}

impl LossCounters {
    pub(crate) fn new(tracer: &mut Tracer) -> anyhow::Result<Self> {
        let counters = tracer
            .ebpf
            .take_map("COUNTERS")
            .ok_or_else(|| anyhow::anyhow!("COUNTERS map missing from the object"))?;
        let programs = crate::loader::stats::counted_programs(&tracer.ebpf);
        let Some(aya::maps::Map::LruHashMap(socks)) = tracer.ebpf.map("SOCKS") else {
            anyhow::bail!("SOCKS map missing from the object");
        };
        let socks_capacity = u64::from(socks.info()?.max_entries());
        // A duplicate of the map's fd (opening it by id would take CAP_SYS_ADMIN).
        let socks = MapData::from_fd(std::os::fd::AsFd::as_fd(socks.fd()).try_clone_to_owned()?)?;
        let socks = aya::maps::HashMap::try_from(aya::maps::Map::LruHashMap(socks))?;
        Ok(Self { counters: PerCpuArray::try_from(counters)?, programs, socks, socks_capacity })
    }

    /// Connections the LRU `SOCKS` dropped to make room for new ones (`--max-connections`
    /// reached; their owners forgotten), at least: entries the programs put in, minus
    /// those they took out, beyond what the map can hold. Exact once the hooks are gone
    /// (`forgotten_at_exit`).
    pub(crate) fn forgotten_at_least(&self) -> u64 {
        self.tracked_balance().saturating_sub(self.socks_capacity)
    }

    /// Connections `SOCKS` dropped, exactly: put in, minus taken out, minus still there.
    /// Only with the hooks gone: a removal between the two readings would count as a drop.
    pub(crate) fn forgotten_at_exit(&self) -> u64 {
        let balance = self.tracked_balance();
        let present = self.socks.keys().filter(Result::is_ok).count() as u64;
        balance.saturating_sub(present)
    }

    /// Entries put in minus entries taken out. Puts are read first: a removal made between
    /// the two readings can only make this smaller, never report a drop that was not.
    fn tracked_balance(&self) -> u64 {
        let tracked = self.counter(Counter::Tracked);
        tracked.saturating_sub(self.counter(Counter::Untracked))
    }

    /// Program runs the kernel skipped: summed over the programs where a skip is a loss,
    /// and the kretprobe runs the programs found missing (see `Counter::ReturnUnseen`).
    pub(crate) fn missed_runs(&self) -> u64 {
        crate::loader::stats::total_misses(&self.programs) + self.counter(Counter::ReturnUnseen)
    }

    /// The sum over CPUs of one counter.
    pub(crate) fn counter(&self, which: Counter) -> u64 {
        self.counters.get(&(which as u32), 0).map_or(0, |values| values.iter().sum())
    }
}

/// Wake-ups closer together than this mean a busy machine: batch (see `Pacer`).
const BUSY_GAP: std::time::Duration = std::time::Duration::from_millis(10);
/// How long a busy reader lets events pile up: the most an event waits under load.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// How soon a reader reads again after draining the ring buffer.
///
/// The kernel wakes a reader that has caught up at every event it commits, which costs
/// the traced workload an interrupt per event and the reader a wake-up and a drain per
/// event. When events come close together, wait a little before reading again: they pile
/// up, the kernel sees a reader behind and does not wake it, and one drain takes them
/// all. The first event after a quiet spell is still read at once.
pub(crate) struct Pacer {
    last_wake: std::time::Instant,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Self { last_wake: std::time::Instant::now() - BUSY_GAP }
    }

    /// Call after each drain.
    pub(crate) async fn after_drain(&mut self) {
        let now = std::time::Instant::now();
        if now.duration_since(self.last_wake) < BUSY_GAP {
            tokio::time::sleep(BATCH_WAIT).await;
        }
        self.last_wake = now;
    }
}
