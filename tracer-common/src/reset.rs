//! The reset event: one per RST this host sent or received.

use crate::{addr::Endpoints, event::EventHeader};

/// `direction` values.
pub const RESET_SENT: u8 = 1;
pub const RESET_RECEIVED: u8 = 2;

/// `reason` when the kernel gives none: Linux before 6.10 (no `enum sk_rst_reason`), and
/// every reset received.
pub const REASON_NONE: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetEvent {
    /// Owner of the connection the reset belongs to, from the connect or accept it was seen
    /// in; pid 0 when it belongs to no tracked connection (a segment that reached no
    /// socket, a time-wait socket, a connection older than tcptrace).
    pub header: EventHeader,
    /// Local and remote end: the socket's, or for a reset that answers a segment, that
    /// segment's addresses and ports turned round (its destination is our end).
    pub endpoints: Endpoints,
    /// The kernel's `enum sk_rst_reason` value (Linux 6.10+, resets sent), raw: user space
    /// names it from the running kernel's BTF. `REASON_NONE` where there is none.
    pub reason: u32,
    /// `RESET_SENT` or `RESET_RECEIVED`.
    pub direction: u8,
    /// The socket's `TCP_*` state at that moment; 0 when no socket was there.
    pub state: u8,
    /// 1 when the reset belongs to a socket (full, time-wait or request), 0 when it
    /// answered a segment that reached none.
    pub has_socket: u8,
    /// Keeps the size a multiple of 8 without hidden padding.
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<ResetEvent>() == 104);
