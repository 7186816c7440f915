//! Accept events on the running kernel, with the hook family from `TT_PROBE`: a connection
//! reset while it waits in the accept queue, and more threads asleep in accept() than a
//! kretprobe has instances for.

mod common;

use common::{
    events::only_one, listen_v4, more_than_kretprobe_instances, raw, serial, sockaddr_of,
    wait_port_settled, wait_until_asleep_in, Trace,
};

/// A client that resets its connection while it waits in the accept queue: accept()
/// still returns it, already closed. Both sides' ends are reported, the accept too, and
/// nothing stays tracked (an entry made for the dead child would never be removed, and the
/// next socket at its address would inherit it).
#[test]
fn a_connection_reset_before_its_accept_leaves_nothing_tracked() {
    let _serial = serial();
    let (lfd, addr) = listen_v4(16);
    let port = addr.port();
    let trace = Trace::new(&["-e", "connect,accept,close", "--port", &port.to_string()]).start();
    let s = raw::connect(&sockaddr_of(addr), libc::AF_INET);
    assert!(s >= 0, "connect: {s}");
    // SO_LINGER 0: close() sends a reset.
    assert!(common::sides::abort(s), "SO_LINGER 0 and close");
    wait_port_settled(port);
    // The child it returns is already reset.
    let conn = raw::accept(lfd);
    assert!(conn >= 0, "accept");
    // SAFETY: closing our fds.
    unsafe {
        libc::close(conn);
        libc::close(lfd);
    }
    let done = trace.stop();
    let me = std::process::id() as i32;
    let tracked = common::tracked_at_exit(&done.stderr);
    assert_eq!(tracked, 0, "left tracked: {:?} {:?}", done.stderr, done.events);
    let connect = only_one(done.of("connect", me), "the connect");
    assert_eq!(connect["rport"], port);
    let client_port = connect["lport"].as_u64().expect("lport");
    assert_eq!(only_one(done.of("accept", me), "the accept")["rport"], client_port);
    let client_close = only_one(done.of("close", me), "the client's close");
    assert_eq!(client_close["closed_by"], "local");
    let server_close = only_one(
        done.events.iter().filter(|e| e["type"] == "close" && e["lport"] == port).collect(),
        "the server side's close",
    );
    assert_eq!(server_close["rport"], client_port);
    assert_eq!(server_close["closed_by"], "remote");
    assert_eq!(done.events.len(), 4, "{:?}", done.events);
}

/// More threads asleep in accept() at once than a kretprobe has instances for (the kernel
/// gives one max(10, 2 x CPUs) and makes no more: each call holds one while it sleeps, and
/// a call that finds none is not seen returning). Thread pools that block in accept() are
/// common; every accept must still be reported, each with the thread that made it.
#[test]
fn accepts_by_many_threads_asleep_in_accept_are_all_reported() {
    let threads = more_than_kretprobe_instances();
    let _serial = serial();
    let (lfd, addr) = listen_v4(1024);
    let port = addr.port();
    let trace = Trace::new(&["-e", "accept", "--port", &port.to_string()]).start();
    let acceptors: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // The listener outlives every thread.
                let fd = raw::accept(lfd);
                // SAFETY: no preconditions.
                (unsafe { libc::gettid() }, fd)
            })
        })
        .collect();
    wait_until_asleep_in(libc::SYS_accept4, threads);
    let clients: Vec<i32> =
        (0..threads).map(|_| raw::connect(&sockaddr_of(addr), libc::AF_INET)).collect();
    assert!(clients.iter().all(|&c| c >= 0), "connect failed: {clients:?}");
    // Which thread accepted which client, by the client's port.
    let mut accepted: Vec<(i32, u16)> = acceptors
        .into_iter()
        .map(|t| {
            let (tid, fd) = t.join().expect("an acceptor panicked");
            assert!(fd >= 0, "accept failed");
            let client_port = common::peer_port(fd);
            // SAFETY: closing our fd.
            unsafe { libc::close(fd) };
            (tid, client_port)
        })
        .collect();
    for fd in clients.into_iter().chain([lfd]) {
        // SAFETY: closing our fds.
        unsafe { libc::close(fd) };
    }
    wait_port_settled(port);
    let done = trace.stop();
    let me = std::process::id() as i32;
    let mut reported: Vec<(i32, u16)> = done
        .of("accept", me)
        .iter()
        .map(|e| {
            (e["tid"].as_i64().expect("tid") as i32, e["rport"].as_u64().expect("rport") as u16)
        })
        .collect();
    accepted.sort_unstable();
    reported.sort_unstable();
    assert_eq!(reported, accepted, "{}", done.summary());
    assert_eq!(done.lost(), 0, "{}", done.summary());
}
