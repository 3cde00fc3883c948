//! Multicast market data. Each datagram is a u64 big-endian sequence number (starting at 1,
//! consecutive, one counter for the whole feed) followed by one encoded message (a CSV line with
//! its `\n`, or one binary message). [`encode_datagram`] and [`decode_datagram`] own that layout.
//!
//! [`Multicast`] is the engine's publisher; [`join`] and [`SeqTracker`] are the subscriber's side
//! (`matching_engine subscribe`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::ops::RangeInclusive;

use anyhow::Context;
use engine_core::OutputMsg;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ServerConfig;
use crate::wire::{encode, Proto};

/// Length of a datagram's header: the u64 big-endian sequence number before the message.
pub const SEQ_LEN: usize = std::mem::size_of::<u64>();

/// Appends one datagram: the sequence number `seq`, then `msg` encoded in `proto`.
pub fn encode_datagram(seq: u64, proto: Proto, msg: &OutputMsg, out: &mut Vec<u8>) {
    let header: [u8; SEQ_LEN] = seq.to_be_bytes();
    out.extend_from_slice(&header);
    encode(proto, msg, out);
}

/// Why a datagram does not have the feed's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramError {
    /// Shorter than the sequence number.
    Truncated {
        /// The datagram's length.
        len: usize,
    },
    /// A sequence number and nothing after it.
    NoMessage {
        /// The sequence number it carries.
        seq: u64,
    },
}

impl std::fmt::Display for DatagramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatagramError::Truncated { len } => write!(
                f,
                "truncated datagram: {len} byte(s), shorter than the {SEQ_LEN}-byte sequence number"
            ),
            DatagramError::NoMessage { seq } => {
                write!(f, "datagram with sequence number {seq} carries no message")
            }
        }
    }
}

impl std::error::Error for DatagramError {}

/// Splits a datagram into its sequence number and its (still encoded) message, which is not
/// empty. Decode the message with [`crate::wire::decode_output`].
pub fn decode_datagram(datagram: &[u8]) -> Result<(u64, &[u8]), DatagramError> {
    let Some((header, msg)) = datagram.split_first_chunk::<SEQ_LEN>() else {
        return Err(DatagramError::Truncated {
            len: datagram.len(),
        });
    };
    let seq = u64::from_be_bytes(*header);
    if msg.is_empty() {
        return Err(DatagramError::NoMessage { seq });
    }
    Ok((seq, msg))
}

/// Publishes trades and top-of-book changes to the multicast group.
pub struct Multicast {
    sock: UdpSocket,
    dest: SocketAddr,
    proto: Proto,
    seq: u64,
    buf: Vec<u8>,
    dropped: u64,
}

impl Multicast {
    /// Opens the sending socket with the configured TTL, loopback and interface.
    pub fn open(cfg: &ServerConfig) -> anyhow::Result<Multicast> {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .context("multicast: create socket")?;
        sock.set_multicast_ttl_v4(cfg.mcast_ttl)
            .context("multicast: set TTL")?;
        sock.set_multicast_loop_v4(cfg.mcast_loopback)
            .context("multicast: set loopback")?;
        if cfg.mcast_interface != Ipv4Addr::UNSPECIFIED {
            sock.set_multicast_if_v4(&cfg.mcast_interface)
                .with_context(|| format!("multicast: use interface {}", cfg.mcast_interface))?;
        }
        sock.bind(&SocketAddr::V4(SocketAddrV4::new(cfg.mcast_interface, 0)).into())
            .context("multicast: bind")?;
        // Never block the I/O thread on market data: a full socket buffer drops the datagram
        // (counted; subscribers see the sequence gap).
        sock.set_nonblocking(true)
            .context("multicast: set non-blocking")?;
        Ok(Multicast {
            sock: sock.into(),
            dest: SocketAddr::V4(SocketAddrV4::new(cfg.mcast_group, cfg.mcast_port)),
            proto: if cfg.mcast_binary {
                Proto::Binary
            } else {
                Proto::Csv
            },
            seq: 0,
            buf: Vec::with_capacity(64),
            dropped: 0,
        })
    }

    /// Where datagrams go.
    pub fn dest(&self) -> SocketAddr {
        self.dest
    }

