//! Tracepoint family for the accept hook: `syscalls:sys_exit_accept4` and
//! `syscalls:sys_exit_accept`, in the accepting task's context.
//!
//! The passive ESTABLISHED transition runs in softirq, often on the *client's* task on
//! loopback (why bcc's tracepoint path shows the wrong pid), so the owner comes from here:
//! the returned fd leads to the socket through the task's file table,
//! `current->files->fdt->fd[fd]->private_data->sk`, every offset read from BTF.

use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};

use crate::{
    globals::{accept_tp_offsets, task_off},
    sock::{read_ptr, read_u32, ReadError},
};

#[inline(always)]
fn fd_to_sock(fd: u64) -> Result<u64, ReadError> {
    // SAFETY: no preconditions; the pointer is only used through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let files = read_ptr(task, task_off::files())?;
    let fdt = read_ptr(files, task_off::fdt())?;
    if fd >= u64::from(read_u32(fdt, task_off::max_fds())?) {
        return Err(ReadError);
    }
    let fds = read_ptr(fdt, task_off::fd())?;
    let file = read_ptr(fds + fd * 8, 0)?;
    let socket = read_ptr(file, task_off::private_data())?;
    read_ptr(socket, task_off::sk())
}

#[tracepoint]
pub(crate) fn tt_acc_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from this kernel's format file; read_at checks the address.
    let Ok(fd) = (unsafe { ctx.read_at::<i64>(accept_tp_offsets().ret as usize) }) else {
        return 0;
    };
    if fd < 0 {
        return 0;
    }
    match fd_to_sock(fd as u64) {
        Ok(sk) => super::on_accept(sk),
        Err(_) => crate::emit::count(tracer_common::counters::Counter::ReadError),
    }
    0
}
