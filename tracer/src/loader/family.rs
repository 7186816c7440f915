//! Hook families and the run-time fallback between them.
//!
//! A *hook* is a point tcptrace needs to observe (a connect call, a TCP state change); a
//! *family* is one way to get there: fentry/fexit (cheapest, needs BPF trampolines), kprobe/
//! kretprobe (needs CONFIG_KPROBES), or a stable tracepoint (always there since 4.16, but
//! sees less). Each hook takes the first family that loads and attaches.

use std::fmt;

use aya::{
    programs::{BtfTracePoint, FEntry, FExit, KProbe, RawTracePoint, TracePoint},
    Ebpf,
};

use tracer_common::{
    event::{kind_bit, EventKind},
    filter::Config,
};

use super::KernelFacts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HookFamily {
    Fentry,
    Kprobe,
    Tracepoint,
}

pub(crate) const FALLBACK_ORDER: [HookFamily; 3] =
    [HookFamily::Fentry, HookFamily::Kprobe, HookFamily::Tracepoint];

impl fmt::Display for HookFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::Tracepoint => "tracepoint",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    /// `tcp_v{4,6}_connect`: the caller, and failures before a SYN is sent.
    Connect,
    /// TCP state transitions: the whole life of a connection, close events included.
    State,
    /// The accepting task: owner of passive connections.
    Accept,
    /// Each retransmitted segment.
    Retransmit,
    /// Per-call byte counts, and the socket's destruction, when the close event is then
    /// sent (only with `--bytes calls`, or without socket counters).
    Bytes,
    /// Every RST sent or received.
    Reset,
    /// TCP segments the kernel dropped.
    Drop,
}

impl Hook {
    pub(crate) const ALL: [Self; 7] = [
        Self::State,
        Self::Connect,
        Self::Accept,
        Self::Retransmit,
        Self::Bytes,
        Self::Reset,
        Self::Drop,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::State => "state",
            Self::Accept => "accept",
            Self::Retransmit => "retransmit",
            Self::Bytes => "bytes",
            Self::Reset => "reset",
            Self::Drop => "drop",
        }
    }

    /// Whether this hook has work for the chosen events: an unneeded hook is not attached.
    pub(crate) fn needed(self, config: &Config) -> bool {
        let wants = |kind| config.events & kind_bit(kind) != 0;
        match self {
            Self::State => true,
            Self::Connect => wants(EventKind::Connect),
            // Owners of passive connections, for every event about them.
            Self::Accept => {
                wants(EventKind::Accept)
                    || wants(EventKind::Close)
                    || wants(EventKind::State)
                    || wants(EventKind::Retransmit)
                    || wants(EventKind::Reset)
                    || wants(EventKind::Drop)
            }
            Self::Retransmit => wants(EventKind::Retransmit),
            Self::Bytes => config.count_calls != 0 && wants(EventKind::Close),
            Self::Reset => wants(EventKind::Reset) || config.close_reasons != 0,
            Self::Drop => wants(EventKind::Drop),
        }
    }

    /// Whether tracing cannot go on without this hook. The reset hook attached only for
    /// the kernel's reason on close events is not: without it the reason is inferred, as
    /// on kernels before 6.10 (`-v` says so).
    pub(crate) fn essential(self, config: &Config) -> bool {
        self != Self::Reset || config.events & kind_bit(EventKind::Reset) != 0
    }

    /// Where each family hooks in, for `--list-probes` and `-v`.
    pub(crate) const fn target(self, family: HookFamily) -> &'static str {
        match (self, family) {
            (Self::Connect, HookFamily::Fentry) => "fentry+fexit tcp_v4_connect, tcp_v6_connect",
            (Self::Connect, HookFamily::Kprobe) => "kprobe+kretprobe tcp_v4_connect, tcp_v6_connect",
            (Self::Connect, HookFamily::Tracepoint) => {
                "sock:inet_sock_set_state CLOSE->SYN_SENT (through the state hook; connect() failures before the SYN are not seen)"
            }
            (Self::State, HookFamily::Fentry) => "fentry tcp_set_state",
            (Self::State, HookFamily::Kprobe) => "kprobe tcp_set_state",
            (Self::State, HookFamily::Tracepoint) => "tracepoint sock:inet_sock_set_state (BTF-typed; raw, then classic, where refused)",
            (Self::Accept, HookFamily::Fentry) => "fexit inet_csk_accept",
            (Self::Accept, HookFamily::Kprobe) => "kprobe security_sock_graft (the accepted socket joined to its file)",
            (Self::Accept, HookFamily::Tracepoint) => {
                "tracepoint syscalls:sys_exit_accept4, sys_exit_accept (fd -> socket through the file table; from the typed task, else every link probed)"
            }
            (Self::Retransmit, HookFamily::Fentry) => "fexit tcp_retransmit_skb, tcp_rtx_synack; fentry+fexit tcp_send_loss_probe",
            (Self::Retransmit, HookFamily::Kprobe) => "kprobe+kretprobe tcp_retransmit_skb, tcp_send_loss_probe, tcp_rtx_synack",
            (Self::Retransmit, HookFamily::Tracepoint) => {
                "tracepoint tcp:tcp_retransmit_skb, tcp_retransmit_synack (BTF-typed; classic where refused)"
            }
            (Self::Bytes, HookFamily::Fentry) => "fexit tcp_sendmsg, tcp_recvmsg; fentry tcp_v4_destroy_sock",
            (Self::Bytes, HookFamily::Kprobe) => "kprobe+kretprobe tcp_sendmsg, tcp_recvmsg; kprobe tcp_v4_destroy_sock",
            (Self::Bytes, HookFamily::Tracepoint) => {
                "tracepoint sock:sock_send_length, sock_recv_length (Linux 6.3+), tcp:tcp_destroy_sock"
            }
            (Self::Reset, HookFamily::Fentry) => "fentry tcp_v4_send_reset, tcp_v6_send_reset, tcp_send_active_reset, tcp_reset",
            (Self::Reset, HookFamily::Kprobe) => "kprobe tcp_v4_send_reset, tcp_v6_send_reset, tcp_send_active_reset, tcp_reset",
            (Self::Reset, HookFamily::Tracepoint) => RESET_TP_NOTE,
            (Self::Drop, HookFamily::Fentry) => "fentry kfree_skb_reason (Linux 5.17 to 6.9), sk_skb_reason_drop (6.10+); no location",
            (Self::Drop, HookFamily::Kprobe) => "kprobe kfree_skb_reason (Linux 5.17 to 6.9), sk_skb_reason_drop (6.10+); no location",
            (Self::Drop, HookFamily::Tracepoint) => "tracepoint skb:kfree_skb (BTF-typed; raw where refused)",
        }
    }
}

