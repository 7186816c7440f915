//! Hook families and the run-time fallback between them.
//!
//! A *hook* is a point tcptrace needs to observe (a connect call, a TCP state change); a
//! *family* is one way to get there: fentry/fexit (cheapest, needs BPF trampolines), kprobe/
//! kretprobe (needs CONFIG_KPROBES), or a stable tracepoint (always there since 4.16, but
//! sees less). Each hook takes the first family that loads and attaches.

use std::fmt;

use aya::{
    programs::{FEntry, FExit, KProbe, TracePoint},
    Ebpf,
};

use super::KernelFacts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HookFamily {
    Fentry,
    Kprobe,
    Tracepoint,
}

pub(crate) const FALLBACK_ORDER: [HookFamily; 3] = [HookFamily::Fentry, HookFamily::Kprobe, HookFamily::Tracepoint];

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
    /// TCP state transitions: handshake start and end.
    State,
}

impl Hook {
    pub(crate) const ALL: [Self; 2] = [Self::Connect, Self::State];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::State => "state",
        }
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
            (Self::State, HookFamily::Tracepoint) => "tracepoint sock:inet_sock_set_state",
        }
    }
}

/// An error and its causes on one line, without aya's verifier log.
pub(crate) fn one_line(err: &dyn std::error::Error) -> String {
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

fn kprobe(ebpf: &mut Ebpf, name: &str, funcs: &[&str]) -> Result<(), String> {
    let p: &mut KProbe = program(ebpf, name)?;
    p.load().map_err(|e| one_line(&e))?;
    for func in funcs {
        p.attach(func, 0).map_err(|e| format!("{func}: {}", one_line(&e)))?;
    }
    Ok(())
}

fn tracepoint(ebpf: &mut Ebpf, name: &str, category: &str, event: &str) -> Result<(), String> {
    let p: &mut TracePoint = program(ebpf, name)?;
    p.load().map_err(|e| one_line(&e))?;
    p.attach(category, event).map(drop).map_err(|e| one_line(&e))
}

/// Programs of one hook and family, to unload them again when the family fails halfway.
fn programs(hook: Hook, family: HookFamily) -> &'static [&'static str] {
    match (hook, family) {
        (Hook::Connect, HookFamily::Fentry) => &["tt_conn_fent4", "tt_conn_fext4", "tt_conn_fent6", "tt_conn_fext6"],
        (Hook::Connect, HookFamily::Kprobe) => &["tt_conn_kp", "tt_conn_krp"],
        (Hook::Connect, HookFamily::Tracepoint) => &[],
        (Hook::State, HookFamily::Fentry) => &["tt_state_fent"],
        (Hook::State, HookFamily::Kprobe) => &["tt_state_kp"],
        (Hook::State, HookFamily::Tracepoint) => &["tt_state_tp"],
    }
}

const CONNECT_FUNCS: [&str; 2] = ["tcp_v4_connect", "tcp_v6_connect"];

fn try_attach(ebpf: &mut Ebpf, facts: &KernelFacts, hook: Hook, family: HookFamily) -> Result<(), String> {
    match (hook, family) {
        (Hook::Connect, HookFamily::Fentry) => {
            let btf = facts.aya_btf.as_ref().map_err(Clone::clone)?;
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
            let btf = facts.aya_btf.as_ref().map_err(Clone::clone)?;
            fentry(ebpf, btf, "tt_state_fent", "tcp_set_state")
        }
        (Hook::State, HookFamily::Kprobe) => kprobe(ebpf, "tt_state_kp", &["tcp_set_state"]),
        (Hook::State, HookFamily::Tracepoint) => {
            facts.state_tp.as_ref().map_err(Clone::clone)?;
            tracepoint(ebpf, "tt_state_tp", "sock", "inet_sock_set_state")
        }
    }
}

/// Loads and attaches `hook` with `family`; on failure nothing of it stays loaded.
pub(crate) fn attach(ebpf: &mut Ebpf, facts: &KernelFacts, hook: Hook, family: HookFamily) -> Result<(), String> {
    let result = try_attach(ebpf, facts, hook, family);
    if result.is_err() {
        for name in programs(hook, family) {
            if let Some(p) = ebpf.program_mut(name) {
                let _unloaded = match p {
                    aya::programs::Program::FEntry(p) => p.unload(),
                    aya::programs::Program::FExit(p) => p.unload(),
                    aya::programs::Program::KProbe(p) => p.unload(),
                    aya::programs::Program::TracePoint(p) => p.unload(),
                    _ => Ok(()),
                };
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
}
