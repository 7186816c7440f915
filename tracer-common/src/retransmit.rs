//! The retransmit event: one per retransmission of a segment.

use crate::{addr::Endpoints, event::EventHeader};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitEvent {
    /// Owner of the socket, from the connect/accept it was seen in (pid 0 when unknown).
    pub header: EventHeader,
    pub endpoints: Endpoints,
    /// `TCP_*` state of the socket when it retransmitted.
    pub state: u8,
    /// 1: a tail loss probe (RFC 8985: the last segment sent again when its probe timer
    /// fired, before any loss was detected); 0: a retransmission after detected loss or a
    /// timeout.
    pub tail_loss_probe: u8,
    pub _pad: [u8; 2],
    /// `tcp_sock.total_retrans` after this retransmission.
    pub total_retrans: u32,
}

const _: () = assert!(core::mem::size_of::<RetransmitEvent>() == 104);

/// `ICSK_TIME_LOSS_PROBE` (include/net/inet_connection_sock.h): the value of
/// `icsk_pending` while the tail loss probe timer is armed or running. A `#define`, so not
/// in BTF; unchanged since tail loss probes came in (Linux 3.10).
pub const ICSK_TIME_LOSS_PROBE: u8 = 5;