/// An error and its causes on one line, without aya's verifier log (set
/// `TCPTRACE_VERIFIER_LOG=1` to have the whole error, log included, on stderr).
pub(crate) fn one_line(err: &dyn std::error::Error) -> String {
    if std::env::var_os("TCPTRACE_VERIFIER_LOG").is_some() {
        say!("tcptrace: {err}");
    }
    let mut text = err.to_string();
    if let Some(cut) = text.find(". Verifier output:") {
        text.truncate(cut);
    }
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text.lines().next().unwrap_or_default().to_string()
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| one_line(&e))
}

fn fentry(ebpf: &mut Ebpf, btf: &aya::Btf, name: &str, func: &str) -> Result<(), String> {
    let p: &mut FEntry = program(ebpf, name)?;
    p.load(func, btf).map_err(|e| one_line(&e))?;
    p.attach().map(drop).map_err(|e| one_line(&e))
}

fn fexit(ebpf: &mut Ebpf, btf: &aya::Btf, name: &str, func: &str) -> Result<(), String> {
    let p: &mut FExit = program(ebpf, name)?;
    p.load(func, btf).map_err(|e| one_line(&e))?;
    p.attach().map(drop).map_err(|e| one_line(&e))
}

fn btf_tracepoint(ebpf: &mut Ebpf, btf: &aya::Btf, name: &str, point: &str) -> Result<(), String> {
    let p: &mut BtfTracePoint = program(ebpf, name)?;
    p.load(point, btf).map_err(|e| one_line(&e))?;
    p.attach().map(drop).map_err(|e| one_line(&e))
}

fn raw_tracepoint(ebpf: &mut Ebpf, name: &str, point: &str) -> Result<(), String> {
    let p: &mut RawTracePoint = program(ebpf, name)?;
    p.load().map_err(|e| one_line(&e))?;
    p.attach(point).map(drop).map_err(|e| one_line(&e))
}

fn kprobe(ebpf: &mut Ebpf, name: &str, funcs: &[&str]) -> Result<(), String> {
    let p: &mut KProbe = program(ebpf, name)?;
    p.load().map_err(|e| one_line(&e))?;
    for func in funcs {
        p.attach(func, 0).map_err(|e| format!("{func}: {}", one_line(&e)))?;
    }
    Ok(())
}

