//! FIX tag=value codec and session layer (FIXT.1.1 transport, FIX 5.0 SP2 application).
//!
//! # Why a hand-written codec
//!
//! We looked at the Rust FIX crates first. `fefix` (FerrumFIX) is dictionary-driven, needs
//! build-time code generation for typed access and groups, and has seen no release for
//! years; `hotfix` is explicitly experimental, changes its API from release to release, targets
//! FIX 4.4 first, requires edition 2024 and brings message stores and extra services we do not
//! need. The bridge needs a small, stable subset: framing a byte stream, BodyLength and
//! CheckSum, lenient field access, a few repeating groups and the session messages. That fits
//! in a few hundred lines of zero-copy code (fields are slices of the received buffer), which
//! we can fuzz with proptest and keep allocation-light on the hot market-data path, without a
//! dictionary to ship or regenerate.
//!
//! Modules:
//! - [`encode`]: [`MessageBuilder`], which computes BodyLength (9) and CheckSum (10).
//! - [`decode`]: [`Message`], a parsed, verified view of one message; repeating groups.
//! - [`framing`]: [`FrameDecoder`], which cuts complete messages out of a byte stream.
//! - [`time`]: UTC timestamps (`YYYYMMDD-HH:MM:SS[.fff[fff]]`) to and from epoch time.
//! - [`session`]: a sans-I/O session state machine (Logon, heartbeats, TestRequest,
//!   sequence numbers and gaps, ResendRequest answers, Logout).
//! - [`tags`]: tag numbers and message types used by the session and the bridge.

#![warn(missing_docs)]

pub mod decode;
pub mod encode;
pub mod framing;
pub mod session;
pub mod tags;
pub mod time;

pub use decode::{DecodeError, FieldError, GroupEntry, GroupSpec, Message};
pub use encode::{EncodeError, MessageBuilder};
pub use framing::{FrameDecoder, FrameError};
pub use session::{Action, Inbound, Session, SessionConfig, SessionError};

/// The FIX field delimiter (SOH, 0x01).
pub const SOH: u8 = 0x01;

/// Computes the FIX CheckSum: the sum of all bytes modulo 256.
#[inline]
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}
