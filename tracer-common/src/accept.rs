//! The accept event: one per passive open, when the application accepts it.

use crate::{addr::Endpoints, event::EventHeader};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptEvent {
    /// The task that accepted (its own context: the accept call's return).
    pub header: EventHeader,
    /// Local end = the listening address and port; remote end = the peer.
    pub endpoints: Endpoints,
}

const _: () = assert!(core::mem::size_of::<AcceptEvent>() == 96);
