//! Kernel layout facts that userspace reads at load time (from BTF and from tracepoint
//! `format` files) and passes to the programs as read-only globals. Nothing here is
//! hard-coded for one kernel.

/// Marks a field this kernel does not have.
pub const OFFSET_ABSENT: u32 = u32::MAX;

/// Byte offsets from the start of `struct sock` (the `__sk_common` member included).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// `__sk_common.skc_family` (u16)
    pub family: u32,
    /// `__sk_common.skc_state` (u8)
    pub state: u32,
    /// `inet_sock.inet_sport`: local port, network order (u16). Not `skc_num`: the kernel
    /// zeroes that when it releases the port, before the CLOSE transition is traced.
    pub sport: u32,
    /// `__sk_common.skc_dport`: remote port, network order (u16)
    pub dport: u32,
    /// `__sk_common.skc_daddr` (4 bytes)
    pub daddr: u32,
    /// `__sk_common.skc_rcv_saddr` (4 bytes)
    pub rcv_saddr: u32,
    /// `__sk_common.skc_v6_daddr` (16 bytes)
    pub v6_daddr: u32,
    /// `__sk_common.skc_v6_rcv_saddr` (16 bytes)
    pub v6_rcv_saddr: u32,
    /// `sk_err` (int): the error a failed connect left on the socket.
    pub err: u32,
    /// `sk_protocol` (u16; IPPROTO_TCP for TCP sockets).
    pub protocol: u32,
    /// `sk_lock.owned` (int): a task holds the socket (process context).
    pub owned: u32,
    /// `sk_socket` (`struct socket *`): NULL for a listener's child until it is accepted,
    /// and for a socket its owner closed (orphaned).
    pub socket: u32,
    /// `__sk_common.skc_flags` (`sk_flags`, unsigned long): `SOCK_DONE` is set when the
    /// peer's FIN arrives.
    pub flags: u32,
    /// Bit number of `SOCK_DONE` in `sk_flags` (from `enum sock_flags`).
    pub sock_done_bit: u32,
    /// `tcp_sock.bytes_acked` (u64): bytes the peer acknowledged, our SYN and FIN included.
    pub bytes_acked: u32,
    /// `tcp_sock.bytes_sent` (u64): data bytes transmitted, retransmissions included.
    pub bytes_sent: u32,
    /// `tcp_sock.bytes_retrans` (u64).
    pub bytes_retrans: u32,
    /// `tcp_sock.bytes_received` (u64): in-order bytes received, the peer's FIN included.
    pub bytes_received: u32,
    /// `tcp_sock.total_retrans` (u32).
    pub total_retrans: u32,
    /// `tcp_sock.srtt_us` (u32, <<3).
    pub srtt_us: u32,
    /// `inet_connection_sock.icsk_pending` (u8): which retransmit-timer event is armed.
    pub icsk_pending: u32,
    /// When that timer fires, in jiffies (unsigned long): `icsk_timeout` where the kernel
    /// has it (6.1), else `icsk_retransmit_timer.expires` (6.18 keeps only that copy).
    pub icsk_timeout: u32,
    /// `inet_connection_sock.icsk_ca_state`, a bitfield: the byte that holds it, and
    /// where in that byte (`icsk_ca_state_shift`, from the least significant bit) and how
    /// wide (`icsk_ca_state_bits`: 5 since Linux 5.8, 6 before) it is.
    pub icsk_ca_state: u32,
    pub icsk_ca_state_shift: u32,
    pub icsk_ca_state_bits: u32,
    /// `__sk_common.skc_num`: local port, host order (u16). Read only from request sockets
    /// (a listener's half-open connection, `struct request_sock`, whose `__req_common`
    /// the loader checks is at offset 0, so every `__sk_common` offset here applies to
    /// it): they have no `inet_sport`.
    pub num: u32,
    /// `request_sock.num_retrans` (u8): SYN-ACKs resent so far, this one not yet counted.
    pub req_num_retrans: u32,
    /// `__sk_common.skc_net.net` (`struct net *`), absent without network namespaces.
    pub net: u32,
    /// `net.ns.inum` (unsigned int): the namespace's inode number.
    pub net_inum: u32,
    /// `tcp_sock.write_seq` (u32): the sequence number after the last byte the
    /// application wrote (and our FIN, once queued).
    pub write_seq: u32,
    /// `tcp_sock.snd_una` (u32): the first byte the peer has not acknowledged.
    pub snd_una: u32,
    /// `tcp_sock.rcv_nxt` (u32): the next byte expected in order.
    pub rcv_nxt: u32,
    /// `tcp_sock.copied_seq` (u32): the next byte the application will read.
    pub copied_seq: u32,
    /// `tcp_sock.snd_wnd` (u32): the window the peer last advertised.
    pub snd_wnd: u32,
    /// `inet_connection_sock.icsk_retransmits` (u8).
    pub icsk_retransmits: u32,
    /// `inet_connection_sock.icsk_probes_out` (u8).
    pub icsk_probes_out: u32,
    /// `sk_lingertime` (long): SO_LINGER's time, in jiffies.
    pub lingertime: u32,
    /// Bit number of `SOCK_LINGER` in `sk_flags` (from `enum sock_flags`).
    pub sock_linger_bit: u32,
}

