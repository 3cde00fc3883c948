//! CSV codec. CONTRACT used by engine-server (signatures are fixed; bodies are the core issue's):
//!
//! - `decode_input(line) -> Result<Option<InputMsg>, CsvError>`: one line without its newline
//!   (a trailing `\r`/`\n` is tolerated); `Ok(None)` for blank lines and `#` comments.
//! - `encode_output(msg, out)`: appends one output line *without* a newline to `out`.
//! - `encode_input` / `decode_output`: the other direction, for clients, tools and tests.

use crate::message::{InputMsg, OutputMsg};

/// Why a CSV line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CsvError(pub String);

/// Decodes one CSV input line.
pub fn decode_input(_line: &[u8]) -> Result<Option<InputMsg>, CsvError> {
    todo!()
}

/// Appends the CSV form of an output message (no newline).
pub fn encode_output(_msg: &OutputMsg, _out: &mut Vec<u8>) {
    todo!()
}

/// Appends the CSV form of an input message (no newline).
pub fn encode_input(_msg: &InputMsg, _out: &mut Vec<u8>) {
    todo!()
}

/// Decodes one CSV output line.
pub fn decode_output(_line: &[u8]) -> Result<OutputMsg, CsvError> {
    todo!()
}
