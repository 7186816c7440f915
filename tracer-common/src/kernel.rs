//! Kernel constants that are ABI (the same on every kernel and architecture), in one place
//! for the kernel programs and user space: address families, the TCP protocol number and
//! `MSG_PEEK`, TCP states as `ss` shows them (include/net/tcp_states.h), congestion-avoidance
//! states (uapi/linux/tcp.h), and the errno values a socket's error holds.
//!
//! Numbers that do move between kernels (drop reasons, reset reasons, `sock_flags` bits)
//! never live here: they are read from the running kernel at load time.

/// Address families (include/linux/socket.h), as `sa_family` and `sk_family` hold them.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `IPPROTO_TCP` (uapi/linux/in.h), as `sk_protocol` and the IP header hold it.
pub const IPPROTO_TCP: u8 = 6;

/// `recvmsg` flag: the bytes stay queued, so a peek is not a read.
pub const MSG_PEEK: i32 = 2;

/// `enum tcp_ca_state` (uapi/linux/tcp.h): the states a loss probe may be sent in.
pub const TCP_CA_OPEN: u8 = 0;
pub const TCP_CA_CWR: u8 = 2;

pub const TCP_ESTABLISHED: i32 = 1;
pub const TCP_SYN_SENT: i32 = 2;
pub const TCP_SYN_RECV: i32 = 3;
pub const TCP_FIN_WAIT1: i32 = 4;
pub const TCP_FIN_WAIT2: i32 = 5;
pub const TCP_TIME_WAIT: i32 = 6;
pub const TCP_CLOSE: i32 = 7;
pub const TCP_CLOSE_WAIT: i32 = 8;
pub const TCP_LAST_ACK: i32 = 9;
pub const TCP_LISTEN: i32 = 10;
pub const TCP_CLOSING: i32 = 11;

/// errno values (asm-generic/errno*.h: the same on x86_64 and arm64).
pub const EPIPE: i32 = 32;
pub const ECONNABORTED: i32 = 103;
pub const ECONNRESET: i32 = 104;
pub const ETIMEDOUT: i32 = 110;
pub const ECONNREFUSED: i32 = 111;
