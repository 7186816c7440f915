//! Retransmits on a lossy link: a private network namespace whose nftables input hook
//! drops 10% of the data packets going to one port at random (`numgen random`; never a
//! SYN or FIN, whose backed-off timers would make the test slow, not better), with lo's
//! MTU at 1500 so a transfer spans many segments. Input, not output: a packet dropped at the sender's
//! own output hook is an error returned to TCP, which sends it again as new data, never as
//! a retransmission. Every retransmit event must carry the sending
//! process and the right ports, and the close event's count must equal the kernel's own
//! (`TCP_INFO` `tcpi_total_retrans`, read by the client just before it closes).

mod common;

use std::ffi::CString;

use common::{raw, serial, sockaddr_of, wait_child, Trace};

const CLIENT_SENDS: usize = 4_000_000;
const SERVER_SENDS: usize = 30_000;

/// The `nft` binary: TT_NFT, or the usual places.
fn nft_path() -> CString {
    let path = std::env::var("TT_NFT").ok().or_else(|| {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"].into_iter().find(|p| std::path::Path::new(p).exists()).map(String::from)
    });
    CString::new(path.expect("nft not found (apt-get install nftables)")).expect("no NUL")
}

/// lo up with a 1500-byte MTU, in the current (new) network namespace. Raw calls only.
fn lo_up_small_mtu() -> bool {
    // SAFETY: ioctls on a datagram socket with a zeroed, named ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut ifr) != 0 {
            return false;
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw const ifr) != 0 {
            return false;
        }
        ifr.ifr_ifru.ifru_mtu = 1500;
        let ok = libc::ioctl(fd, libc::SIOCSIFMTU, &raw const ifr) == 0;
        libc::close(fd);
        ok
    }
}

