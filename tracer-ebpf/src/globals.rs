//! Read-only globals, set by userspace before load (`EbpfLoader::override_global`).
//! Read through `read_volatile` so the compiler cannot fold the placeholders. And the one
//! switch userspace flips at run time, `armed`.

use tracer_common::{
    event::{kind_bit, EventKind},
    filter::{Config, Filter},
    offsets::{
        LengthTpOffsets, ResetOffsets, RetransTpOffsets, SockOffsets, StateTpOffsets,
        SyscallTpOffsets, TaskOffsets,
    },
};

#[unsafe(no_mangle)]
static FILTER: Filter = Filter::ANY;

#[unsafe(no_mangle)]
static CONFIG: Config =
    Config { events: 0, count_calls: 0, live: 0, count_states: 0, close_reasons: 0, _pad: 0 };

#[unsafe(no_mangle)]
static SOCK_OFFSETS: SockOffsets = SockOffsets::absent();

#[unsafe(no_mangle)]
static STATE_TP_OFFSETS: StateTpOffsets = StateTpOffsets::absent();

#[unsafe(no_mangle)]
static ACCEPT_TP_OFFSETS: SyscallTpOffsets = SyscallTpOffsets::ABSENT;

#[unsafe(no_mangle)]
static LENGTH_TP_OFFSETS: LengthTpOffsets = LengthTpOffsets::ABSENT;

#[unsafe(no_mangle)]
static RETRANS_TP_OFFSETS: RetransTpOffsets = RetransTpOffsets::ABSENT;

/// `tcp:tcp_destroy_sock` has the same `skaddr` field; `err` stays absent.
#[unsafe(no_mangle)]
static DESTROY_TP_OFFSETS: RetransTpOffsets = RetransTpOffsets::ABSENT;

/// `tcp:tcp_retransmit_synack`: its `req` field (the request socket) as `skaddr`; `err`
/// stays absent (it fires only for SYN-ACKs that went out).
#[unsafe(no_mangle)]
static SYNACK_TP_OFFSETS: RetransTpOffsets = RetransTpOffsets::ABSENT;

/// Reset hooks: segment headers in an `sk_buff`, and whether a reason is passed.
#[unsafe(no_mangle)]
static RESET_OFFSETS: ResetOffsets = ResetOffsets::ABSENT;

#[unsafe(no_mangle)]
static TASK_OFFSETS: TaskOffsets = TaskOffsets::ABSENT;

macro_rules! getter {
    ($name:ident, $global:ident, $ty:ty) => {
        #[inline(always)]
        pub(crate) fn $name() -> $ty {
            // SAFETY: a valid static, read by value.
            unsafe { core::ptr::read_volatile(&$global) }
        }
    };
}

/// Getters for single fields of an offsets global: a volatile read of the whole struct
/// would put a copy of all of it on the 512-byte stack at every use.
macro_rules! field_getters {
    ($global:ident: $($field:ident),*) => {
        $(
            #[inline(always)]
            pub(crate) fn $field() -> u32 {
                // SAFETY: a field of a valid static, read by value.
                unsafe { core::ptr::read_volatile(&raw const super::$global.$field) }
            }
        )*
    };
}

/// `SOCK_OFFSETS`, field by field.
pub(crate) mod sock_off {
    field_getters!(SOCK_OFFSETS: family, state, sport, dport, daddr, rcv_saddr, v6_daddr, v6_rcv_saddr, err, protocol, owned, socket, flags,
        sock_done_bit, bytes_acked, bytes_sent, bytes_retrans, bytes_received, total_retrans, srtt_us, icsk_pending, icsk_timeout, icsk_ca_state, icsk_ca_state_shift, icsk_ca_state_bits, num, req_num_retrans, net, net_inum,
        write_seq, snd_una, rcv_nxt, copied_seq, snd_wnd, icsk_retransmits, icsk_probes_out, lingertime, sock_linger_bit);
}

/// `RESET_OFFSETS`, field by field.
pub(crate) mod reset_off {
    field_getters!(
        RESET_OFFSETS: skb_head,
        skb_network_header,
        skb_sk,
        skb_dev,
        dev_net,
        reason_arg,
        drop_reason_arg
    );
}

/// `TASK_OFFSETS`, field by field.
pub(crate) mod task_off {
    field_getters!(TASK_OFFSETS: files, fdt, fd, max_fds, private_data, sk);
}

/// The filters, by reference: a copy (~200 bytes) would not fit the BPF stack of the
/// deepest call chains. The address goes through a volatile read so that the optimizer
/// cannot see the placeholder contents behind it and fold the tests away.
#[inline(always)]
pub(crate) fn filter() -> &'static Filter {
    let at: *const Filter = &raw const FILTER;
    // SAFETY: reads a local pointer to a valid static, which lives forever.
    unsafe { &*core::ptr::read_volatile(&at) }
}
getter!(config, CONFIG, Config);
getter!(state_tp_offsets, STATE_TP_OFFSETS, StateTpOffsets);
getter!(accept_tp_offsets, ACCEPT_TP_OFFSETS, SyscallTpOffsets);
getter!(length_tp_offsets, LENGTH_TP_OFFSETS, LengthTpOffsets);
getter!(retrans_tp_offsets, RETRANS_TP_OFFSETS, RetransTpOffsets);
getter!(destroy_tp_offsets, DESTROY_TP_OFFSETS, RetransTpOffsets);
getter!(synack_tp_offsets, SYNACK_TP_OFFSETS, RetransTpOffsets);

/// Did the user ask for this kind of event?
#[inline(always)]
pub(crate) fn wants(kind: EventKind) -> bool {
    config().events & kind_bit(kind) != 0
}

/// Whether tracing is on: every hook attached, and not yet stopping. Hooks attach one by
/// one, each program verified as it loads (tens of milliseconds for the large ones), and
/// the state hook is a pair of programs that must both run for every change to be taken:
/// a program that acted before the others were in place would see half of a connection
/// (its connect but not its close, whose entry then outlives the socket). So the logic of
/// every hook starts here, and userspace sets the flag once all are attached, and clears
/// it (then waits out programs in flight) before it detaches any. Absent or unreadable
/// means off.
#[inline(always)]
pub(crate) fn armed() -> bool {
    crate::maps::ARMED.get(0).is_some_and(|a| *a != 0)
}
