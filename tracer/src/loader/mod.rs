//! Loading the kernel object: kernel layout facts in (BTF, tracepoint formats), programs
//! attached per hook with a run-time fallback between hook families (see `family.rs`).

pub(crate) mod btf;
pub(crate) mod family;
pub(crate) mod tracefs;

use std::path::{Path, PathBuf};

use aya::{Ebpf, EbpfLoader};
use tracer_common::{
    filter::Filter,
    offsets::{SockOffsets, StateTpOffsets},
};

pub(crate) use family::{Hook, HookFamily};

/// The kernel object, built by `cargo xtask build-ebpf` from `tracer-ebpf/`.
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../bpf/tcptrace.bpf.o");

/// Default location of the kernel's own BTF.
pub(crate) const SYS_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read kernel BTF at {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y; --btf FILE names another copy)")]
    NoBtf { path: String, source: std::io::Error },
    #[error("{0} is not valid BTF")]
    BadBtf(String),
    #[error("this kernel has no {0}")]
    MissingField(String),
    #[error("tracefs is not mounted and mounting it failed: {0}")]
    NoTracefs(std::io::Error),
    #[error("cannot read the format of tracepoint {tracepoint}: {source}")]
    TracepointFormat { tracepoint: String, source: std::io::Error },
    #[error("loading the eBPF object failed: {0}")]
    Object(String),
    #[error("hook {hook}: no hook family attaches on this kernel ({tried})")]
    NoFamily { hook: &'static str, tried: String },
}

/// What the programs need to know about this kernel, gathered before load.
pub(crate) struct KernelFacts {
    pub(crate) sock: SockOffsets,
    /// Offsets in `sock:inet_sock_set_state`; an error makes the tracepoint family unusable.
    pub(crate) state_tp: Result<StateTpOffsets, String>,
    /// aya's view of the same BTF, for fentry/fexit attach targets.
    pub(crate) aya_btf: Result<aya::Btf, String>,
}

impl KernelFacts {
    pub(crate) fn read(btf_path: &Path) -> Result<Self, Error> {
        let btf = btf::Btf::from_file(btf_path)?;
        let sk = |path: &[&str]| btf.member_offset("sock", path);
        let sock = SockOffsets {
            family: sk(&["__sk_common", "skc_family"])?,
            state: sk(&["__sk_common", "skc_state"])?,
            sport: inet_sock_offset(&btf, "inet_sport")?,
            dport: sk(&["__sk_common", "skc_dport"])?,
            daddr: sk(&["__sk_common", "skc_daddr"])?,
            rcv_saddr: sk(&["__sk_common", "skc_rcv_saddr"])?,
            v6_daddr: sk(&["__sk_common", "skc_v6_daddr"])?,
            v6_rcv_saddr: sk(&["__sk_common", "skc_v6_rcv_saddr"])?,
            err: sk(&["sk_err"])?,
        };
        let state_tp = state_tp_offsets().map_err(|e| e.to_string());
        let aya_btf = aya::Btf::parse_file(btf_path, aya::Endianness::default()).map_err(|e| e.to_string());
        Ok(Self { sock, state_tp, aya_btf })
    }
}

/// A member of `struct inet_sock`, which starts with its `struct sock`: an offset from
/// the start of the sock, as long as that embedding stays at offset 0.
fn inet_sock_offset(btf: &btf::Btf, member: &str) -> Result<u32, Error> {
    if btf.member_offset("inet_sock", &["sk"])? != 0 {
        return Err(Error::MissingField("struct inet_sock with sk at offset 0".into()));
    }
    btf.member_offset("inet_sock", &[member])
}

fn state_tp_offsets() -> Result<StateTpOffsets, Error> {
    const TP: &str = "sock:inet_sock_set_state";
    let fields = tracefs::format(&tracefs::root()?, "sock", "inet_sock_set_state")?;
    Ok(StateTpOffsets {
        skaddr: tracefs::offset_of(&fields, TP, "skaddr", 8)?,
        oldstate: tracefs::offset_of(&fields, TP, "oldstate", 4)?,
        newstate: tracefs::offset_of(&fields, TP, "newstate", 4)?,
        protocol: tracefs::offset_of(&fields, TP, "protocol", 2)?,
    })
}

/// Loads the object with this kernel's facts and the user's filter as read-only globals.
/// No program is loaded into the kernel yet: that happens per hook, in `family::attach`.
pub(crate) fn load_object(facts: &KernelFacts, filter: &Filter, ring_bytes: u32) -> Result<Ebpf, Error> {
    let state_tp = facts.state_tp.clone().unwrap_or_else(|_| StateTpOffsets::absent());
    EbpfLoader::new()
        .override_global("FILTER", filter, true)
        .override_global("SOCK_OFFSETS", &facts.sock, true)
        .override_global("STATE_TP_OFFSETS", &state_tp, true)
        .map_max_entries("EVENTS", ring_bytes)
        .load(OBJECT)
        .map_err(|e| Error::Object(family::one_line(&e)))
}

/// Which family each hook uses, and why the ones before it were passed over.
pub(crate) struct Choice {
    pub(crate) hook: Hook,
    pub(crate) family: HookFamily,
    pub(crate) passed_over: Vec<(HookFamily, String)>,
}

/// A loaded, attached tracer. Dropping it detaches everything.
pub(crate) struct Tracer {
    pub(crate) ebpf: Ebpf,
    pub(crate) choices: Vec<Choice>,
}

/// Loads and attaches every hook: `forced` names one family for all hooks, or `None` for
/// the fallback order (fentry, kprobe, tracepoint) per hook.
pub(crate) fn load(btf_path: &Path, filter: &Filter, ring_bytes: u32, forced: Option<HookFamily>) -> Result<Tracer, Error> {
    let facts = KernelFacts::read(btf_path)?;
    let mut ebpf = load_object(&facts, filter, ring_bytes)?;
    let order: Vec<HookFamily> = forced.map_or_else(|| family::FALLBACK_ORDER.to_vec(), |f| vec![f]);
    let mut choices = Vec::new();
    for hook in Hook::ALL {
        let mut passed_over = Vec::new();
        let mut chosen = None;
        for &fam in &order {
            match family::attach(&mut ebpf, &facts, hook, fam) {
                Ok(()) => {
                    chosen = Some(fam);
                    break;
                }
                Err(why) => passed_over.push((fam, why)),
            }
        }
        let Some(family) = chosen else {
            let tried = passed_over.iter().map(|(f, why)| format!("{f}: {why}")).collect::<Vec<_>>().join("; ");
            return Err(Error::NoFamily { hook: hook.name(), tried });
        };
        choices.push(Choice { hook, family, passed_over });
    }
    Ok(Tracer { ebpf, choices })
}

/// `--btf` or the kernel's own.
pub(crate) fn btf_path(arg: Option<&PathBuf>) -> PathBuf {
    arg.cloned().unwrap_or_else(|| PathBuf::from(SYS_BTF))
}
