//! The command line, as parsed (clap derive only). Settings resolved from it (output mode
//! from the terminal, filters) live in `config.rs`.

use std::path::PathBuf;

use clap::Parser;

use crate::{loader::HookFamily, printer::OutputMode};

const EXAMPLES: &str = "\
EXAMPLES:
    tcptrace                      # every TCP connect on this machine
    tcptrace -p 181               # only connects made by PID 181
    tcptrace --port 443           # only connections with port 443 on either side
    tcptrace -o json | jq .       # one JSON object per event
    tcptrace | awk '$11 != \"ok\"'  # failed connects only, from plain output
    tcptrace --list-probes        # which hook families work on this kernel
    tcptrace --probe tracepoint -v  # force the tracepoint family and show the choice";

/// Trace TCP connections as they happen: which process, which addresses, how long the
/// handshake took, and how it ended.
#[derive(Parser, Debug)]
#[command(name = "tcptrace", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Only connections made by this process ID (applied in the kernel).
    #[arg(short, long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) pid: Option<u32>,

    /// Only connections with this port on either side (applied in the kernel).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: Option<u16>,

    /// Output format [default: table on a terminal, plain otherwise].
    #[arg(short, long, value_enum, value_name = "FORMAT")]
    pub(crate) output: Option<OutputMode>,

    /// Hook family for every hook; `auto` takes, per hook, the first of fentry, kprobe,
    /// tracepoint that works on this kernel.
    #[arg(long, value_name = "FAMILY", default_value = "auto")]
    pub(crate) probe: ProbeArg,

    /// Try each hook family on this kernel, print what works and why not, and exit.
    #[arg(long)]
    pub(crate) list_probes: bool,

    /// Say on stderr which hook family each hook uses, and when tracing starts.
    #[arg(short, long)]
    pub(crate) verbose: bool,

    /// Read kernel BTF from this file instead of /sys/kernel/btf/vmlinux.
    #[arg(long, value_name = "FILE")]
    pub(crate) btf: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProbeArg {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

impl ProbeArg {
    pub(crate) const fn forced(self) -> Option<HookFamily> {
        match self {
            Self::Auto => None,
            Self::Fentry => Some(HookFamily::Fentry),
            Self::Kprobe => Some(HookFamily::Kprobe),
            Self::Tracepoint => Some(HookFamily::Tracepoint),
        }
    }
}
