//! Processes that make real TCP traffic with a known pid, comm and uid: forked children
//! that connect, accept and exchange bytes when told to.

use std::{ffi::CStr, net::SocketAddr};

use super::{raw, waiting::wait_until};

/// A forked process that connects once when told to, under its own comm and uid.
pub struct Peer {
    pub pid: i32,
    go: i32,
}

/// What the forked connector does before connecting.
#[derive(Clone, Copy)]
pub struct PeerSetup<'a> {
    pub comm: &'a CStr,
    pub uid: u32,
    /// Connect from a new, empty network namespace (lo down: the route lookup fails).
    pub empty_netns: bool,
}

impl Peer {
    /// A child forked by the caller that waits to read one byte from the pipe whose write
    /// end is `go` (its read end closed here), and reports through its exit code.
    pub fn waiting(pid: i32, go: i32) -> Self {
        Self { pid, go }
    }

    /// Forks a child that waits for `go()`, then connects to `addr` and exits with 0 on
    /// success or the connect errno. Everything is prepared before fork: the child makes
    /// only raw system calls (it is the fork of a multi-threaded process).
    pub fn connector(setup: PeerSetup<'_>, addr: SocketAddr) -> Self {
        let (ss, len) = raw::sockaddr_of(addr);
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let mut fds = [0; 2];
        // SAFETY: plain system calls; the child only calls async-signal-safe functions.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                libc::close(fds[1]);
                libc::prctl(libc::PR_SET_NAME, setup.comm.as_ptr());
                if setup.empty_netns && libc::unshare(libc::CLONE_NEWNET) != 0 {
                    libc::_exit(200);
                }
                if libc::setresgid(setup.uid, setup.uid, setup.uid) != 0
                    || libc::setresuid(setup.uid, setup.uid, setup.uid) != 0
                {
                    libc::_exit(201);
                }
                let mut byte = 0u8;
                if libc::read(fds[0], (&raw mut byte).cast(), 1) != 1 {
                    libc::_exit(202);
                }
                let s = libc::socket(family, libc::SOCK_STREAM, 0);
                let rc = libc::connect(s, (&raw const ss).cast(), len);
                let code = if rc == 0 { 0 } else { *libc::__errno_location() };
                libc::close(s);
                libc::_exit(code);
            }
            libc::close(fds[0]);
            Self { pid, go: fds[1] }
        }
    }

    /// Lets the child connect, and returns its exit code (0, or the connect errno).
    pub fn go_and_wait(self) -> i32 {
        // SAFETY: writing one byte to our pipe, then reaping our child.
        unsafe {
            assert_eq!(libc::write(self.go, b"g".as_ptr().cast(), 1), 1);
            libc::close(self.go);
            let mut status = 0;
            assert_eq!(libc::waitpid(self.pid, &raw mut status, 0), self.pid);
            assert!(libc::WIFEXITED(status), "peer {} did not exit normally", self.pid);
            libc::WEXITSTATUS(status)
        }
    }
}

/// Lets each peer connect, one after the other, in order; their pids and what their
/// connects returned.
pub fn connect_all(peers: Vec<Peer>) -> Vec<(i32, i32)> {
    peers
        .into_iter()
        .map(|p| {
            let pid = p.pid;
            (pid, p.go_and_wait())
        })
        .collect()
}

/// Forks a child that runs `body` under `comm` and exits with its return value. `body`
/// must only make raw system calls (the parent is multi-threaded): prepare buffers first.
pub fn fork_with<F: FnOnce() -> i32>(comm: &CStr, body: F) -> i32 {
    // SAFETY: fork, then only async-signal-safe calls in the child (body's contract).
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
            libc::_exit(body());
        }
        pid
    }
}

