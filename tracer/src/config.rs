//! The settings of a run, resolved once from the command line (ripgrep's way: `cli.rs`
//! holds the arguments as typed, this module what they mean): the filters, which events
//! the kernel sends, how the programs load, and when the run stops. The trace, `serve` and
//! `top` each build one, then hand it to `session::Session`.

use std::{path::PathBuf, time::Duration};

use tracer_common::{
    event::{kind_bit, EventKind},
    filter::{Config as KernelConfig, Filter},
};

use crate::{
    cli::{BytesArg, Cli},
    filter::UsageError,
    loader::{self, family::Options, HookFamily},
};

pub(crate) struct Settings {
    /// What the kernel programs keep (pids, ports, addresses, ...).
    pub(crate) filter: Filter,
    /// Which events the kernel sends, and how it counts.
    pub(crate) kernel: KernelConfig,
    pub(crate) btf: PathBuf,
    pub(crate) sizes: loader::Sizes,
    /// Whether the ring buffer's size was given (`--ring-buffer`), for `-v`.
    pub(crate) ring_given: bool,
    /// One family for every hook (`--probe`), or `None` for the fallback order.
    pub(crate) forced: Option<HookFamily>,
    pub(crate) options: Options,
    pub(crate) verbose: bool,
    /// `-d`.
    pub(crate) duration: Option<Duration>,
}

impl Settings {
    /// From the command line, for the kernel configuration the command needs. Usage errors
    /// (bad filters) come from here, before anything is loaded.
    pub(crate) fn new(cli: &Cli, kernel: KernelConfig) -> Result<Self, UsageError> {
        let filter = crate::filter::from_cli(cli)?;
        let ring_bytes =
            cli.ring_buffer.unwrap_or_else(|| crate::cli::default_ring_bytes(kernel.events));
        Ok(Self {
            filter,
            kernel,
            btf: loader::btf_path(cli.btf.as_ref()),
            sizes: loader::Sizes { ring_bytes, max_connections: cli.max_connections },
            ring_given: cli.ring_buffer.is_some(),
            forced: cli.probe.forced(),
            options: cli.probe.options(),
            verbose: cli.verbose,
            duration: cli.duration,
        })
    }

    /// The trace's kernel configuration: the events of `-e`, counted per call with
    /// `--bytes calls`.
    pub(crate) fn trace_kernel_config(cli: &Cli) -> KernelConfig {
        KernelConfig {
            events: cli
                .events()
                .iter()
                .flat_map(|e| e.kinds())
                .fold(0, |bits, &kind| bits | kind_bit(kind)),
            count_calls: u32::from(cli.bytes == Some(BytesArg::Calls)),
            live: 0,
            count_states: 0,
            close_reasons: 0,
            _pad: 0,
        }
    }

    pub(crate) const fn wants(&self, kind: EventKind) -> bool {
        self.kernel.events & kind_bit(kind) != 0
    }
}
