//! Events that more than one hook sends: connect results (the state hook; the connect
//! hook's failures before a SYN are its own), and close events (the state hook at CLOSE,
//! the bytes hook's destroy programs, and the state hook again at CLOSE -> SYN_SENT, which
//! flushes one still waiting for a socket that connects anew: `connect::start`).

pub(crate) mod close;
pub(crate) mod connect;
