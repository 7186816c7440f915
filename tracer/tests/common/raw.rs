//! Raw system calls on sockets and on this process, safe to make in a forked child of
//! this multi-threaded process (nothing here allocates) unless said otherwise.

use std::net::SocketAddr;

/// Writes all of `buf`, `total` bytes in all (repeating `buf`). False on error.
pub fn write_exactly(fd: i32, buf: &[u8], total: usize) -> bool {
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len());
        // SAFETY: valid buffer of at least n bytes.
        let w = unsafe { libc::write(fd, buf.as_ptr().cast(), n) };
        if w <= 0 {
            return false;
        }
        left -= w as usize;
    }
    true
}

/// Reads exactly `total` bytes into `buf` (reused). False on error or early EOF.
pub fn read_exactly(fd: i32, buf: &mut [u8], total: usize) -> bool {
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len());
        // SAFETY: valid buffer of at least n bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), n) };
        if r <= 0 {
            return false;
        }
        left -= r as usize;
    }
    true
}

/// Reads until EOF; returns the byte count, or None on error.
pub fn read_to_eof(fd: i32, buf: &mut [u8]) -> Option<usize> {
    let mut total = 0;
    loop {
        // SAFETY: valid buffer.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match r {
            0 => return Some(total),
            r if r < 0 => return None,
            r => total += r as usize,
        }
    }
}

/// The next connection on `listener` (close-on-exec); the fd, or -1. Async-signal-safe.
pub fn accept(listener: i32) -> i32 {
    // SAFETY: accept4 with no address buffers.
    unsafe {
        libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
    }
}

/// A blocking TCP connect to `addr`; the fd or -errno.
pub fn connect(addr: &(libc::sockaddr_storage, libc::socklen_t), family: i32) -> i32 {
    // SAFETY: plain system calls with valid pointers.
    unsafe {
        let s = libc::socket(family, libc::SOCK_STREAM, 0);
        if s < 0 {
            return -*libc::__errno_location();
        }
        if libc::connect(s, (&raw const addr.0).cast(), addr.1) != 0 {
            let e = *libc::__errno_location();
            libc::close(s);
            return -e;
        }
        s
    }
}

/// `tcpi_total_retrans` of a connected socket (TCP_INFO offset 100, stable ABI).
pub fn total_retrans(fd: i32) -> Option<u32> {
    tcp_info_u32(fd, 100)
}

/// The connections waiting in a listener's accept queue (`tcpi_unacked`, which
/// TCP_INFO gives a listening socket for that). Async-signal-safe.
pub fn accept_queue_len(listener: i32) -> Option<u32> {
    tcp_info_u32(listener, 24)
}

/// The socket's TCP state (`tcpi_state`, as in the kernel: 7 is CLOSE).
/// Async-signal-safe.
pub fn tcp_state(fd: i32) -> Option<u8> {
    tcp_info_u32(fd, 0).map(|word| u32::to_ne_bytes(word)[0])
}

/// The 32-bit word at byte `offset` of the socket's `struct tcp_info`.
fn tcp_info_u32(fd: i32, offset: usize) -> Option<u32> {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: valid buffer and length.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if rc != 0 || (len as usize) < offset + 4 {
        return None;
    }
    Some(u32::from_ne_bytes([info[offset], info[offset + 1], info[offset + 2], info[offset + 3]]))
}

/// The sockaddr for `addr`, ready for `connect` in a forked child.
pub fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// The remote port of a connected socket fd.
pub fn peer_port(fd: i32) -> u16 {
    port_by(fd, libc::getpeername)
}

/// The local port of a socket fd.
pub fn local_port(fd: i32) -> u16 {
    port_by(fd, libc::getsockname)
}

type NameCall = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

/// The port of the address `call` (getsockname, getpeername) gives for `fd`.
fn port_by(fd: i32, call: NameCall) -> u16 {
    // SAFETY: all-zero sockaddr_storage is valid; the call fills it. The port is at the
    // same offset in sockaddr_in and sockaddr_in6.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        assert_eq!(call(fd, (&raw mut ss).cast(), &raw mut len), 0);
        let sin: libc::sockaddr_in = std::ptr::read((&raw const ss).cast());
        u16::from_be(sin.sin_port)
    }
}

/// The inode number of the calling process's network namespace; a raw system call, for
/// forked children.
pub fn own_netns() -> u64 {
    // SAFETY: stat into a zeroed struct; all-zero is a valid `struct stat`.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(c"/proc/self/ns/net".as_ptr(), &raw mut st) == 0 {
            st.st_ino
        } else {
            0
        }
    }
}

/// Pins the calling thread to the CPU it runs on: the kernel's allocator then hands out
/// the socket addresses this thread's connections free, last freed first.
pub fn pin_to_one_cpu() {
    // SAFETY: a zeroed cpu_set_t is valid; the calls only touch this thread's affinity.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set),
            0,
            "sched_setaffinity"
        );
    }
}

/// Nanoseconds of CLOCK_MONOTONIC, the programs' clock.
pub fn monotonic_ns() -> u64 {
    // SAFETY: a zeroed timespec is valid; clock_gettime fills it.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        assert_eq!(libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts), 0);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