fn tracepoint(ebpf: &mut Ebpf, name: &str, points: &[(&str, &str)]) -> Result<(), String> {
    let p: &mut TracePoint = program(ebpf, name)?;
    p.load().map_err(|e| one_line(&e))?;
    for (category, event) in points {
        p.attach(category, event).map_err(|e| format!("{category}:{event}: {}", one_line(&e)))?;
    }
    Ok(())
}

/// The state hook's pairs of identical programs (tracer-ebpf/src/state/mod.rs `pair`):
/// first the owner side, which takes changes made with the socket owned by a task, then
/// the softirq side.
const STATE_PAIR_FENTRY: [&str; 2] = ["tt_state_fent", "tt_state_fent2"];
const STATE_PAIR_BTF: [&str; 2] = ["tt_state_btf", "tt_state_btf2"];
const STATE_PAIR_RAW: [&str; 2] = ["tt_state_rtp", "tt_state_rtp2"];
pub(crate) const STATE_PAIRS: [[&str; 2]; 3] = [STATE_PAIR_FENTRY, STATE_PAIR_BTF, STATE_PAIR_RAW];
/// Every program the tracepoint family's state hook may load: a pair, or the classic one.
const STATE_TP_PROGRAMS: [&str; 5] =
    [STATE_PAIR_BTF[0], STATE_PAIR_BTF[1], STATE_PAIR_RAW[0], STATE_PAIR_RAW[1], "tt_state_tp"];

/// Programs of one hook and family, to unload them again when the family fails halfway.
fn programs(hook: Hook, family: HookFamily) -> &'static [&'static str] {
    match (hook, family) {
        (Hook::Connect, HookFamily::Fentry) => {
            &["tt_conn_fent4", "tt_conn_fext4", "tt_conn_fent6", "tt_conn_fext6"]
        }
        (Hook::Connect, HookFamily::Kprobe) => &["tt_conn_kp", "tt_conn_krp"],
        (Hook::Connect, HookFamily::Tracepoint) => &[],
        (Hook::State, HookFamily::Fentry) => &STATE_PAIR_FENTRY,
        (Hook::State, HookFamily::Kprobe) => &["tt_state_kp"],
        (Hook::State, HookFamily::Tracepoint) => &STATE_TP_PROGRAMS,
        (Hook::Accept, HookFamily::Fentry) => &["tt_acc_fexit"],
        (Hook::Accept, HookFamily::Kprobe) => &["tt_acc_kp"],
        (Hook::Accept, HookFamily::Tracepoint) => &ACCEPT_TP_PROGRAMS,
        (Hook::Retransmit, HookFamily::Fentry) => {
            &["tt_rtx_fexit", "tt_tlp_fent", "tt_tlp_fexit", "tt_synack_fexit"]
        }
        (Hook::Retransmit, HookFamily::Kprobe) => {
            &["tt_rtx_kp", "tt_rtx_krp", "tt_tlp_kp", "tt_tlp_krp", "tt_synack_kp", "tt_synack_krp"]
        }
        (Hook::Retransmit, HookFamily::Tracepoint) => {
            &["tt_rtx_btf", "tt_synack_btf", "tt_rtx_tp", "tt_synack_tp"]
        }
        (Hook::Bytes, HookFamily::Fentry) => {
            &["tt_send_fexit", "tt_recv_fexit", "tt_recv_fexit4", "tt_recv_fexit6", "tt_dstr_fent"]
        }
        (Hook::Bytes, HookFamily::Kprobe) => {
            &["tt_send_kp", "tt_send_krp", "tt_recv_kp", "tt_recv_kp6", "tt_recv_krp", "tt_dstr_kp"]
        }
        (Hook::Bytes, HookFamily::Tracepoint) => &["tt_send_tp", "tt_recv_tp", "tt_dstr_tp"],
        (Hook::Reset, HookFamily::Fentry) => &RESET_FENTRY,
        (Hook::Reset, HookFamily::Kprobe) => &["tt_rst_snd_kp", "tt_rst_act_kp", "tt_rst_rcv_kp"],
        (Hook::Reset, HookFamily::Tracepoint) => {
            &["tt_rst_snd_btf", "tt_rst_rcv_btf", "tt_rst_snd_rtp", "tt_rst_rcv_rtp"]
        }
        (Hook::Drop, HookFamily::Fentry) => &["tt_drop_fent", "tt_drop_fent3"],
        (Hook::Drop, HookFamily::Kprobe) => &["tt_drop_kp", "tt_drop_kp3"],
        (Hook::Drop, HookFamily::Tracepoint) => &["tt_drop_btf", "tt_drop_rtp"],
    }
}