impl SockOffsets {
    #[must_use]
    pub const fn absent() -> Self {
        Self {
            family: OFFSET_ABSENT,
            state: OFFSET_ABSENT,
            sport: OFFSET_ABSENT,
            dport: OFFSET_ABSENT,
            daddr: OFFSET_ABSENT,
            rcv_saddr: OFFSET_ABSENT,
            v6_daddr: OFFSET_ABSENT,
            v6_rcv_saddr: OFFSET_ABSENT,
            err: OFFSET_ABSENT,
            protocol: OFFSET_ABSENT,
            owned: OFFSET_ABSENT,
            socket: OFFSET_ABSENT,
            flags: OFFSET_ABSENT,
            sock_done_bit: OFFSET_ABSENT,
            bytes_acked: OFFSET_ABSENT,
            bytes_sent: OFFSET_ABSENT,
            bytes_retrans: OFFSET_ABSENT,
            bytes_received: OFFSET_ABSENT,
            total_retrans: OFFSET_ABSENT,
            srtt_us: OFFSET_ABSENT,
            icsk_pending: OFFSET_ABSENT,
            icsk_timeout: OFFSET_ABSENT,
            icsk_ca_state: OFFSET_ABSENT,
            icsk_ca_state_shift: 0,
            icsk_ca_state_bits: 0,
            num: OFFSET_ABSENT,
            req_num_retrans: OFFSET_ABSENT,
            net: OFFSET_ABSENT,
            net_inum: OFFSET_ABSENT,
            write_seq: OFFSET_ABSENT,
            snd_una: OFFSET_ABSENT,
            rcv_nxt: OFFSET_ABSENT,
            copied_seq: OFFSET_ABSENT,
            snd_wnd: OFFSET_ABSENT,
            icsk_retransmits: OFFSET_ABSENT,
            icsk_probes_out: OFFSET_ABSENT,
            lingertime: OFFSET_ABSENT,
            sock_linger_bit: OFFSET_ABSENT,
        }
    }
}

/// Field offsets in the record of the `sock:inet_sock_set_state` tracepoint, read from
/// `/sys/kernel/tracing/events/sock/inet_sock_set_state/format`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTpOffsets {
    /// `const void * skaddr`
    pub skaddr: u32,
    /// `int oldstate`
    pub oldstate: u32,
    /// `int newstate`
    pub newstate: u32,
    /// `__u16 protocol`
    pub protocol: u32,
}

impl StateTpOffsets {
    #[must_use]
    pub const fn absent() -> Self {
        Self {
            skaddr: OFFSET_ABSENT,
            oldstate: OFFSET_ABSENT,
            newstate: OFFSET_ABSENT,
            protocol: OFFSET_ABSENT,
        }
    }
}

/// Offsets in a `syscalls:sys_exit_*` record (accept, accept4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallTpOffsets {
    /// `long ret`
    pub ret: u32,
}

