//! Loading the kernel object: kernel layout facts in (BTF, tracepoint formats), programs
//! attached per hook with a run-time fallback between hook families (see `family.rs`).

pub(crate) mod btf;
pub(crate) mod family;
pub(crate) mod stats;
pub(crate) mod tracefs;

use std::path::{Path, PathBuf};

use aya::{Ebpf, EbpfLoader};
use tracer_common::{
    event::{kind_bit, EventKind},
    filter::{Config, Filter},
    offsets::{
        LengthTpOffsets, ResetOffsets, RetransTpOffsets, SockOffsets, StateTpOffsets,
        SyscallTpOffsets, TaskOffsets, OFFSET_ABSENT,
    },
};

pub(crate) use family::{Hook, HookFamily};

/// The kernel object, built by `cargo xtask build-ebpf` from `tracer-ebpf/`.
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../bpf/tcptrace.bpf.o");

/// Default location of the kernel's own BTF.
pub(crate) const SYS_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// `why` is not a `source`: the message already says it, once.
    #[error("cannot read kernel BTF at {path}: {why} (the kernel needs CONFIG_DEBUG_INFO_BTF=y; --btf FILE names another copy)")]
    NoBtf { path: String, why: std::io::Error },
    #[error("{0} is not valid BTF")]
    BadBtf(String),
    #[error("this kernel has no {0}")]
    MissingField(String),
    #[error("the BTF in {path} has no {what}")]
    MissingInFile { path: String, what: String },
    #[error("tracefs is not mounted and mounting it failed: {0}")]
    NoTracefs(std::io::Error),
    #[error("cannot read the format of tracepoint {tracepoint}: {source}")]
    TracepointFormat { tracepoint: String, source: std::io::Error },
    #[error("loading the eBPF object failed: {0}")]
    Object(String),
    #[error("hook {hook}: no hook family attaches on this kernel ({tried})")]
    NoFamily { hook: &'static str, tried: String },
    #[error("turning the attached hooks on failed: {0}")]
    Arm(String),
}

/// What the programs need to know about this kernel, gathered before load. A part that
/// cannot be read makes only the families that need it unusable.
pub(crate) struct KernelFacts {
    pub(crate) sock: SockOffsets,
    /// The reset hooks' `sk_buff` offsets, and whether their reason argument exists.
    pub(crate) reset: ResetOffsets,
    /// The names of `enum sk_rst_reason` (Linux 6.10+) by value, as the kernel's own
    /// tracepoint prints them (`SK_RST_REASON_` left off); empty before.
    pub(crate) reset_reasons: Vec<(u32, String)>,
    /// The same for `enum skb_drop_reason` (Linux 5.17+), `SKB_DROP_REASON_` left off.
    pub(crate) drop_reasons: Vec<(u32, String)>,
    /// Those of `family::DROP_FUNCS` this kernel's BTF has.
    functions: Vec<String>,
    pub(crate) task: Result<TaskOffsets, String>,
    /// `tcp_recvmsg`'s argument positions, for the per-call hooks of the fentry and kprobe
    /// families.
    pub(crate) recvmsg: Result<RecvmsgArgs, String>,
    pub(crate) state_tp: Result<StateTpOffsets, String>,
    pub(crate) accept_tp: Result<SyscallTpOffsets, String>,
    pub(crate) length_tp: Result<LengthTpOffsets, String>,
    pub(crate) retrans_tp: Result<RetransTpOffsets, String>,
    /// `tcp:tcp_destroy_sock` (same `skaddr` field as the retransmit tracepoint).
    pub(crate) destroy_tp: Result<RetransTpOffsets, String>,
    /// `tcp:tcp_retransmit_synack`: its `req` field as `skaddr`.
    pub(crate) synack_tp: Result<RetransTpOffsets, String>,
    /// aya's view of the same BTF (for fentry/fexit attach targets), parsed the first
    /// time a hook asks: after the object is loaded, so that its copy and the loader's
    /// are never in memory together (each is tens of MB).
    aya_btf: std::cell::OnceCell<Result<aya::Btf, String>>,
    btf_path: std::path::PathBuf,
}

/// A path for a one-line message: control characters (a newline in a name) escaped.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string().escape_debug().to_string()
}

/// An offset this kernel may lack: absent rather than an error.
fn optional(r: Result<u32, Error>) -> u32 {
    r.unwrap_or(OFFSET_ABSENT)
}