const CONNECT_FUNCS: [&str; 2] = ["tcp_v4_connect", "tcp_v6_connect"];

/// The reset hook's fentry programs and their functions (tracer-ebpf/src/reset/fentry.rs).
const RESET_FENTRY: [&str; 4] =
    ["tt_rst_v4_fent", "tt_rst_v6_fent", "tt_rst_act_fent", "tt_rst_rcv_fent"];
const RESET_FUNCS: [&str; 4] =
    ["tcp_v4_send_reset", "tcp_v6_send_reset", "tcp_send_active_reset", "tcp_reset"];

/// Entry probes that leave a thread's key for a return probe (tracer-ebpf/src/calls.rs).
/// A key its return probe never takes counts as a lost return at the thread's next call,
/// so the return probe is attached first and unloaded last (`Tracer::stop_hooks`): a
/// call that begins between the two would otherwise look like one.
pub(crate) const ENTRY_PROBES: [&str; 6] =
    ["tt_send_kp", "tt_recv_kp", "tt_recv_kp6", "tt_rtx_kp", "tt_tlp_kp", "tt_synack_kp"];

/// The return probes of `ENTRY_PROBES`: a run of theirs the kernel skips is found and
/// counted by the programs (`Counter::ReturnUnseen`), so the kernel's own count of those
/// skips (Linux 6.7+) is left out (see `stats::counted_programs`), never counted twice.
pub(crate) const RETURN_PROBES: [&str; 5] =
    ["tt_send_krp", "tt_recv_krp", "tt_rtx_krp", "tt_tlp_krp", "tt_synack_krp"];

