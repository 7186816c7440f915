//! Read-only globals, set by userspace before load (`EbpfLoader::override_global`).
//! Read through `read_volatile` so the compiler cannot fold the zero placeholders.

use tracer_common::{
    filter::Filter,
    offsets::{SockOffsets, StateTpOffsets},
};

#[unsafe(no_mangle)]
static FILTER: Filter = Filter {
    pid: 0,
    port: 0,
    _pad: 0,
    self_pid: 0,
};

#[unsafe(no_mangle)]
static SOCK_OFFSETS: SockOffsets = SockOffsets::absent();

#[unsafe(no_mangle)]
static STATE_TP_OFFSETS: StateTpOffsets = StateTpOffsets::absent();

#[inline(always)]
pub(crate) fn filter() -> Filter {
    // SAFETY: a valid static, read by value.
    unsafe { core::ptr::read_volatile(&FILTER) }
}

#[inline(always)]
pub(crate) fn sock_offsets() -> SockOffsets {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&SOCK_OFFSETS) }
}

#[inline(always)]
pub(crate) fn state_tp_offsets() -> StateTpOffsets {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&STATE_TP_OFFSETS) }
}