impl KernelFacts {
    pub(crate) fn read(btf_path: &Path) -> Result<Self, Error> {
        Self::read_with(btf_path).map_err(|e| match e {
            // What a file given with --btf lacks says nothing about the kernel.
            Error::MissingField(what) if btf_path != Path::new(SYS_BTF) => {
                Error::MissingInFile { path: shown(btf_path), what }
            }
            other => other,
        })
    }

    fn read_with(btf_path: &Path) -> Result<Self, Error> {
        let btf = btf::Btf::from_file(btf_path)?;
        let sk = |path: &[&str]| btf.member_offset("sock", path);
        let tcp = |member: &str| {
            embedded_offset(&btf, "tcp_sock", &["inet_conn", "icsk_inet", "sk"], member)
        };
        // The optional fields of `struct inet_connection_sock`: absent unless it embeds the sock at 0.
        let icsk_readable =
            sock_at_zero(&btf, "inet_connection_sock", &["icsk_inet", "sk"]).is_ok();
        let icsk = |path: &[&str]| {
            if icsk_readable {
                btf.member_offset("inet_connection_sock", path).ok()
            } else {
                None
            }
        };
        // A request socket's fields are read at its `sock_common`'s offsets in `struct sock`.
        let req_readable = sock_at_zero(&btf, "sock", &["__sk_common"]).is_ok()
            && matches!(btf.member_offset("request_sock", &["__req_common"]), Ok(0));
        let for_requests = |offset: Result<u32, Error>| {
            if req_readable {
                offset.unwrap_or(OFFSET_ABSENT)
            } else {
                OFFSET_ABSENT
            }
        };
        // Without it, a tail loss probe is told by its timer alone (see `sock::loss_probe_due`).
        let ca_state = if icsk_readable {
            btf.bitfield("inet_connection_sock", &["icsk_ca_state"]).ok()
        } else {
            None
        };
        let sock = SockOffsets {
            family: sk(&["__sk_common", "skc_family"])?,
            state: sk(&["__sk_common", "skc_state"])?,
            sport: embedded_offset(&btf, "inet_sock", &["sk"], "inet_sport")?,
            dport: sk(&["__sk_common", "skc_dport"])?,
            daddr: sk(&["__sk_common", "skc_daddr"])?,
            rcv_saddr: sk(&["__sk_common", "skc_rcv_saddr"])?,
            v6_daddr: sk(&["__sk_common", "skc_v6_daddr"])?,
            v6_rcv_saddr: sk(&["__sk_common", "skc_v6_rcv_saddr"])?,
            err: sk(&["sk_err"])?,
            protocol: sk(&["sk_protocol"])?,
            owned: sk(&["sk_lock", "owned"])?,
            socket: sk(&["sk_socket"])?,
            flags: optional(sk(&["__sk_common", "skc_flags"])),
            sock_done_bit: optional(btf.enum_value("sock_flags", "SOCK_DONE").map(|v| v as u32)),
            bytes_acked: optional(tcp("bytes_acked")),
            bytes_sent: optional(tcp("bytes_sent")),
            bytes_retrans: optional(tcp("bytes_retrans")),
            bytes_received: optional(tcp("bytes_received")),
            total_retrans: optional(tcp("total_retrans")),
            srtt_us: optional(tcp("srtt_us")),
            icsk_pending: icsk(&["icsk_pending"]).unwrap_or(OFFSET_ABSENT),
            icsk_timeout: icsk(&["icsk_timeout"])
                .or_else(|| icsk(&["icsk_retransmit_timer", "expires"]))
                .unwrap_or(OFFSET_ABSENT),
            icsk_ca_state: ca_state.map_or(OFFSET_ABSENT, |b| b.byte),
            icsk_ca_state_shift: ca_state.map_or(0, |b| b.shift),
            icsk_ca_state_bits: ca_state.map_or(0, |b| b.width),
            num: for_requests(sk(&["__sk_common", "skc_num"])),
            req_num_retrans: for_requests(btf.member_offset("request_sock", &["num_retrans"])),
            net: optional(sk(&["__sk_common", "skc_net", "net"])),
            net_inum: optional(btf.member_offset("net", &["ns", "inum"])),
            write_seq: optional(tcp("write_seq")),
            snd_una: optional(tcp("snd_una")),
            rcv_nxt: optional(tcp("rcv_nxt")),
            copied_seq: optional(tcp("copied_seq")),
            snd_wnd: optional(tcp("snd_wnd")),
            icsk_retransmits: icsk(&["icsk_retransmits"]).unwrap_or(OFFSET_ABSENT),
            icsk_probes_out: icsk(&["icsk_probes_out"]).unwrap_or(OFFSET_ABSENT),
            lingertime: optional(sk(&["sk_lingertime"])),
            sock_linger_bit: optional(
                btf.enum_value("sock_flags", "SOCK_LINGER").map(|v| v as u32),
            ),
        };
        let reset_reasons = reason_names(&btf, "sk_rst_reason", "SK_RST_REASON_");
        let functions = family::DROP_FUNCS
            .iter()
            .filter(|f| btf.params(f).is_ok())
            .map(ToString::to_string)
            .collect();
        let drop_reasons = reason_names(&btf, "skb_drop_reason", "SKB_DROP_REASON_");
        let skb = |member: &str| optional(btf.member_offset("sk_buff", &[member]));
        let reset = ResetOffsets {
            skb_head: skb("head"),
            skb_network_header: skb("network_header"),
            skb_sk: skb("sk"),
            skb_dev: skb("dev"),
            dev_net: optional(btf.member_offset("net_device", &["nd_net", "net"])),
            reason_arg: if reset_reasons.is_empty() { OFFSET_ABSENT } else { 1 },
            drop_reason_arg: if drop_reasons.is_empty() { OFFSET_ABSENT } else { 1 },
        };
        let task = task_offsets(&btf).map_err(|e| e.to_string());
        let recvmsg = recvmsg_args(&btf, "tcp_recvmsg").map_err(|e| e.to_string());
        // Our parse of the BTF goes before aya's: holding both at once would double the
        // peak memory (vmlinux BTF is several MB, and parsed it is more).
        drop(btf);
        return_freed_memory();
        let tracing = tracefs::root();
        let root = tracing.as_ref().map_err(ToString::to_string);
        let state_tp = root.clone().and_then(|r| state_tp_offsets(r).map_err(|e| e.to_string()));
        let accept_tp = root.clone().and_then(|r| accept_tp_offsets(r).map_err(|e| e.to_string()));
        let length_tp = root.clone().and_then(|r| length_tp_offsets(r).map_err(|e| e.to_string()));
        let retrans_tp =
            root.clone().and_then(|r| retrans_tp_offsets(r).map_err(|e| e.to_string()));
        let destroy_tp =
            root.clone().and_then(|r| destroy_tp_offsets(r).map_err(|e| e.to_string()));
        let synack_tp = root.and_then(|r| synack_tp_offsets(r).map_err(|e| e.to_string()));
        Ok(Self {
            sock,
            reset,
            reset_reasons,
            drop_reasons,
            functions,
            task,
            recvmsg,
            state_tp,
            accept_tp,
            length_tp,
            retrans_tp,
            destroy_tp,
            synack_tp,
            aya_btf: std::cell::OnceCell::new(),
            btf_path: btf_path.to_path_buf(),
        })
    }