/// Loads and attaches `hook` with `family`; returns where it hooked in.
fn try_attach(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    hook: Hook,
    family: HookFamily,
    options: Options,
) -> Result<&'static str, String> {
    let attached = match (hook, family) {
        (Hook::Connect, HookFamily::Fentry) => {
            let btf = facts.aya_btf()?;
            fentry(ebpf, btf, "tt_conn_fent4", CONNECT_FUNCS[0])?;
            fexit(ebpf, btf, "tt_conn_fext4", CONNECT_FUNCS[0])?;
            fentry(ebpf, btf, "tt_conn_fent6", CONNECT_FUNCS[1])?;
            fexit(ebpf, btf, "tt_conn_fext6", CONNECT_FUNCS[1])
        }
        (Hook::Connect, HookFamily::Kprobe) => {
            kprobe(ebpf, "tt_conn_kp", &CONNECT_FUNCS)?;
            kprobe(ebpf, "tt_conn_krp", &CONNECT_FUNCS)
        }
        // The state hook's CLOSE -> SYN_SENT transition runs inside tcp_v{4,6}_connect in
        // the caller's context: it is the connect hook of this family.
        (Hook::Connect, HookFamily::Tracepoint) => Ok(()),
        (Hook::State, HookFamily::Fentry) => {
            let btf = facts.aya_btf()?;
            let [owner_side, softirq_side] = STATE_PAIR_FENTRY;
            fentry(ebpf, btf, owner_side, "tcp_set_state")?;
            fentry(ebpf, btf, softirq_side, "tcp_set_state")
        }
        (Hook::State, HookFamily::Kprobe) => kprobe(ebpf, "tt_state_kp", &["tcp_set_state"]),
        (Hook::State, HookFamily::Tracepoint) => return state_tracepoint(ebpf, facts, options),
        (Hook::Accept, HookFamily::Fentry) => {
            let btf = facts.aya_btf()?;
            fexit(ebpf, btf, "tt_acc_fexit", "inet_csk_accept")
        }
        // Not a kretprobe on inet_csk_accept: see tracer-ebpf/src/accept/kprobe.rs.
        (Hook::Accept, HookFamily::Kprobe) => kprobe(ebpf, "tt_acc_kp", &["security_sock_graft"]),
        (Hook::Accept, HookFamily::Tracepoint) => return accept_tracepoint(ebpf, facts, options),
        (Hook::Retransmit, HookFamily::Fentry) => {
            let btf = facts.aya_btf()?;
            fexit(ebpf, btf, "tt_rtx_fexit", "tcp_retransmit_skb")?;
            fentry(ebpf, btf, "tt_tlp_fent", "tcp_send_loss_probe")?;
            fexit(ebpf, btf, "tt_tlp_fexit", "tcp_send_loss_probe")?;
            fexit(ebpf, btf, "tt_synack_fexit", "tcp_rtx_synack")
        }
        (Hook::Retransmit, HookFamily::Kprobe) => {
            // Each return probe before its entry probe (see `ENTRY_PROBES`).
            kprobe(ebpf, "tt_rtx_krp", &["tcp_retransmit_skb"])?;
            kprobe(ebpf, "tt_rtx_kp", &["tcp_retransmit_skb"])?;
            kprobe(ebpf, "tt_tlp_krp", &["tcp_send_loss_probe"])?;
            kprobe(ebpf, "tt_tlp_kp", &["tcp_send_loss_probe"])?;
            kprobe(ebpf, "tt_synack_krp", &["tcp_rtx_synack"])?;
            kprobe(ebpf, "tt_synack_kp", &["tcp_rtx_synack"])
        }
        (Hook::Retransmit, HookFamily::Tracepoint) => {
            return retransmit_tracepoint(ebpf, facts, options)
        }
        (Hook::Bytes, HookFamily::Fentry) => {
            let (recv, _) = facts.recvmsg.clone()?.programs()?;
            let btf = facts.aya_btf()?;
            fexit(ebpf, btf, "tt_send_fexit", "tcp_sendmsg")?;
            fexit(ebpf, btf, recv, "tcp_recvmsg")?;
            fentry(ebpf, btf, "tt_dstr_fent", "tcp_v4_destroy_sock")
        }
        (Hook::Bytes, HookFamily::Kprobe) => {
            let (_, recv) = facts.recvmsg.clone()?.programs()?;
            kprobe(ebpf, "tt_send_krp", &["tcp_sendmsg"])?;
            kprobe(ebpf, "tt_send_kp", &["tcp_sendmsg"])?;
            kprobe(ebpf, "tt_recv_krp", &["tcp_recvmsg"])?;
            kprobe(ebpf, recv, &["tcp_recvmsg"])?;
            kprobe(ebpf, "tt_dstr_kp", &["tcp_v4_destroy_sock"])
        }
        (Hook::Bytes, HookFamily::Tracepoint) => {
            facts.length_tp.as_ref().map_err(Clone::clone)?;
            facts.destroy_tp.as_ref().map_err(Clone::clone)?;
            tracepoint(ebpf, "tt_send_tp", &[("sock", "sock_send_length")])?;
            tracepoint(ebpf, "tt_recv_tp", &[("sock", "sock_recv_length")])?;
            tracepoint(ebpf, "tt_dstr_tp", &[("tcp", "tcp_destroy_sock")])
        }
        (Hook::Reset, HookFamily::Fentry) => {
            let btf = facts.aya_btf()?;
            RESET_FENTRY
                .iter()
                .zip(RESET_FUNCS)
                .try_for_each(|(name, func)| fentry(ebpf, btf, name, func))
        }
        (Hook::Reset, HookFamily::Kprobe) => {
            kprobe(ebpf, "tt_rst_snd_kp", &RESET_FUNCS[..2])?;
            kprobe(ebpf, "tt_rst_act_kp", &[RESET_FUNCS[2]])?;
            kprobe(ebpf, "tt_rst_rcv_kp", &[RESET_FUNCS[3]])
        }
        (Hook::Reset, HookFamily::Tracepoint) => return reset_tracepoint(ebpf, facts, options),
        (Hook::Drop, HookFamily::Fentry) => {
            let btf = facts.aya_btf()?;
            match facts.drop_function()? {
                DropFunction::Old => fentry(ebpf, btf, "tt_drop_fent", DROP_FUNCS[0]),
                DropFunction::New => fentry(ebpf, btf, "tt_drop_fent3", DROP_FUNCS[1]),
            }
        }
        (Hook::Drop, HookFamily::Kprobe) => match facts.drop_function()? {
            DropFunction::Old => kprobe(ebpf, "tt_drop_kp", &[DROP_FUNCS[0]]),
            DropFunction::New => kprobe(ebpf, "tt_drop_kp3", &[DROP_FUNCS[1]]),
        },
        (Hook::Drop, HookFamily::Tracepoint) => {
            let mut refused = Vec::new();
            if options.btf_tracepoints {
                let btf = facts.aya_btf();
                match all_or_none(ebpf, &["tt_drop_btf"], |ebpf, name| {
                    btf_tracepoint(ebpf, btf.clone()?, name, "kfree_skb")
                }) {
                    Ok(()) => return Ok(DROP_TP_BTF),
                    Err(why) => refused.push(format!("BTF-typed: {why}")),
                }
            }
            return match raw_tracepoint(ebpf, "tt_drop_rtp", "kfree_skb") {
                Ok(()) => Ok(DROP_TP_RAW),
                Err(why) => {
                    refused.push(format!("raw: {why}"));
                    Err(refused.join("; "))
                }
            };
        }
    };
    attached.map(|()| hook.target(family))
}