    /// The feed's encoding.
    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// Publishes one message with the next sequence number.
    pub fn publish(&mut self, msg: &OutputMsg) {
        self.seq += 1;
        self.buf.clear();
        encode_datagram(self.seq, self.proto, msg, &mut self.buf);
        if let Err(e) = self.sock.send_to(&self.buf, self.dest) {
            self.dropped += 1;
            // Log the first drop and then every 1024th, so a dead route cannot flood the log.
            if self.dropped == 1 || self.dropped.is_multiple_of(1024) {
                tracing::warn!(
                    "multicast send to {} failed ({} dropped so far): {e}",
                    self.dest,
                    self.dropped
                );
            }
        }
    }
}

/// Receive buffer a subscriber asks for, so that a burst is not lost while it prints; the
/// kernel caps it at `net.core.rmem_max`.
const SUBSCRIBER_RCVBUF: usize = 4 << 20;

/// Opens a subscriber's socket: bound to `group:port` with `SO_REUSEADDR`, so several subscribers
/// on one host share the port (each gets every datagram), and joined to `group` on the interface
/// with the IPv4 address `interface` (0.0.0.0: the kernel picks it by route). Port 0 binds a free
/// port (`local_addr` says which). Binding the group address rather than the wildcard keeps
/// out unicast datagrams and other groups on the same port.
pub fn join(group: Ipv4Addr, port: u16, interface: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    anyhow::ensure!(
        group.is_multicast(),
        "{group} is not an IPv4 multicast address (224.0.0.0/4)"
    );
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .context("subscribe: create socket")?;
    sock.set_reuse_address(true)
        .context("subscribe: set SO_REUSEADDR")?;
    // Best effort: a smaller buffer only means losses (reported as gaps) come sooner.
    let _ = sock.set_recv_buffer_size(SUBSCRIBER_RCVBUF);
    let addr = SocketAddrV4::new(group, port);
    sock.bind(&SocketAddr::V4(addr).into())
        .with_context(|| format!("subscribe: bind {addr}"))?;
    sock.join_multicast_v4(&group, &interface)
        .with_context(|| format!("subscribe: join {group} on interface {interface}"))?;
    Ok(sock.into())
}

/// What one sequence number tells a subscriber, given the ones before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqEvent {
    /// The first datagram, or the one right after the highest so far.
    InOrder,
    /// The datagrams numbered `missing` never arrived (lost, or dropped by the publisher).
    Gap {
        /// The missing sequence numbers.
        missing: RangeInclusive<u64>,
    },
    /// 1 after higher numbers: the publisher restarted, numbering from 1 again.
    Restart {
        /// The highest number before the restart.
        previous: u64,
    },
    /// Not above the highest so far: a duplicate, or a datagram overtaken by later ones.
    Stale {
        /// The highest number so far.
        highest: u64,
    },
}

/// Follows a feed's sequence numbers: gaps, restarts, duplicates, and the numbers seen.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    received: u64,
    first: u64,
    highest: u64,
    gaps: u64,
}

impl SeqTracker {
    /// Accounts for one datagram's sequence number. The first one seen is in order whatever
    /// its number: a subscriber that joins a running feed has missed nothing.
    pub fn observe(&mut self, seq: u64) -> SeqEvent {
        self.received += 1;
        if self.received == 1 {
            self.first = seq;
            self.highest = seq;
            return SeqEvent::InOrder;
        }
        // None at u64::MAX: nothing can follow it in order.
        match self.highest.checked_add(1) {
            Some(expected) if seq == expected => {
                self.highest = seq;
                SeqEvent::InOrder
            }
            Some(expected) if seq > expected => {
                self.highest = seq;
                self.gaps += 1;
                SeqEvent::Gap {
                    missing: expected..=seq - 1,
                }
            }
            _ if seq == 1 && self.highest > 1 => {
                let previous = self.highest;
                self.highest = 1;
                SeqEvent::Restart { previous }
            }
            _ => SeqEvent::Stale {
                highest: self.highest,
            },
        }
    }

    /// Datagrams observed.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Gaps seen (runs of missing numbers, not the numbers missing).
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// The first number seen ..= the highest since the last restart; `None` before any.
    pub fn range(&self) -> Option<RangeInclusive<u64>> {
        (self.received > 0).then_some(self.first..=self.highest)
    }