    /// aya's parse of the kernel BTF, made on first use.
    pub(crate) fn aya_btf(&self) -> Result<&aya::Btf, String> {
        self.aya_btf
            .get_or_init(|| {
                aya::Btf::parse_file(&self.btf_path, aya::Endianness::default())
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Which function the fentry and kprobe families' drop hook takes on this kernel.
    pub(crate) fn drop_function(&self) -> Result<family::DropFunction, String> {
        if self.has_function(family::DROP_FUNCS[1]) {
            Ok(family::DropFunction::New)
        } else if self.has_function(family::DROP_FUNCS[0]) {
            Ok(family::DropFunction::Old)
        } else {
            Err(format!(
                "neither {} nor {} in this kernel (drop reasons came in Linux 5.17)",
                family::DROP_FUNCS[0],
                family::DROP_FUNCS[1]
            ))
        }
    }

    /// Whether the kernel's BTF has function `name`.
    fn has_function(&self, name: &str) -> bool {
        self.functions.iter().any(|f| f == name)
    }

    /// Whether the close event can read byte counts from the socket on this kernel.
    pub(crate) const fn socket_counters(&self) -> bool {
        let s = &self.sock;
        s.flags != OFFSET_ABSENT
            && s.sock_done_bit != OFFSET_ABSENT
            && s.bytes_acked != OFFSET_ABSENT
            && s.bytes_sent != OFFSET_ABSENT
            && s.bytes_retrans != OFFSET_ABSENT
            && s.bytes_received != OFFSET_ABSENT
    }
}

/// The enumerators of `enum name` by value, each without `prefix`, as the kernel's own
/// tracepoints print them; empty where the kernel has no such enum.
fn reason_names(btf: &btf::Btf, name: &str, prefix: &str) -> Vec<(u32, String)> {
    btf.enum_values(name)
        .into_iter()
        .filter_map(|(n, value)| {
            Some((u32::try_from(value).ok()?, n.strip_prefix(prefix).unwrap_or(&n).to_string()))
        })
        .collect()
}

/// `member` of `outer`, as an offset from the `struct sock` that `outer` embeds through
/// `path_to_sock`: tcptrace's pointers are `struct sock *`, so the embedding must be at 0.
fn embedded_offset(
    btf: &btf::Btf,
    outer: &str,
    path_to_sock: &[&str],
    member: &str,
) -> Result<u32, Error> {
    sock_at_zero(btf, outer, path_to_sock)?;
    btf.member_offset(outer, &[member])
}

/// Whether `outer` embeds its `struct sock` (through `path_to_sock`) at offset 0, so that
/// its fields can be read from a socket pointer (see `embedded_offset`).
fn sock_at_zero(btf: &btf::Btf, outer: &str, path_to_sock: &[&str]) -> Result<(), Error> {
    if btf.member_offset(outer, path_to_sock)? != 0 {
        return Err(Error::MissingField(format!("struct {outer} with its sock at offset 0")));
    }
    Ok(())
}

/// Where `tcp_recvmsg` takes its `flags`, and how many arguments it takes. Linux 5.19
/// dropped its `nonblock` argument: `(sk, msg, len, nonblock, flags, addr_len)` before,
/// `(sk, msg, len, flags, addr_len)` since. The kernel programs read a context at constant
/// offsets only, so there is one program per prototype, and these pick it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecvmsgArgs {
    /// Index of the `flags` argument.
    pub(crate) flags: u32,
    /// How many arguments it takes (an fexit program's return value comes next).
    pub(crate) count: u32,
}

impl RecvmsgArgs {
    /// Which of the per-call programs read these positions: (fexit, kprobe).
    pub(crate) fn programs(self) -> Result<(&'static str, &'static str), String> {
        match (self.flags, self.count) {
            (3, 5) => Ok(("tt_recv_fexit", "tt_recv_kp")),
            // 6.18 dropped `addr_len`: the return value moves for fexit; a kretprobe
            // reads it from a register, so the kprobe reads `flags` where it was.
            (3, 4) => Ok(("tt_recv_fexit4", "tt_recv_kp")),
            (4, 6) => Ok(("tt_recv_fexit6", "tt_recv_kp6")),
            _ => Err(format!(
                "tcp_recvmsg takes flags as argument {} of {}: no program for that prototype",
                self.flags, self.count
            )),
        }
    }
}

/// `function`'s (`tcp_recvmsg`'s) argument positions, from its prototype in BTF.
pub(crate) fn recvmsg_args(btf: &btf::Btf, function: &str) -> Result<RecvmsgArgs, Error> {
    let params = btf.params(function)?;
    let flags = params
        .iter()
        .position(|p| p == "flags")
        .ok_or_else(|| Error::MissingField(format!("argument flags of {function}")))?;
    Ok(RecvmsgArgs { flags: flags as u32, count: params.len() as u32 })
}

fn task_offsets(btf: &btf::Btf) -> Result<TaskOffsets, Error> {
    Ok(TaskOffsets {
        files: btf.member_offset("task_struct", &["files"])?,
        fdt: btf.member_offset("files_struct", &["fdt"])?,
        fd: btf.member_offset("fdtable", &["fd"])?,
        max_fds: btf.member_offset("fdtable", &["max_fds"])?,
        private_data: btf.member_offset("file", &["private_data"])?,
        sk: btf.member_offset("socket", &["sk"])?,
    })
}

fn state_tp_offsets(root: &Path) -> Result<StateTpOffsets, Error> {
    const TP: &str = "sock:inet_sock_set_state";
    let fields = tracefs::format(root, "sock", "inet_sock_set_state")?;
    Ok(StateTpOffsets {
        skaddr: tracefs::offset_of(&fields, TP, "skaddr", 8)?,
        oldstate: tracefs::offset_of(&fields, TP, "oldstate", 4)?,
        newstate: tracefs::offset_of(&fields, TP, "newstate", 4)?,
        protocol: tracefs::offset_of(&fields, TP, "protocol", 2)?,
    })
}

fn accept_tp_offsets(root: &Path) -> Result<SyscallTpOffsets, Error> {
    let ret = tracefs::offset_of(
        &tracefs::format(root, "syscalls", "sys_exit_accept4")?,
        "syscalls:sys_exit_accept4",
        "ret",
        8,
    )?;
    let ret_plain = tracefs::offset_of(
        &tracefs::format(root, "syscalls", "sys_exit_accept")?,
        "syscalls:sys_exit_accept",
        "ret",
        8,
    )?;
    if ret != ret_plain {
        // One program serves both tracepoints, so their layouts must agree.
        return Err(Error::MissingField(
            "the same `ret` offset in sys_exit_accept and sys_exit_accept4".into(),
        ));
    }
    Ok(SyscallTpOffsets { ret })
}

fn length_tp_offsets(root: &Path) -> Result<LengthTpOffsets, Error> {
    let mut offsets = Vec::new();
    for name in ["sock_send_length", "sock_recv_length"] {
        let tp = format!("sock:{name}");
        let fields = tracefs::format(root, "sock", name)?;
        offsets.push(LengthTpOffsets {
            sk: tracefs::offset_of(&fields, &tp, "sk", 8)?,
            protocol: tracefs::offset_of(&fields, &tp, "protocol", 2)?,
            ret: tracefs::offset_of(&fields, &tp, "ret", 4)?,
            flags: tracefs::offset_of(&fields, &tp, "flags", 4)?,
        });
    }
    if offsets.first() != offsets.get(1) {
        return Err(Error::MissingField(
            "the same layout in sock_send_length and sock_recv_length".into(),
        ));
    }
    offsets.pop().ok_or_else(|| Error::MissingField("sock:sock_send_length".into()))
}

fn retrans_tp_offsets(root: &Path) -> Result<RetransTpOffsets, Error> {
    const TP: &str = "tcp:tcp_retransmit_skb";
    let fields = tracefs::format(root, "tcp", "tcp_retransmit_skb")?;
    Ok(RetransTpOffsets {
        skaddr: tracefs::offset_of(&fields, TP, "skaddr", 8)?,
        err: optional(tracefs::offset_of(&fields, TP, "err", 4)),
    })
}

fn destroy_tp_offsets(root: &Path) -> Result<RetransTpOffsets, Error> {
    let fields = tracefs::format(root, "tcp", "tcp_destroy_sock")?;
    Ok(RetransTpOffsets {
        skaddr: tracefs::offset_of(&fields, "tcp:tcp_destroy_sock", "skaddr", 8)?,
        err: OFFSET_ABSENT,
    })
}

fn synack_tp_offsets(root: &Path) -> Result<RetransTpOffsets, Error> {
    let fields = tracefs::format(root, "tcp", "tcp_retransmit_synack")?;
    Ok(RetransTpOffsets {
        skaddr: tracefs::offset_of(&fields, "tcp:tcp_retransmit_synack", "req", 8)?,
        err: OFFSET_ABSENT,
    })
}

/// Sizes the user chose.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) ring_bytes: u32,
    pub(crate) max_connections: u32,
}

/// Loads the object with this kernel's facts and the user's choices as read-only globals.
/// No program is loaded into the kernel yet: that happens per hook, in `family::attach`.
pub(crate) fn load_object(
    facts: &KernelFacts,
    filter: &Filter,
    config: &Config,
    sizes: Sizes,
) -> Result<Ebpf, Error> {
    let state_tp = facts.state_tp.clone().unwrap_or_else(|_| StateTpOffsets::absent());
    let accept_tp = facts.accept_tp.clone().unwrap_or(SyscallTpOffsets::ABSENT);
    let length_tp = facts.length_tp.clone().unwrap_or(LengthTpOffsets::ABSENT);
    let retrans_tp = facts.retrans_tp.clone().unwrap_or(RetransTpOffsets::ABSENT);
    let destroy_tp = facts.destroy_tp.clone().unwrap_or(RetransTpOffsets::ABSENT);
    let synack_tp = facts.synack_tp.clone().unwrap_or(RetransTpOffsets::ABSENT);
    let task = facts.task.clone().unwrap_or(TaskOffsets::ABSENT);
    let wants = |kind| config.events & kind_bit(kind) != 0;
    EbpfLoader::new()
        // `new()` has parsed the kernel's BTF for CO-RE relocations, which this object has
        // none of (every offset comes in through the globals below). Dropped before the
        // object is parsed, so that the two are never in memory together.
        .btf(None)
        .override_global("FILTER", filter, true)
        .override_global("CONFIG", config, true)
        .override_global("SOCK_OFFSETS", &facts.sock, true)
        .override_global("STATE_TP_OFFSETS", &state_tp, true)
        .override_global("ACCEPT_TP_OFFSETS", &accept_tp, true)
        .override_global("LENGTH_TP_OFFSETS", &length_tp, true)
        .override_global("RETRANS_TP_OFFSETS", &retrans_tp, true)
        .override_global("TASK_OFFSETS", &task, true)
        .override_global("RESET_OFFSETS", &facts.reset, true)
        .override_global("DESTROY_TP_OFFSETS", &destroy_tp, true)
        .override_global("SYNACK_TP_OFFSETS", &synack_tp, true)
        .map_max_entries("EVENTS", sizes.ring_bytes)
        .map_max_entries("SOCKS", sizes.max_connections)
        // Kept only while drop events are wanted: otherwise one entry, not the kernel
        // memory of a preallocated table sized for every connection.
        .map_max_entries("ENDS", if wants(EventKind::Drop) { sizes.max_connections } else { 1 })
        .load(OBJECT)
        .map_err(|e| Error::Object(family::one_line(&e)))
}

/// Which family each hook uses, and why the ones before it were passed over.
pub(crate) struct Choice {
    pub(crate) hook: Hook,
    pub(crate) family: HookFamily,
    /// Where it hooked in (`Hook::target`, or the way the state tracepoint attached).
    pub(crate) target: &'static str,
    pub(crate) passed_over: Vec<(HookFamily, String)>,
}

/// A loaded, attached tracer. Dropping it detaches everything.
pub(crate) struct Tracer {
    pub(crate) ebpf: Ebpf,
    pub(crate) choices: Vec<Choice>,
    /// Hooks that only sharpen an event (`Hook::essential`) and attached in no family,
    /// with why each family refused.
    pub(crate) unattached: Vec<(Hook, Vec<(HookFamily, String)>)>,
    /// The reset hook runs for the kernel's reason on close events (`Config::close_reasons`):
    /// user space joins an abortive close to the reset that follows it (crate::join).
    pub(crate) close_reasons: bool,
}

impl Tracer {
    /// Detaches and unloads every program, and returns once none of them is still running
    /// (a program that began before its hook went away finishes afterwards, and may still
    /// send an event or end a `SOCKS` entry): a drain that follows sees everything emitted.
    /// The maps stay, for a last read.
    pub(crate) fn stop_hooks(&mut self) {
        // Off first, so that no hook acts while the others go one by one (see `arm`); if
        // the switch cannot be turned, the detach order below still keeps entry and
        // return probes paired.
        let _ = arm(&mut self.ebpf, false);
        wait_for_programs_in_flight();
        // Entry probes first: see `family::ENTRY_PROBES`.
        for entry_first in [true, false] {
            for (name, program) in self.ebpf.programs_mut() {
                if family::ENTRY_PROBES.contains(&name) == entry_first {
                    let _unloaded = family::unload(program);
                }
            }
        }
        wait_for_programs_in_flight();
    }
}

/// Waits until every BPF program that was running has returned. Each runs in an RCU
/// read-side section (preemption or migration off, or under `rcu_read_lock`), so one RCU
/// grace period suffices: `membarrier(MEMBARRIER_CMD_GLOBAL)` waits for exactly that
/// (`synchronize_rcu()`, kernel/sched/membarrier.c). Kernels with nohz_full refuse that
/// command; there a pause far longer than any program run stands in.
fn wait_for_programs_in_flight() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers; an unsupported command only returns an error.
    let waited = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) } == 0;
    if !waited {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What to load: the user's filter, event selection and sizes.
pub(crate) struct Request<'a> {
    pub(crate) btf_path: &'a Path,
    pub(crate) filter: Filter,
    /// Events wanted; `count_calls` is decided here (asked for, or forced by a kernel
    /// without socket counters).
    pub(crate) config: Config,
    pub(crate) sizes: Sizes,
    /// One family for every hook, or `None` for the fallback order per hook.
    pub(crate) forced: Option<HookFamily>,
    pub(crate) options: family::Options,
}

