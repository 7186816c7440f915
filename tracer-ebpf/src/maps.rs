//! Every map the programs share, with who inserts, deletes and reads its entries, and the
//! values they hold that are the kernel side's alone (`SockInfo` is shared with user space,
//! in tracer-common). The bottom layer: it imports no other module of this crate.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    addr::Endpoints,
    conn::{SockInfo, Task},
    counters::COUNTER_SLOTS,
};

/// A connection just closed, and its owner (see `maps::LAST_CLOSED`).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Closed {
    pub(crate) sk: u64,
    pub(crate) task: Task,
    pub(crate) filtered_out: u64,
}

/// A connection's ends, as its socket has them (`saddr` local), and its network namespace.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct EndsKey {
    pub(crate) endpoints: Endpoints,
    pub(crate) netns: u32,
    pub(crate) _pad: u32,
}

/// A CPU's budget of reset events (see `maps::RESET_BUDGET`).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct ResetBudget {
    pub(crate) second_began_ns: u64,
    pub(crate) sent: u64,
}

/// `tcp_v{4,6}_connect(struct sock *sk, struct sockaddr *uaddr, int addr_len)` arguments.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct ConnectArgs {
    pub(crate) sk: u64,
    pub(crate) uaddr: u64,
}

/// 1 once every hook is attached, 0 before and from the moment tracing stops: the
/// programs do nothing while it is 0 (see `globals::armed`). Written by userspace only
/// (`tracer/src/loader/mod.rs`, `arm`).
#[map]
pub(crate) static ARMED: Array<u32> = Array::with_max_entries(1, 0);

/// Events to userspace. Written by `emit::send`; read by `tracer/src/source.rs`.
/// Userspace may resize it before load (`map_max_entries`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Per-CPU counters indexed by `tracer_common::counters::Counter`: drops, read errors,
/// filtered events. Incremented by `emit::count`; summed by userspace.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// What tcptrace knows of each connection, keyed by `struct sock *`.
/// Inserted: state hook at CLOSE -> SYN_SENT (active open, caller's context), at the first
/// transition of a socket it has not seen (passive opens, connections older than tcptrace),
/// by the accept hook, and by the bytes hook for a connection older than tcptrace (`top`).
/// Updated: state hook (times, who closed first), accept hook (owner; marked filtered out
/// when the acceptor is), bytes hooks (per-call counts). Deleted: state hook at -> CLOSE
/// (or, with per-call counting, at the socket's destruction: `event::close::send_waiting`),
/// the connect exit hook when connect() failed, and `event::connect::start` when the map
/// refused the new entry. Read: every event, for the owner.
/// LRU and sized by `--max-connections`: missed closes can never make it grow.
#[map]
pub(crate) static SOCKS: LruHashMap<u64, SockInfo> = LruHashMap::with_max_entries(65_536, 0);

/// Each established connection's `struct sock *` by its ends and network namespace, only
/// while drop events are wanted: a segment dropped before its socket was looked up (on
/// loopback, or in a firewall's input chain) finds its connection here.
/// Inserted: state hook at -> ESTABLISHED. Deleted: state hook at -> CLOSE. Read: the drop
/// hook, which checks that the socket still has those ends. LRU and sized as `SOCKS`.
#[map]
pub(crate) static ENDS: LruHashMap<EndsKey, u64> = LruHashMap::with_max_entries(65_536, 0);

/// Scratch space to build a new `SOCKS` value in (160 bytes the BPF stack cannot spare on
/// the deepest call chains), one slot per nesting level: a softirq program can interrupt
/// a process-context one halfway through building its value. Written and read by
/// `socks::with_scratch`, on its own CPU.
#[map]
pub(crate) static NEW_SOCK: PerCpuArray<SockInfo> = PerCpuArray::with_max_entries(2, 0);

/// How many programs on this CPU are building a value in `NEW_SOCK` now (0, 1 or 2): the
/// slot the next one takes.
#[map]
pub(crate) static NEW_SOCK_DEPTH: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// State changes by (old, new), counted here instead of sent when `Config::count_states`
/// (`tcptrace serve`). Incremented by `state::state_event`; summed by userspace.
#[map]
pub(crate) static STATE_COUNTS: PerCpuArray<tracer_common::state::StateCounts> =
    PerCpuArray::with_max_entries(1, 0);

/// 1 while the softirq side of the state hook's program pair runs on this CPU (see
/// `state::pair`). Written by that program, read by the owner side, both on this CPU.
#[map]
pub(crate) static STATE_BUSY: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The last connection that reached CLOSE on this CPU, with its owner, kept after its
/// `SOCKS` entry goes: a socket's own reset is sent right after its CLOSE
/// (`tcp_close()`, `tcp_disconnect()`), in the same call. Two slots: one for sockets a
/// task holds (process context), one for the others (softirq), since the reset sent by
/// a closing task can reach a peer on loopback, and close it, in a softirq that runs
/// inside that task's call, before the reset's tracepoint fires.
/// Written: the state hook at CLOSE, only when reset events or close reasons are wanted
/// (`Config::close_reasons`). Read and emptied: the reset hook. Overwritten, never freed.
#[map]
pub(crate) static LAST_CLOSED: PerCpuArray<Closed> = PerCpuArray::with_max_entries(2, 0);

/// Dropped TCP segments, counted per connection, direction and reason (see `drop`).
/// Inserted and added to: the drop hook. Read: user space, once a second and at the end
/// (tracer/src/drops.rs). Never deleted while tracing: a full table refuses new keys, each
/// refused drop counted as a refused map update.
#[map]
pub(crate) static DROPS: HashMap<tracer_common::drop::DropKey, tracer_common::drop::DropCount> =
    HashMap::with_max_entries(16_384, 0);

/// Resets past a CPU's budget of reset events (`tracer_common::reset::EVENTS_PER_CPU_SECOND`),
/// counted by key (see `reset`). Inserted and added to: the reset hook. Read: user space,
/// once a second and at the end (tracer/src/resets.rs). Never deleted while tracing: a full
/// table refuses new keys, each refused reset counted as a refused map update.
#[map]
pub(crate) static RESETS: HashMap<
    tracer_common::reset::ResetKey,
    tracer_common::reset::ResetCount,
> = HashMap::with_max_entries(4_096, 0);

/// Each CPU's budget of reset events: when its second began, and how many went out in it.
#[map]
pub(crate) static RESET_BUDGET: PerCpuArray<ResetBudget> = PerCpuArray::with_max_entries(1, 0);

/// Arguments of a `tcp_v{4,6}_connect` call in progress, keyed by thread id.
/// Inserted: connect entry hook (fentry / kprobe). Deleted and read: connect exit hook.
/// Also read by the state hook: while an entry exists, the exit hook reports the failure.
#[map]
pub(crate) static CONNECT_ARGS: LruHashMap<u32, ConnectArgs> =
    LruHashMap::with_max_entries(16_384, 0);

/// The `struct sock *` argument of a kprobe'd call until its kretprobe runs, keyed by
/// `calls::key()` (thread, or CPU for the idle task, and which call). Inserted: kprobe entries of
/// `tcp_sendmsg`, `tcp_recvmsg`, `tcp_retransmit_skb`, `tcp_send_loss_probe`. Deleted and read: the matching kretprobe.
#[map]
pub(crate) static CALL_ARGS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16_384, 0);

/// A socket's `total_retrans` when `tcp_send_loss_probe` began, keyed by `struct sock *`.
/// Inserted: its entry hook (fentry / kprobe). Deleted and read: its exit hook.
#[map]
pub(crate) static LOSS_PROBES: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4_096, 0);
