//! The retransmit event: one per retransmission of a segment.

use crate::{addr::Endpoints, event::EventHeader};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitEvent {
    /// Owner of the socket, from the connect/accept it was seen in (pid 0 when unknown).
    pub header: EventHeader,
    pub endpoints: Endpoints,
    /// `TCP_*` state of the socket when it retransmitted.
    pub state: u32,
    /// `tcp_sock.total_retrans` after this retransmission.
    pub total_retrans: u32,
}

const _: () = assert!(core::mem::size_of::<RetransmitEvent>() == 88);
