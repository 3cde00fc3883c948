//! The `matching_engine` server: TCP (4-byte big-endian length framing), UDP (one message per
//! datagram) and multicast market data around `engine-core`, in single-threaded or threaded
//! ("dual-processor") mode. See docs/matching-engine.md for the design.

#![warn(missing_docs)]

pub mod accept;
pub mod config;
pub mod hub;
pub mod listen;
pub mod mcast;
pub mod msglog;
pub mod router;
pub mod server;
pub mod wire;
