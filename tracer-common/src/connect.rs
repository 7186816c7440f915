//! The connect event: one per active open, emitted when the handshake ends
//! (ESTABLISHED or failed), or when `connect()` itself fails before a SYN is sent.

use crate::{addr::Endpoints, event::EventHeader};

/// `result` values.
pub const CONNECT_OK: u32 = 0;
pub const CONNECT_FAILED: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectEvent {
    /// Owner: the task that called `connect()`, captured in its own context.
    pub header: EventHeader,
    pub endpoints: Endpoints,
    /// From the SYN being sent (state SYN_SENT) to ESTABLISHED or to the failure;
    /// 0 when `connect()` failed before sending a SYN.
    pub latency_ns: u64,
    /// `CONNECT_OK` or `CONNECT_FAILED`.
    pub result: u32,
    /// Positive errno of a failed connect (`ECONNREFUSED`, ...); 0 when ok or not known.
    pub errno: u32,
    /// SYNs sent (the first and its retransmissions, `total_retrans` at the handshake's
    /// end); 0 when `connect()` failed before sending one.
    pub syns_sent: u32,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 120);