#[test]
fn retransmits_on_a_lossy_link_name_the_sender_and_match_tcp_info() {
    let _serial = serial();
    let port = 20_000 + (std::process::id() % 10_000) as u16;
    let rules = std::env::temp_dir().join(format!("tt-lossy-{port}.nft"));
    std::fs::write(
        &rules,
        format!(
            "table inet tt {{\n  chain in {{\n    type filter hook input priority 0; policy accept;\n    \
             tcp dport {port} tcp flags & (syn | fin | rst) == 0 meta length > 200 numgen random mod 100 < 10 drop\n  }}\n}}\n"
        ),
    )
    .expect("write rules");
    let nft = nft_path();
    let rules_c = CString::new(rules.to_string_lossy().into_owned()).expect("no NUL");
    let argv = [c"nft".as_ptr(), c"-f".as_ptr(), rules_c.as_ptr(), std::ptr::null()];
    // The close handshake runs without loss, so that the connection is over (and its count
    // final) soon after the transfer: the client says when its data is done, the leader
    // removes the rules, then lets it close.
    let flush = [c"nft".as_ptr(), c"flush".as_ptr(), c"ruleset".as_ptr(), std::ptr::null()];
    let mut data_done = [0; 2];
    let mut may_close = [0; 2];
    // SAFETY: two pipes for that handshake.
    unsafe {
        assert_eq!(libc::pipe2(data_done.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(may_close.as_mut_ptr(), libc::O_CLOEXEC), 0);
    }
    let addr = sockaddr_of(format!("127.0.0.1:{port}").parse().expect("addr"));
    let mut report = [0; 2];
    let mut counted = [0; 2];
    // SAFETY: pipes for the leader to report its children's pids, and for the client to
    // report the kernel's retransmit count.
    unsafe {
        assert_eq!(libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(counted.as_mut_ptr(), libc::O_CLOEXEC), 0);
    }
    let mut server_buf = vec![0u8; 64 * 1024];
    let server_data = vec![b's'; 64 * 1024];
    let mut client_buf = vec![0u8; 64 * 1024];
    let client_data = vec![b'c'; 64 * 1024];

    let trace = Trace::start(&["-e", "connect,accept,close,retransmit", "--port", &port.to_string()]);
    // The leader makes the namespace and its two processes; raw calls only after fork.
    let leader = common::fork_with(c"tt-lossy-ns", move || {
        // SAFETY: raw system calls in a forked child.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 || !lo_up_small_mtu() {
                return 70;
            }
            let nft_pid = libc::fork();
            if nft_pid == 0 {
                libc::execv(nft.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
            if wait_child(nft_pid) != 0 {
                return 71;
            }
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let one: libc::c_int = 1;
            libc::setsockopt(l, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&raw const one).cast(), 4);
            if libc::bind(l, (&raw const addr.0).cast(), addr.1) != 0 || libc::listen(l, 16) != 0 {
                return 72;
            }
            let server = common::fork_with(c"tt-lossy-srv", || {
                let c = libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut());
                if c < 0 || !raw::read_exactly(c, &mut server_buf, CLIENT_SENDS) || !raw::write_exactly(c, &server_data, SERVER_SENDS) {
                    return 80;
                }
                if raw::read_to_eof(c, &mut server_buf) != Some(0) {
                    return 81;
                }
                libc::close(c);
                0
            });
            let client = common::fork_with(c"tt-lossy-cli", || {
                let s = raw::connect(&addr, libc::AF_INET);
                if s < 0 || !raw::write_exactly(s, &client_data, CLIENT_SENDS) || !raw::read_exactly(s, &mut client_buf, SERVER_SENDS) {
                    return 250;
                }
                let mut byte = [0u8; 1];
                if libc::write(data_done[1], byte.as_ptr().cast(), 1) != 1 || !raw::read_exactly(may_close[0], &mut byte, 1) {
                    return 253;
                }
                let Some(retrans) = raw::total_retrans(s) else { return 251 };
                libc::close(s);
                if libc::write(counted[1], (&raw const retrans).cast(), 4) != 4 {
                    return 252;
                }
                0
            });
            let pids = [client, server];
            libc::write(report[1], pids.as_ptr().cast(), 8);
            let mut byte = [0u8; 1];
            if !raw::read_exactly(data_done[0], &mut byte, 1) {
                return 74;
            }
            let flush_pid = libc::fork();
            if flush_pid == 0 {
                libc::execv(nft.as_ptr(), flush.as_ptr());
                libc::_exit(127);
            }
            if wait_child(flush_pid) != 0 || libc::write(may_close[1], byte.as_ptr().cast(), 1) != 1 {
                return 75;
            }
            let client_status = wait_child(client);
            if wait_child(server) != 0 {
                return 73;
            }
            client_status
        }
    });
    // SAFETY: our end of the pipe; the leader wrote 8 bytes.
    unsafe { libc::close(report[1]) };
    let mut pids = [0i32; 2];
    // SAFETY: reading 8 bytes into an [i32; 2].
    assert_eq!(unsafe { libc::read(report[0], pids.as_mut_ptr().cast(), 8) }, 8, "the leader failed early");
    let [client, server] = pids;
    assert_eq!(wait_child(leader), 0, "the lossy transfer failed");
    let mut kernel_count = 0u32;
    // SAFETY: our end of the pipe; the client wrote 4 bytes; then close both ends.
    unsafe {
        libc::close(counted[1]);
        assert_eq!(libc::read(counted[0], (&raw mut kernel_count).cast(), 4), 4);
        libc::close(counted[0]);
        libc::close(report[0]);
    }
    let _ = std::fs::remove_file(&rules);
    // Both processes are gone; the last ACK of a lossless loopback close is microseconds
    // behind them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let done = trace.stop();
    assert!(kernel_count > 0, "10% loss made no retransmission: the netns rules did not apply");

    let close = done.of("close", client);
    assert_eq!(close.len(), 1, "{:?}", done.events);
    let close = close[0];
    assert_eq!(close["comm"], "tt-lossy-cli");
    assert_eq!(close["rport"], port);
    assert_eq!(close["bytes_sent"], CLIENT_SENDS);
    assert_eq!(close["bytes_received"], SERVER_SENDS);
    assert_eq!(close["total_retrans"], kernel_count, "close event vs TCP_INFO");

    let from_client = done.of("retransmit", client);
    assert!(!from_client.is_empty(), "no retransmit event from the client: {:?}", done.events);
    for r in &from_client {
        assert_eq!(r["comm"], "tt-lossy-cli");
        assert_eq!(r["lport"], close["lport"]);
        assert_eq!(r["rport"], port);
        assert!(r["total_retrans"].as_u64().is_some_and(|n| (1..=u64::from(kernel_count)).contains(&n)), "{r}");
    }
    // Whatever else retransmitted on this port was the server, and says so.
    for r in done.events.iter().filter(|e| e["type"] == "retransmit" && e["pid"] != client) {
        assert_eq!(r["pid"], server, "retransmit with a stranger's pid: {r}");
        assert_eq!(r["lport"], port);
    }
}