/// The functions the fentry and kprobe families' drop hook attach to: the one behind
/// `skb:kfree_skb`, by kernel (`KernelFacts::drop_function`).
pub(crate) const DROP_FUNCS: [&str; 2] = ["kfree_skb_reason", "sk_skb_reason_drop"];

/// Which of `DROP_FUNCS` this kernel has: `kfree_skb_reason(skb, reason)` (5.17 to 6.9)
/// or `sk_skb_reason_drop(sk, skb, reason)` (6.10+).
pub(crate) enum DropFunction {
    Old,
    New,
}

pub(crate) const DROP_TP_BTF: &str = "tracepoint skb:kfree_skb, BTF-typed";
pub(crate) const DROP_TP_RAW: &str = "tracepoint skb:kfree_skb, raw";

/// Where the tracepoint family's reset hook goes, before it is known how it attached.
const RESET_TP_NOTE: &str = "tracepoint tcp:tcp_send_reset, tcp_receive_reset (BTF-typed; raw where refused; before Linux 6.10 blind to resets without a socket)";
pub(crate) const RESET_TP_BTF: &str = "tracepoint tcp:tcp_send_reset, tcp_receive_reset, BTF-typed";
pub(crate) const RESET_TP_RAW: &str = "tracepoint tcp:tcp_send_reset, tcp_receive_reset, raw";
/// The same, on kernels whose `tcp_send_reset` is blind to resets without a socket.
const RESET_TP_BTF_BLIND: &str = "tracepoint tcp:tcp_send_reset, tcp_receive_reset, BTF-typed (this kernel's tcp_send_reset does not fire for a reset answering a segment that reached no socket; Linux 6.10+ does)";
const RESET_TP_RAW_BLIND: &str = "tracepoint tcp:tcp_send_reset, tcp_receive_reset, raw (this kernel's tcp_send_reset does not fire for a reset answering a segment that reached no socket; Linux 6.10+ does)";

/// The reset hook on `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`, by their arguments:
/// BTF-typed where they load, else raw (with `--probe raw-tracepoint` too). Not classic:
/// the records' layouts differ from kernel to kernel, and the arguments do not.
fn reset_tracepoint(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    options: Options,
) -> Result<&'static str, String> {
    const POINTS: [&str; 2] = ["tcp_send_reset", "tcp_receive_reset"];
    let point = |name: &str| if name.starts_with("tt_rst_snd") { POINTS[0] } else { POINTS[1] };
    // The reason argument and the firing without a socket came together, in 6.10.
    let blind = facts.reset.reason_arg == tracer_common::offsets::OFFSET_ABSENT;
    let mut refused = Vec::new();
    if options.btf_tracepoints {
        let btf = facts.aya_btf();
        match all_or_none(ebpf, &["tt_rst_snd_btf", "tt_rst_rcv_btf"], |ebpf, name| {
            btf_tracepoint(ebpf, btf.clone()?, name, point(name))
        }) {
            Ok(()) => return Ok(if blind { RESET_TP_BTF_BLIND } else { RESET_TP_BTF }),
            Err(why) => refused.push(format!("BTF-typed: {why}")),
        }
    }
    match all_or_none(ebpf, &["tt_rst_snd_rtp", "tt_rst_rcv_rtp"], |ebpf, name| {
        raw_tracepoint(ebpf, name, point(name))
    }) {
        Ok(()) => Ok(if blind { RESET_TP_RAW_BLIND } else { RESET_TP_RAW }),
        Err(why) => {
            refused.push(format!("raw: {why}"));
            Err(refused.join("; "))
        }
    }
}

/// Where the tracepoint family's state hook is, by how it attached (`-v` says which).
pub(crate) const STATE_TP_BTF: &str =
    "tracepoint sock:inet_sock_set_state, BTF-typed (plain loads of the socket)";
pub(crate) const STATE_TP_RAW: &str =
    "tracepoint sock:inet_sock_set_state, raw (socket read through helper calls)";
pub(crate) const STATE_TP_CLASSIC: &str =
    "tracepoint sock:inet_sock_set_state, classic (one recursion guard for all programs)";