/// Loads and attaches every hook the request needs.
pub(crate) fn load(req: &Request<'_>) -> Result<Tracer, Error> {
    let facts = KernelFacts::read(req.btf_path)?;
    crate::end::know_reset_reasons(facts.reset_reasons.clone());
    crate::drops::know_drop_reasons(facts.drop_reasons.clone());
    let mut config = req.config;
    if !facts.socket_counters() {
        config.count_calls = 1;
    }
    // The kernel names its resets (6.10+): close events get the name too (see
    // `Config::close_reasons`), through the reset hook.
    if config.events & kind_bit(EventKind::Close) != 0 && !facts.reset_reasons.is_empty() {
        config.close_reasons = 1;
    }
    let mut ebpf = load_object(&facts, &req.filter, &config, req.sizes)?;
    return_freed_memory(); // the loader's parse of the object and of the kernel's BTF
    let order: Vec<HookFamily> =
        req.forced.map_or_else(|| family::FALLBACK_ORDER.to_vec(), |f| vec![f]);
    let mut choices = Vec::new();
    let mut unattached = Vec::new();
    for hook in Hook::ALL.into_iter().filter(|h| h.needed(&config)) {
        let mut passed_over = Vec::new();
        let mut chosen = None;
        for &fam in &order {
            match family::attach(&mut ebpf, &facts, hook, fam, req.options) {
                Ok(target) => {
                    chosen = Some((fam, target));
                    break;
                }
                Err(why) => passed_over.push((fam, why)),
            }
        }
        let Some((family, target)) = chosen else {
            if !hook.essential(&config) {
                unattached.push((hook, passed_over));
                continue;
            }
            let mut tried = passed_over
                .iter()
                .map(|(f, why)| format!("{f}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            if let Some(note) = crate::privileges::perf_events_note(&tried, req.forced.is_some()) {
                tried = format!("{tried}; {note}");
            }
            return Err(Error::NoFamily { hook: hook.name(), tried });
        };
        choices.push(Choice { hook, family, target, passed_over });
    }
    drop(facts); // aya's parse of the kernel's BTF, if a hook needed it
    return_freed_memory();
    arm(&mut ebpf, true).map_err(|e| Error::Arm(e.to_string()))?;
    let close_reasons = config.close_reasons != 0 && choices.iter().any(|c| c.hook == Hook::Reset);
    Ok(Tracer { ebpf, choices, unattached, close_reasons })
}

/// Turns the programs' logic on or off (`ARMED`, tracer-ebpf/src/globals.rs `armed`).
/// Hooks attach one at a time, each program verified as it loads, tens of milliseconds
/// apart: on only once all are in place, tracing starts at one instant for every hook.
/// Without it, a connection that began and ended while the state pair was half attached
/// kept an entry its close never removed (thousands a start under heavy churn, each
/// counted lost when the socket's address came round again), and events piled up in the
/// ring buffer before anyone read it.
fn arm(ebpf: &mut Ebpf, on: bool) -> Result<(), aya::maps::MapError> {
    let map = ebpf
        .map_mut("ARMED")
        .ok_or_else(|| aya::maps::MapError::InvalidName { name: "ARMED".into() })?;
    let mut armed: aya::maps::Array<_, u32> = aya::maps::Array::try_from(map)?;
    armed.set(0, u32::from(on), 0)
}

/// Gives the memory freed by a parse of the kernel's BTF (several MB, and parsed more)
/// back to the system. glibc keeps freed heap memory for reuse: without this, 10.2 MiB
/// stayed resident after start-up instead of 8.9.
fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--btf` or the kernel's own.
pub(crate) fn btf_path(arg: Option<&PathBuf>) -> PathBuf {
    arg.cloned().unwrap_or_else(|| PathBuf::from(SYS_BTF))
}
