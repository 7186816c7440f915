//! Zeroing without `memset`. LLVM turns a struct or array initialiser that is mostly zero
//! into a call to `memset`, and aya-ebpf's `memset` is a byte loop: a turn of five
//! instructions for a `SockInfo` (160 bytes), on every new connection (`perf` put it beside the state
//! program itself). Volatile word stores cannot be merged back into a call.

/// Sets every byte of `*dst` to zero, a machine word at a time.
///
/// # Safety
/// `dst` must be valid for writes of a `T` and aligned for it.
#[inline(always)]
pub(crate) unsafe fn zero<T>(dst: *mut T) {
    let size = core::mem::size_of::<T>();
    // Resolved at compile time: the widest store the type's alignment allows.
    // SAFETY: every store lies inside `*dst`, which the caller says is writable.
    unsafe {
        match core::mem::align_of::<T>() {
            a if a >= 8 && size.is_multiple_of(8) => fill::<u64>(dst.cast(), size / 8),
            a if a >= 4 && size.is_multiple_of(4) => fill::<u32>(dst.cast(), size / 4),
            a if a >= 2 && size.is_multiple_of(2) => fill::<u16>(dst.cast(), size / 2),
            _ => fill::<u8>(dst.cast(), size),
        }
    }
}

#[inline(always)]
unsafe fn fill<W: Default>(dst: *mut W, count: usize) {
    let mut i = 0;
    while i < count {
        // SAFETY: `i < count` words lie inside the caller's `T`.
        unsafe { core::ptr::write_volatile(dst.add(i), W::default()) };
        i += 1;
    }
}