    /// One line: `received N datagrams, seq A..=B, G gaps` (no range when none arrived).
    pub fn summary(&self) -> String {
        match self.range() {
            Some(r) => format!(
                "received {} datagrams, seq {}..={}, {} gaps",
                self.received,
                r.start(),
                r.end(),
                self.gaps
            ),
            None => format!("received 0 datagrams, {} gaps", self.gaps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_core::{Side, Symbol};
    use proptest::prelude::*;

    fn tob() -> OutputMsg {
        OutputMsg::TopOfBook {
            symbol: Symbol::new(b"IBM").unwrap(),
            side: Side::Buy,
            level: Some((10, 100)),
        }
    }

    #[test]
    fn datagram_round_trip_in_both_encodings() {
        for proto in [Proto::Csv, Proto::Binary] {
            let mut d = Vec::new();
            encode_datagram(7, proto, &tob(), &mut d);
            assert_eq!(&d[..SEQ_LEN], &[0, 0, 0, 0, 0, 0, 0, 7]);
            let (seq, msg) = decode_datagram(&d).unwrap();
            assert_eq!(seq, 7);
            assert_eq!(crate::wire::decode_output(msg).unwrap(), tob(), "{proto:?}");
        }
        let mut d = Vec::new();
        encode_datagram(u64::MAX - 1, Proto::Csv, &tob(), &mut d);
        assert_eq!(&d[SEQ_LEN..], b"B, IBM, B, 10, 100\n");
        assert_eq!(decode_datagram(&d).unwrap().0, u64::MAX - 1);
    }

    #[test]
    fn truncated_and_garbage_datagrams_are_errors() {
        assert_eq!(
            decode_datagram(b""),
            Err(DatagramError::Truncated { len: 0 })
        );
        assert_eq!(
            decode_datagram(&[0, 0, 0, 0, 0, 0, 1]),
            Err(DatagramError::Truncated { len: 7 })
        );
        assert_eq!(
            decode_datagram(&[0, 0, 0, 0, 0, 0, 0, 3]),
            Err(DatagramError::NoMessage { seq: 3 })
        );
        assert!(DatagramError::Truncated { len: 7 }
            .to_string()
            .contains("7 byte(s)"));
        // A header and garbage: the layout is fine, the message is not.
        let mut d = 9u64.to_be_bytes().to_vec();
        d.extend_from_slice(b"hello\n");
        let (seq, msg) = decode_datagram(&d).unwrap();
        assert_eq!(seq, 9);
        assert!(crate::wire::decode_output(msg).is_err());
        // A binary message cut short.
        let mut d = 1u64.to_be_bytes().to_vec();
        crate::wire::encode(Proto::Binary, &tob(), &mut d);
        d.pop();
        let (_, msg) = decode_datagram(&d).unwrap();
        assert!(crate::wire::decode_output(msg).is_err());
    }

    #[test]
    fn tracker_reports_gaps_restarts_and_stale_numbers() {
        let mut t = SeqTracker::default();
        assert_eq!(t.summary(), "received 0 datagrams, 0 gaps");
        // Joining a running feed is not a gap.
        assert_eq!(t.observe(4), SeqEvent::InOrder);
        assert_eq!(t.observe(5), SeqEvent::InOrder);
        assert_eq!(t.observe(9), SeqEvent::Gap { missing: 6..=8 });
        assert_eq!(t.observe(10), SeqEvent::InOrder);
        assert_eq!(t.observe(12), SeqEvent::Gap { missing: 11..=11 });
        assert_eq!(t.observe(11), SeqEvent::Stale { highest: 12 });
        assert_eq!(t.observe(12), SeqEvent::Stale { highest: 12 });
        assert_eq!(t.summary(), "received 7 datagrams, seq 4..=12, 2 gaps");
        assert_eq!(t.observe(1), SeqEvent::Restart { previous: 12 });
        assert_eq!(t.observe(2), SeqEvent::InOrder);
        assert_eq!(t.gaps(), 2);
        assert_eq!(t.received(), 9);
        // No overflow at the top of the range.
        let mut t = SeqTracker::default();
        t.observe(u64::MAX);
        assert_eq!(t.observe(u64::MAX), SeqEvent::Stale { highest: u64::MAX });
    }

    proptest! {
        // Arbitrary bytes never panic the subscriber's decoding.
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((_, msg)) = decode_datagram(&bytes) {
                let _ = crate::wire::decode_output(msg);
            }
        }
    }
}
