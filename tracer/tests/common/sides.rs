//! Helpers for the sides of a connection forked by a test: pipes to tell each other when
//! to go on, with patience, and the socket calls each side makes. Raw calls only: nothing
//! here allocates.

/// How long a forked side waits for anything before it gives up (the VM is slow).
pub const PATIENCE_MS: i32 = 120_000;

/// Sends one byte down `pipe`.
pub fn signal(pipe: [i32; 2]) -> bool {
    // SAFETY: a one-byte write to our pipe.
    unsafe { libc::write(pipe[1], b"g".as_ptr().cast(), 1) == 1 }
}

/// Waits for one byte on `pipe`; false when none came in `PATIENCE_MS`.
pub fn wait_for(pipe: [i32; 2]) -> bool {
    let mut poll = libc::pollfd { fd: pipe[0], events: libc::POLLIN, revents: 0 };
    let mut byte = [0u8; 1];
    // SAFETY: one valid pollfd; a one-byte read into our buffer.
    unsafe {
        libc::poll(&raw mut poll, 1, PATIENCE_MS) == 1
            && libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) == 1
    }
}

/// Polls `done` every 10 ms; false when it did not hold within `PATIENCE_MS`.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..PATIENCE_MS / 10 {
        if done() {
            return true;
        }
        // SAFETY: a plain sleep.
        unsafe { libc::usleep(10_000) };
    }
    false
}

/// A socket's queue by ioctl: `FIONREAD`, received and not read; `TIOCOUTQ`, written and
/// not acknowledged.
pub fn queued(fd: i32, request: libc::Ioctl) -> Option<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: the ioctl writes one int.
    (unsafe { libc::ioctl(fd, request, &raw mut n) } == 0).then_some(n)
}

/// Closes `fd` with a reset (SO_LINGER on, zero time).
pub fn abort(fd: i32) -> bool {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid option buffer; our socket.
    unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&raw const linger).cast(), 8) == 0
            && libc::close(fd) == 0
    }
}

pub fn close(fd: i32) -> bool {
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) == 0 }
}

/// Waits for data that never comes: true when the read fails with `errno`.
pub fn read_fails_with(fd: i32, want: i32) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte read into our buffer.
    unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) == -1 && errno() == want }
}

pub fn errno() -> i32 {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() }
}

pub fn close_all(fds: &[i32]) {
    for &fd in fds {
        close(fd);
    }
}

/// Sets an int socket option.
pub fn set_int(fd: i32, level: i32, name: i32, value: libc::c_int) -> bool {
    // SAFETY: a valid int option buffer.
    unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), 4) == 0 }
}
