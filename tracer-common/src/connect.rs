//! The connect event: one per active open, emitted when the handshake ends
//! (ESTABLISHED or failed), or when `connect()` itself fails before a SYN is sent.

use crate::{addr::Endpoints, event::EventHeader};

/// `result` values.
pub const CONNECT_OK: u32 = 0;
pub const CONNECT_FAILED: u32 = 1;

/// `syns_dropped` when drops were not watched (drop events not wanted).
pub const SYNS_DROPPED_UNKNOWN: u32 = u32::MAX;

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
    /// Of those, the SYNs this host dropped on their way out (a local firewall, a full
    /// queue), counted only while drop events are wanted (the drop hook counts them);
    /// `SYNS_DROPPED_UNKNOWN` otherwise.
    pub syns_dropped: u32,
    /// The kernel's reason (`enum skb_drop_reason`) for the last of them, plus one; 0 when
    /// none was dropped or the kernel gives no reason (before 5.17).
    pub syn_drop_reason: u32,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 128);
