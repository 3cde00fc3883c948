//! Binary codec (big-endian, packed, magic 0x4D). CONTRACT used by engine-server (signatures are
//! fixed; bodies are the core issue's):
//!
//! - `MAGIC`, `decode_input(bytes) -> Result<InputMsg, BinaryError>` for exactly one message,
//! - `encode_output(msg, out)` appends one message,
//! - `encode_input` / `decode_output`: the other direction, for clients, tools and tests.

use crate::message::{InputMsg, OutputMsg};

/// First byte of every binary message.
pub const MAGIC: u8 = 0x4D;

/// Why a binary message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BinaryError(pub String);

/// Decodes exactly one binary input message.
pub fn decode_input(_bytes: &[u8]) -> Result<InputMsg, BinaryError> {
    todo!()
}

/// Appends the binary form of an output message.
pub fn encode_output(_msg: &OutputMsg, _out: &mut Vec<u8>) {
    todo!()
}

/// Appends the binary form of an input message.
pub fn encode_input(_msg: &InputMsg, _out: &mut Vec<u8>) {
    todo!()
}

/// Decodes exactly one binary output message.
pub fn decode_output(_bytes: &[u8]) -> Result<OutputMsg, BinaryError> {
    todo!()
}