/// The state hook on `sock:inet_sock_set_state`, the first way that works:
/// - BTF-typed (`tp_btf`): the verifier knows the socket's type, so the programs read it
///   with plain loads instead of a helper call per field;
/// - raw: per-program recursion guard (so the pair works), no record offsets to trust;
/// - classic: offsets from the record's format file, and one recursion guard for every
///   BPF program on the CPU.
///
/// The first two are a pair of identical programs (see tracer-ebpf/src/state/mod.rs `pair`).
fn state_tracepoint(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    options: Options,
) -> Result<&'static str, String> {
    let mut refused = Vec::new();
    if options.btf_tracepoints {
        let btf = facts.aya_btf();
        match all_or_none(ebpf, &STATE_PAIR_BTF, |ebpf, name| {
            btf_tracepoint(ebpf, btf.clone()?, name, "inet_sock_set_state")
        }) {
            Ok(()) => return Ok(STATE_TP_BTF),
            Err(why) => refused.push(format!("BTF-typed: {why}")),
        }
    }
    match all_or_none(ebpf, &STATE_PAIR_RAW, |ebpf, name| {
        raw_tracepoint(ebpf, name, "inet_sock_set_state")
    }) {
        Ok(()) => return Ok(STATE_TP_RAW),
        Err(why) => refused.push(format!("raw: {why}")),
    }
    let classic = facts
        .state_tp
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|_| tracepoint(ebpf, "tt_state_tp", &[("sock", "inet_sock_set_state")]));
    match classic {
        Ok(()) => Ok(STATE_TP_CLASSIC),
        Err(why) => {
            refused.push(format!("classic: {why}"));
            Err(refused.join("; "))
        }
    }
}

const ACCEPT_TP_TASK: &str =
    "tracepoint syscalls:sys_exit_accept4, sys_exit_accept (fd -> socket through the file table, from the typed task: plain loads to the fd array)";
const ACCEPT_TP_PROBED: &str =
    "tracepoint syscalls:sys_exit_accept4, sys_exit_accept (fd -> socket through the file table, every link probed)";
/// The accept hook's tracepoint programs, in the order tried (tracer-ebpf/src/accept/tracepoint.rs).
const ACCEPT_TP_PROGRAMS: [&str; 2] = ["tt_acc_tp_task", "tt_acc_tp"];
const ACCEPT_TP_POINTS: [(&str, &str); 2] =
    [("syscalls", "sys_exit_accept4"), ("syscalls", "sys_exit_accept")];

/// The accept hook on the accept syscalls' exit: from the task as a typed pointer where
/// the kernel allows it (`bpf_get_current_task_btf`, Linux 5.11+; not with `--probe
/// raw-tracepoint`, which keeps to helper reads), else with every read probed.
fn accept_tracepoint(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    options: Options,
) -> Result<&'static str, String> {
    facts.accept_tp.as_ref().map_err(Clone::clone)?;
    facts.task.as_ref().map_err(Clone::clone)?;
    let [typed, probed] = ACCEPT_TP_PROGRAMS;
    let mut refused = Vec::new();
    if options.btf_tracepoints {
        match all_or_none(ebpf, &[typed], |ebpf, name| tracepoint(ebpf, name, &ACCEPT_TP_POINTS)) {
            Ok(()) => return Ok(ACCEPT_TP_TASK),
            Err(why) => refused.push(format!("typed task: {why}")),
        }
    }
    match tracepoint(ebpf, probed, &ACCEPT_TP_POINTS) {
        Ok(()) => Ok(ACCEPT_TP_PROBED),
        Err(why) => {
            refused.push(format!("probed: {why}"));
            Err(refused.join("; "))
        }
    }
}

pub(crate) const RETRANSMIT_TP_BTF: &str = "tracepoint tcp:tcp_retransmit_skb, tcp_retransmit_synack, BTF-typed (plain loads of the socket)";
pub(crate) const RETRANSMIT_TP_CLASSIC: &str = "tracepoint tcp:tcp_retransmit_skb, tcp_retransmit_synack, classic (one recursion guard for all programs)";

/// Each program of the retransmit hook's tracepoint family, and its tracepoint: a
/// listener's SYN-ACKs are sent for a request socket, not through `tcp_retransmit_skb`.
/// (BTF-typed program, classic program, tracepoint in `tcp`).
const RETRANSMIT_TP_PROGRAMS: [(&str, &str, &str); 2] = [
    ("tt_rtx_btf", "tt_rtx_tp", "tcp_retransmit_skb"),
    ("tt_synack_btf", "tt_synack_tp", "tcp_retransmit_synack"),
];