/// Offsets in `sock:sock_send_length` / `sock:sock_recv_length` (Linux 6.3+).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthTpOffsets {
    /// `void * sk`
    pub sk: u32,
    /// `__u16 protocol`
    pub protocol: u32,
    /// `int ret`: bytes, or -errno
    pub ret: u32,
    /// `int flags`: MSG_* of the call
    pub flags: u32,
}

/// Offsets in `tcp:tcp_retransmit_skb` (its layout differs between 6.1 and 6.18).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransTpOffsets {
    /// `const void * skaddr`
    pub skaddr: u32,
    /// `int err` (6.10+: the tracepoint also fires for failed retransmissions);
    /// `OFFSET_ABSENT` on kernels where it only fires on success.
    pub err: u32,
}

/// What the reset and drop hooks need beyond the socket: where a segment's headers are in
/// its `struct sk_buff` (for a reset that answers a segment which reached no socket, and
/// for every dropped one), and whether the hooks carry the kernel's reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetOffsets {
    /// `sk_buff.head` (unsigned char *): the buffer the header offsets count from.
    pub skb_head: u32,
    /// `sk_buff.network_header` (u16): the IP header, from `head`.
    pub skb_network_header: u32,
    /// `sk_buff.sk` (struct sock *): the socket a segment belongs to, where known.
    pub skb_sk: u32,
    /// `sk_buff.dev` (struct net_device *) and `net_device.nd_net.net` (struct net *): the
    /// network namespace a segment is in, for a drop without a socket.
    pub skb_dev: u32,
    pub dev_net: u32,
    /// 1 where the kernel has `enum sk_rst_reason` (Linux 6.10+): `tcp_v{4,6}_send_reset`,
    /// `tcp_send_active_reset` and the `tcp:tcp_send_reset` tracepoint then take the reason
    /// as their last argument (the third); `OFFSET_ABSENT` before.
    pub reason_arg: u32,
    /// 1 where `skb:kfree_skb` carries `enum skb_drop_reason` (Linux 5.17+): its third
    /// argument; `OFFSET_ABSENT` before.
    pub drop_reason_arg: u32,
}

impl ResetOffsets {
    pub const ABSENT: Self = Self {
        skb_head: OFFSET_ABSENT,
        skb_network_header: OFFSET_ABSENT,
        skb_sk: OFFSET_ABSENT,
        skb_dev: OFFSET_ABSENT,
        dev_net: OFFSET_ABSENT,
        reason_arg: OFFSET_ABSENT,
        drop_reason_arg: OFFSET_ABSENT,
    };
}

/// The walk from the current task to the socket behind a file descriptor:
/// `task->files->fdt->fd[n]->private_data` (a `struct socket *`) `->sk`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.files`
    pub files: u32,
    /// `files_struct.fdt`
    pub fdt: u32,
    /// `fdtable.fd` (struct file **)
    pub fd: u32,
    /// `fdtable.max_fds` (unsigned int)
    pub max_fds: u32,
    /// `file.private_data`
    pub private_data: u32,
    /// `socket.sk`
    pub sk: u32,
}

impl SyscallTpOffsets {
    pub const ABSENT: Self = Self { ret: OFFSET_ABSENT };
}

impl LengthTpOffsets {
    pub const ABSENT: Self = Self {
        sk: OFFSET_ABSENT,
        protocol: OFFSET_ABSENT,
        ret: OFFSET_ABSENT,
        flags: OFFSET_ABSENT,
    };
}

impl RetransTpOffsets {
    pub const ABSENT: Self = Self { skaddr: OFFSET_ABSENT, err: OFFSET_ABSENT };
}

impl TaskOffsets {
    pub const ABSENT: Self = Self {
        files: OFFSET_ABSENT,
        fdt: OFFSET_ABSENT,
        fd: OFFSET_ABSENT,
        max_fds: OFFSET_ABSENT,
        private_data: OFFSET_ABSENT,
        sk: OFFSET_ABSENT,
    };
}
