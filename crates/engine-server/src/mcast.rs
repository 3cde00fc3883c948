//! Multicast market-data publisher: each datagram is a u64 big-endian sequence number (starting
//! at 1, consecutive) followed by one encoded message (CSV line or binary message).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use anyhow::Context;
use engine_core::OutputMsg;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ServerConfig;
use crate::wire::{encode, Proto};

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
        self.buf.extend_from_slice(&self.seq.to_be_bytes());
        encode(self.proto, msg, &mut self.buf);
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
