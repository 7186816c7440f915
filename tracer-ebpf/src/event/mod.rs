//! Events that more than one hook sends: connect results (the state hook; the connect
//! hook's failures before a SYN are its own), and close events (the state hook, the bytes
//! hook's destroy programs, and the connect hook, which flushes one still waiting).

pub(crate) mod close;
pub(crate) mod connect;