/// Waits for a forked child and returns its exit code.
pub fn wait_child(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe {
        assert_eq!(libc::waitpid(pid, &raw mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child {pid} did not exit normally (status {status})");
        libc::WEXITSTATUS(status)
    }
}

/// A listening IPv4 socket on 127.0.0.1 (raw fd, so forked children can accept on it).
pub fn listen_v4(backlog: i32) -> (i32, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    use std::os::fd::IntoRawFd;
    let fd = l.into_raw_fd();
    // SAFETY: re-listen with the wanted backlog on our own socket.
    assert_eq!(unsafe { libc::listen(fd, backlog) }, 0);
    (fd, addr)
}

/// A client and a server process (forked, named `client_comm` and `server_comm`) that
/// exchange `client_sends` and `server_sends` bytes over a connection to `listener`, then
/// keep it open until `close` is called, in any order.
pub struct HeldExchange {
    pub client: i32,
    pub server: i32,
    go_close: [i32; 2],
}

impl HeldExchange {
    pub fn start(
        listener: i32,
        addr: SocketAddr,
        comms: (&CStr, &CStr),
        client_sends: usize,
        server_sends: usize,
    ) -> Self {
        let mut go_close = [0; 2];
        // SAFETY: a pipe that tells both sides to close.
        unsafe { assert_eq!(libc::pipe2(go_close.as_mut_ptr(), libc::O_CLOEXEC), 0) };
        let target = raw::sockaddr_of(addr);
        let mut buf = vec![0u8; 64 * 1024];
        let data = vec![b'x'; 64 * 1024];
        // Each side waits for a byte of its own on the pipe, not for its end: the processes
        // of a later exchange hold copies of this pipe (fork copies every descriptor), so
        // its end would not come until they exit.
        let wait_then_close = move |fd: i32| {
            let mut byte = [0u8; 1];
            // SAFETY: our pipe end and our socket.
            unsafe {
                let _ = libc::read(go_close[0], byte.as_mut_ptr().cast(), 1);
                libc::close(fd);
            }
        };
        let server = fork_with(comms.1, || {
            // SAFETY: accept on the listener we were given.
            let c = unsafe { libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) };
            if c < 0
                || !raw::read_exactly(c, &mut buf, client_sends)
                || !raw::write_exactly(c, &data, server_sends)
            {
                return 80;
            }
            wait_then_close(c);
            0
        });
        let mut cbuf = vec![0u8; 64 * 1024];
        let cdata = vec![b'y'; 64 * 1024];
        let client = fork_with(comms.0, || {
            let s =
                raw::connect(&target, if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 });
            if s < 0
                || !raw::write_exactly(s, &cdata, client_sends)
                || !raw::read_exactly(s, &mut cbuf, server_sends)
            {
                return 90;
            }
            wait_then_close(s);
            0
        });
        Self { client, server, go_close }
    }

    /// Lets both sides close, and waits for them: true when both did all they should.
    pub fn close(self) -> bool {
        // SAFETY: our pipe ends; one byte for each side.
        unsafe {
            assert_eq!(libc::write(self.go_close[1], b"gg".as_ptr().cast(), 2), 2);
            libc::close(self.go_close[1]);
            libc::close(self.go_close[0]);
        }
        let client = wait_child(self.client);
        let server = wait_child(self.server);
        client == 0 && server == 0
    }
}

/// Closes a connection between two sockets of this process so that neither has anything
/// left to resend, and returns the sum of their final `tcpi_total_retrans`. The client's
/// FIN goes first; the server's, sent at its EOF, acknowledges it; the server is closed
/// once the client's ACK of that has reached it (its state is CLOSE). A count read before
/// a close misses a FIN that a slow machine resends.
pub fn close_counted(client: i32, server: i32) -> u32 {
    let mut buf = [0u8; 4096];
    // SAFETY: shutting down our own sockets.
    assert_eq!(unsafe { libc::shutdown(client, libc::SHUT_WR) }, 0);
    assert_eq!(raw::read_to_eof(server, &mut buf), Some(0), "the server's EOF");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::shutdown(server, libc::SHUT_WR) }, 0);
    assert_eq!(raw::read_to_eof(client, &mut buf), Some(0), "the client's EOF");
    wait_until("the server's last ACK", || raw::tcp_state(server) == Some(TCP_CLOSE));
    let total = [client, server].map(|fd| raw::total_retrans(fd).expect("TCP_INFO")).iter().sum();
    // SAFETY: closing our own sockets.
    unsafe {
        libc::close(client);
        libc::close(server);
    }
    total
}

/// `TCP_CLOSE` in the kernel's numbering (`tcpi_state`).
const TCP_CLOSE: u8 = 7;
