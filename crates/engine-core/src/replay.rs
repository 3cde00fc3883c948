//! `matching_engine replay`: CSV lines in, CSV output lines out. CONTRACT used by the
//! `matching_engine` binary: `run(input, output, errors) -> io::Result<ReplayStats>`.

use std::io::{self, BufRead, Write};

/// Counts of what a replay saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Messages processed.
    pub messages: u64,
    /// Lines that could not be parsed (each reported on `errors` with its line number).
    pub parse_errors: u64,
}

/// Replays CSV input lines through a fresh engine, writing one output line per message.
pub fn run<R: BufRead, W: Write, E: Write>(
    _input: R,
    _output: W,
    _errors: E,
) -> io::Result<ReplayStats> {
    todo!()
}
