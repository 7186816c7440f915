//! Every map the programs share, with who inserts, deletes and reads its entries.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::counters::COUNTER_SLOTS;

use crate::connect::{ConnectArgs, ConnectStart};

/// Events to userspace. Written by `emit`; read by `tracer/src/source.rs`.
/// Userspace may resize it before load (`map_max_entries`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Per-CPU counters indexed by `tracer_common::counters::Counter`: drops, read errors,
/// filtered events. Incremented by `emit::count`; summed by userspace.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Connects in flight, keyed by `struct sock *`.
/// Inserted: state hook, CLOSE -> SYN_SENT (in the connecting task's context).
/// Deleted: state hook at SYN_SENT -> ESTABLISHED / CLOSE, or the connect exit hook when
/// `connect()` fails. LRU so a missed end can never make it grow without bound.
#[map]
pub(crate) static CONNECTING: LruHashMap<u64, ConnectStart> =
    LruHashMap::with_max_entries(65_536, 0);

/// Arguments of a `tcp_v{4,6}_connect` call in progress, keyed by thread id.
/// Inserted: connect entry hook (fentry / kprobe). Deleted and read: connect exit hook.
/// Also read by the state hook: while an entry exists, the exit hook reports the failure.
#[map]
pub(crate) static CONNECT_ARGS: LruHashMap<u32, ConnectArgs> =
    LruHashMap::with_max_entries(16_384, 0);