/// The retransmit hook on `tcp:tcp_retransmit_skb` and `tcp:tcp_retransmit_synack`:
/// BTF-typed where they load (plain loads, and a recursion guard of their own), else
/// classic. Both learn from the format file whether the kernel reports failed
/// retransmissions too (its `err` field, 6.10+).
fn retransmit_tracepoint(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    options: Options,
) -> Result<&'static str, String> {
    facts.retrans_tp.as_ref().map_err(Clone::clone)?;
    facts.synack_tp.as_ref().map_err(Clone::clone)?;
    let point = |name: &str| {
        RETRANSMIT_TP_PROGRAMS
            .iter()
            .find(|(btf, classic, _)| *btf == name || *classic == name)
            .map_or("", |p| p.2)
    };
    let mut refused = Vec::new();
    if options.btf_tracepoints {
        let btf = facts.aya_btf();
        match all_or_none(ebpf, &RETRANSMIT_TP_PROGRAMS.map(|p| p.0), |ebpf, name| {
            btf_tracepoint(ebpf, btf.clone()?, name, point(name))
        }) {
            Ok(()) => return Ok(RETRANSMIT_TP_BTF),
            Err(why) => refused.push(format!("BTF-typed: {why}")),
        }
    }
    match all_or_none(ebpf, &RETRANSMIT_TP_PROGRAMS.map(|p| p.1), |ebpf, name| {
        tracepoint(ebpf, name, &[("tcp", point(name))])
    }) {
        Ok(()) => Ok(RETRANSMIT_TP_CLASSIC),
        Err(why) => {
            refused.push(format!("classic: {why}"));
            Err(refused.join("; "))
        }
    }
}

/// Loads and attaches every program of `names` with `attach_one`, or leaves none loaded.
fn all_or_none(
    ebpf: &mut Ebpf,
    names: &[&str],
    mut attach_one: impl FnMut(&mut Ebpf, &str) -> Result<(), String>,
) -> Result<(), String> {
    let result = names.iter().try_for_each(|name| attach_one(ebpf, name));
    if result.is_err() {
        for name in names {
            if let Some(p) = ebpf.program_mut(name) {
                let _unloaded = unload(p);
            }
        }
    }
    result
}

/// Detaches and unloads one program, of any type tcptrace uses (a no-op if not loaded).
pub(crate) fn unload(p: &mut aya::programs::Program) -> Result<(), aya::programs::ProgramError> {
    match p {
        aya::programs::Program::FEntry(p) => p.unload(),
        aya::programs::Program::FExit(p) => p.unload(),
        aya::programs::Program::KProbe(p) => p.unload(),
        aya::programs::Program::TracePoint(p) => p.unload(),
        aya::programs::Program::RawTracePoint(p) => p.unload(),
        aya::programs::Program::BtfTracePoint(p) => p.unload(),
        _ => Ok(()),
    }
}

/// How to attach, beyond the family: what the user asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Whether the tracepoint family may use BTF-typed tracepoints (`--probe
    /// raw-tracepoint` says no).
    pub(crate) btf_tracepoints: bool,
}

/// Loads and attaches `hook` with `family` and returns where it hooked in; on failure
/// nothing of it stays loaded.
pub(crate) fn attach(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    hook: Hook,
    family: HookFamily,
    options: Options,
) -> Result<&'static str, String> {
    let result = try_attach(ebpf, facts, hook, family, options);
    if result.is_err() {
        for name in programs(hook, family) {
            if let Some(p) = ebpf.program_mut(name) {
                let _unloaded = unload(p);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_fit_the_kernel_and_are_unique() {
        let mut all: Vec<&str> = Vec::new();
        for hook in Hook::ALL {
            for fam in FALLBACK_ORDER {
                all.extend(programs(hook, fam));
            }
        }
        for name in &all {
            // BPF_OBJ_NAME_LEN is 16 including the NUL.
            assert!(name.len() <= 15, "{name} is longer than the kernel keeps");
        }
        let mut dedup = all.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len());
    }

    #[test]
    fn entry_and_return_probes_are_kprobe_family_programs() {
        let kprobe_family: Vec<&str> = Hook::ALL
            .into_iter()
            .flat_map(|hook| programs(hook, HookFamily::Kprobe))
            .copied()
            .collect();
        for name in ENTRY_PROBES.iter().chain(&RETURN_PROBES) {
            assert!(kprobe_family.contains(name), "{name}");
        }
    }
}
