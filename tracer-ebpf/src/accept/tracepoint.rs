//! Tracepoint family for the accept hook: `syscalls:sys_exit_accept4` and
//! `syscalls:sys_exit_accept`, in the accepting task's context.
//!
//! The passive ESTABLISHED transition runs in softirq, often on the *client's* task on
//! loopback (why bcc's tracepoint path shows the wrong pid), so the owner comes from here:
//! the returned fd leads to the socket through the task's file table,
//! `current->files->fdt->fd[fd]->private_data->sk`, every offset read from BTF.
//!
//! Two programs, the same but for how they walk there (the loader takes the first that
//! loads, and `-v` says which): `tt_acc_tp_task` starts from the task as a typed pointer
//! (`bpf_get_current_task_btf`, Linux 5.11+), so its first links are plain loads;
//! `tt_acc_tp` probes every link.

use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};

use crate::{
    globals::{accept_tp_offsets, task_off},
    sock::{read_ptr, read_u32, Access, Direct, Probe, ReadError},
};

/// The socket behind `fd` in `task`'s file table. `A` reads the links up to the fd array;
/// the array holds pointers the verifier has no type for, so from its slot on every read
/// is probed.
#[inline(always)]
fn fd_to_sock<A: Access>(task: u64, fd: u64) -> Result<u64, ReadError> {
    let files = read_ptr::<A>(task, task_off::files())?;
    let fdt = read_ptr::<A>(files, task_off::fdt())?;
    if fd >= u64::from(read_u32::<A>(fdt, task_off::max_fds())?) {
        return Err(ReadError);
    }
    let fds = read_ptr::<A>(fdt, task_off::fd())?;
    let file = read_ptr::<Probe>(fds + fd * 8, 0)?;
    let socket = read_ptr::<Probe>(file, task_off::private_data())?;
    read_ptr::<Probe>(socket, task_off::sk())
}

/// The body of both programs: the fd accept returned, and the socket behind it.
#[inline(always)]
fn accepted<A: Access>(ctx: &TracePointContext, task: u64) {
    // SAFETY: offset from this kernel's format file; read_at checks the address.
    let Ok(fd) = (unsafe { ctx.read_at::<i64>(accept_tp_offsets().ret as usize) }) else {
        return;
    };
    if fd < 0 {
        return;
    }
    match fd_to_sock::<A>(task, fd as u64) {
        Ok(sk) => super::on_accept(sk),
        Err(_) => crate::emit::count(tracer_common::counters::Counter::ReadError),
    }
}

#[tracepoint]
pub(crate) fn tt_acc_tp_task(ctx: TracePointContext) -> u32 {
    // SAFETY: no preconditions; the verifier knows the result as a `struct task_struct *`
    // and checks each load from it against BTF.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() } as u64;
    accepted::<Direct>(&ctx, task);
    0
}

#[tracepoint]
pub(crate) fn tt_acc_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: no preconditions; the pointer is only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    accepted::<Probe>(&ctx, task);
    0
}
