//! Ring buffer bytes to typed events. Lengths are checked and bytes copied unaligned
//! before reading: the ring buffer only guarantees 8-byte alignment of each record.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::time::Duration;

use tracer_common::{
    accept::AcceptEvent,
    addr,
    close::{self, CloseEvent},
    connect::{self, CONNECT_OK},
    event::{EventHeader, EventKind},
    kernel::{AF_INET, AF_INET6},
    retransmit::RetransmitEvent,
    state::StateEvent,
};

use crate::event::{
    BytesSource, CloseInfo, ClosedBy, Comm, ConnectResult, Detail, Direction, Endpoints, Event,
    Owner, TcpState,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("record of {0} bytes is shorter than its kind needs")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("unknown address family {0}")]
    Family(u16),
}

fn read<T: Copy>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.len() < size_of::<T>() {
        return Err(Error::Short(bytes.len()));
    }
    // SAFETY: length checked; T is a plain `#[repr(C)]` integer struct, any bits are valid.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Converts kernel monotonic nanoseconds to Unix-epoch nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, in ns.
    offset_ns: i128,
}

impl Clock {
    pub(crate) fn now() -> Self {
        Self { offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC) }
    }

    #[cfg(test)]
    pub(crate) const fn with_offset(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    pub(crate) fn wall(self, mono_ns: u64) -> u64 {
        u64::try_from(i128::from(mono_ns) + self.offset_ns).unwrap_or(0)
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Now on the kernel programs' clock (`bpf_ktime_get_ns`: CLOCK_MONOTONIC), in ns.
pub(crate) fn monotonic_now_ns() -> u64 {
    u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
}

fn owner(h: &EventHeader) -> Owner {
    owner_of(h.pid, h.tid, h.uid, &h.comm)
}

/// An owner from the kernel's fields (an event header, or a `SOCKS` entry's task).
pub(crate) fn owner_of(pid: u32, tid: u32, uid: u32, comm: &[u8]) -> Owner {
    Owner { pid, tid, uid, comm: Comm::from_kernel(comm) }
}

pub(crate) fn endpoints(e: &addr::Endpoints) -> Result<Endpoints, Error> {
    let ip = |bytes: [u8; 16]| -> Result<IpAddr, Error> {
        match e.family {
            AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
            AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(bytes))),
            other => Err(Error::Family(other)),
        }
    };
    Ok(Endpoints { laddr: ip(e.saddr)?, lport: e.sport, raddr: ip(e.daddr)?, rport: e.dport })
}

fn event(
    header: &EventHeader,
    ep: &addr::Endpoints,
    clock: Clock,
    detail: Detail,
) -> Result<Event, Error> {
    Ok(Event {
        time_ns: clock.wall(header.ts_ns),
        sock: header.sock,
        owner: owner(header),
        endpoints: endpoints(ep)?,
        netns: header.netns,
        detail,
    })
}

const fn nonzero(ns: u64) -> Option<Duration> {
    if ns == 0 {
        None
    } else {
        Some(Duration::from_nanos(ns))
    }
}

/// Decodes one ring buffer record.
pub(crate) fn decode(bytes: &[u8], clock: Clock) -> Result<Event, Error> {
    let header: EventHeader = read(bytes)?;
    match EventKind::from_raw(header.kind) {
        Some(EventKind::Connect) => {
            let raw: connect::ConnectEvent = read(bytes)?;
            let result = if raw.result == CONNECT_OK {
                ConnectResult::Ok
            } else {
                ConnectResult::Failed(raw.errno)
            };
            event(
                &raw.header,
                &raw.endpoints,
                clock,
                Detail::Connect {
                    latency: Duration::from_nanos(raw.latency_ns),
                    result,
                    syns_sent: raw.syns_sent,
                    syns_dropped: (raw.syns_dropped != connect::SYNS_DROPPED_UNKNOWN)
                        .then_some(raw.syns_dropped),
                    syn_drop_reason: raw
                        .syn_drop_reason
                        .checked_sub(1)
                        .and_then(crate::drops::reason_name),
                },
            )
        }
        Some(EventKind::Accept) => {
            let raw: AcceptEvent = read(bytes)?;
            event(&raw.header, &raw.endpoints, clock, Detail::Accept)
        }
        Some(EventKind::Close) => {
            let raw: CloseEvent = read(bytes)?;
            let info = CloseInfo {
                lifetime: nonzero(raw.lifetime_ns),
                bytes_sent: raw.bytes_sent,
                bytes_received: raw.bytes_received,
                total_retrans: raw.total_retrans,
                srtt_us: raw.srtt_us,
                direction: match raw.direction {
                    close::DIRECTION_ACTIVE => Direction::Active,
                    close::DIRECTION_PASSIVE => Direction::Passive,
                    _ => Direction::Unknown,
                },
                closed_by: match raw.closed_by {
                    close::CLOSED_BY_LOCAL => ClosedBy::Local,
                    close::CLOSED_BY_REMOTE => ClosedBy::Remote,
                    _ => ClosedBy::Unknown,
                },
                bytes_source: if raw.bytes_source == close::BYTES_FROM_CALLS {
                    BytesSource::Calls
                } else {
                    BytesSource::Socket
                },
                ending: crate::end::Ending::classify(&raw.ending),
            };
            event(&raw.header, &raw.endpoints, clock, Detail::Close(info))
        }
        Some(EventKind::State) => {
            let raw: StateEvent = read(bytes)?;
            let detail = Detail::State {
                old: TcpState(raw.old_state),
                new: TcpState(raw.new_state),
                in_old: nonzero(raw.in_old_state_ns),
            };
            event(&raw.header, &raw.endpoints, clock, detail)
        }
        Some(EventKind::Retransmit) => {
            let raw: RetransmitEvent = read(bytes)?;
            event(
                &raw.header,
                &raw.endpoints,
                clock,
                Detail::Retransmit {
                    state: TcpState(u32::from(raw.state)),
                    total_retrans: raw.total_retrans,
                    tail_loss_probe: raw.tail_loss_probe != 0,
                },
            )
        }
        Some(EventKind::Reset) => {
            let raw: tracer_common::reset::ResetEvent = read(bytes)?;
            event(
                &raw.header,
                &raw.endpoints,
                clock,
                Detail::Reset {
                    sent: raw.direction == tracer_common::reset::RESET_SENT,
                    state: (raw.has_socket != 0).then_some(TcpState(u32::from(raw.state))),
                    reason: crate::end::reset_reason_name(raw.reason),
                    count: 1,
                },
            )
        }
        // Drops are counted in a map, never sent as records (see `drops`).
        Some(EventKind::Drop) | None => Err(Error::UnknownKind(header.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::connect::CONNECT_FAILED;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain struct.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn sample() -> connect::ConnectEvent {
        let mut comm = [0u8; 16];
        comm[..7].copy_from_slice(b"curl-x1");
        let mut saddr = [0u8; 16];
        saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut daddr = [0u8; 16];
        daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        connect::ConnectEvent {
            header: EventHeader {
                kind: EventKind::Connect as u32,
                pid: 42,
                tid: 43,
                uid: 1000,
                ts_ns: 5_000,
                sock: 0xffff_8880_1234_5600,
                comm,
                netns: 4_026_531_840,
                _pad: 0,
            },
            endpoints: addr::Endpoints {
                saddr,
                daddr,
                sport: 40_000,
                dport: 443,
                family: AF_INET,
                _pad: 0,
            },
            latency_ns: 1_234_567,
            result: CONNECT_FAILED,
            errno: 111,
            syns_sent: 2,
            syns_dropped: 2,
            syn_drop_reason: 17,
            _pad: 0,
        }
    }

    #[test]
    fn decodes_a_connect_record_at_any_alignment() {
        let mut buf = vec![0u8];
        buf.extend(bytes_of(&sample()));
        let c = decode(&buf[1..], Clock::with_offset(1_000)).expect("decodes");
        assert_eq!(c.time_ns, 6_000);
        assert_eq!(c.owner, Owner { pid: 42, tid: 43, uid: 1000, comm: "curl-x1".into() });
        assert_eq!(c.endpoints.laddr.to_string(), "127.0.0.1");
        assert_eq!(c.endpoints.raddr.to_string(), "10.1.2.3");
        assert_eq!((c.endpoints.lport, c.endpoints.rport), (40_000, 443));
        assert_eq!(c.netns, 4_026_531_840);
        assert_eq!(
            c.detail,
            Detail::Connect {
                latency: Duration::from_nanos(1_234_567),
                result: ConnectResult::Failed(111),
                syns_sent: 2,
                syns_dropped: Some(2),
                syn_drop_reason: Some("reason16".into()),
            }
        );
    }

    #[test]
    fn decodes_ipv6() {
        let mut raw = sample();
        raw.endpoints.family = AF_INET6;
        raw.endpoints.saddr = Ipv6Addr::LOCALHOST.octets();
        raw.endpoints.daddr = "2001:db8::1".parse::<Ipv6Addr>().expect("addr").octets();
        let c = decode(&bytes_of(&raw), Clock::with_offset(0)).expect("decodes");
        assert_eq!(c.endpoints.laddr.to_string(), "::1");
        assert_eq!(c.endpoints.raddr.to_string(), "2001:db8::1");
    }

    #[test]
    fn decodes_a_close_record() {
        let s = sample();
        let raw = CloseEvent {
            header: EventHeader { kind: EventKind::Close as u32, ..s.header },
            endpoints: s.endpoints,
            lifetime_ns: 0,
            bytes_sent: 1_000_003,
            bytes_received: 77_777,
            total_retrans: 3,
            srtt_us: 41,
            direction: close::DIRECTION_PASSIVE,
            closed_by: close::CLOSED_BY_REMOTE,
            bytes_source: close::BYTES_FROM_CALLS,
            ending: close::Ending {
                err: 104,
                unacked_bytes: 5,
                unread_bytes: 7,
                old_state: tracer_common::kernel::TCP_ESTABLISHED as u8,
                retransmits: 0,
                probes_out: 0,
                flags: close::ENDING_READ,
                reset_reason: 0,
            },
            _pad: 0,
        };
        let e = decode(&bytes_of(&raw), Clock::with_offset(0)).expect("decodes");
        assert_eq!(
            e.detail,
            Detail::Close(CloseInfo {
                lifetime: None,
                bytes_sent: 1_000_003,
                bytes_received: 77_777,
                total_retrans: 3,
                srtt_us: 41,
                direction: Direction::Passive,
                closed_by: ClosedBy::Remote,
                bytes_source: BytesSource::Calls,
                ending: crate::end::Ending {
                    end: crate::end::End::ResetReceived,
                    errno: Some(104),
                    timeout: None,
                    reason: None,
                    unacked_bytes: Some(5),
                    unread_bytes: Some(7),
                },
            })
        );
        // One byte short of a close record is an error, not a misread.
        assert_eq!(decode(&bytes_of(&raw)[..151], Clock::with_offset(0)), Err(Error::Short(151)));
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let full = bytes_of(&sample());
        assert_eq!(decode(&full[..10], Clock::with_offset(0)), Err(Error::Short(10)));
        assert_eq!(decode(&full[..60], Clock::with_offset(0)), Err(Error::Short(60)));
        let mut unknown = sample();
        unknown.header.kind = 999;
        assert_eq!(
            decode(&bytes_of(&unknown), Clock::with_offset(0)),
            Err(Error::UnknownKind(999))
        );
        let mut fam = sample();
        fam.endpoints.family = 1;
        assert_eq!(decode(&bytes_of(&fam), Clock::with_offset(0)), Err(Error::Family(1)));
    }
}
