//! `matching_engine replay`: CSV lines in, CSV output lines out, through a fresh engine.
//! The binary calls `run(input, output, errors)`.

use std::io::{self, BufRead, Write};

use crate::engine::{Engine, EngineConfig, Route, Sink};
use crate::message::OutputMsg;

/// Counts of what a replay saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Messages processed.
    pub messages: u64,
    /// Lines that could not be parsed (each reported on `errors` with its line number).
    pub parse_errors: u64,
}

/// Collects the CSV lines of one message's output.
struct CsvLines(Vec<u8>);

impl Sink for CsvLines {
    fn emit(&mut self, msg: &OutputMsg, _route: Route) {
        crate::csv::encode_output(msg, &mut self.0);
        self.0.push(b'\n');
    }
}

/// Replays CSV input lines through a fresh engine, writing one output line per message.
pub fn run<R: BufRead, W: Write, E: Write>(
    mut input: R,
    mut output: W,
    mut errors: E,
) -> io::Result<ReplayStats> {
    let mut engine = Engine::new(EngineConfig::default());
    let mut stats = ReplayStats::default();
    let mut line = Vec::new();
    let mut out = CsvLines(Vec::with_capacity(4096));
    let mut line_no: u64 = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line_no += 1;
        match crate::csv::decode_input(&line) {
            Ok(None) => {}
            Ok(Some(msg)) => {
                stats.messages += 1;
                engine.process(0, &msg, &mut out);
                if out.0.len() >= 64 * 1024 {
                    output.write_all(&out.0)?;
                    out.0.clear();
                }
            }
            Err(e) => {
                stats.parse_errors += 1;
                writeln!(errors, "line {line_no}: {e}")?;
            }
        }
    }
    output.write_all(&out.0)?;
    output.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_lines_and_reports_bad_ones_with_their_number() {
        let input = b"# comment\n\nN, 1, IBM, 10, 100, B, 1\r\nbogus\nC, 1, 1\n";
        let mut out = Vec::new();
        let mut err = Vec::new();
        let stats = run(&input[..], &mut out, &mut err).unwrap();
        assert_eq!(
            stats,
            ReplayStats {
                messages: 2,
                parse_errors: 1
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A, IBM, 1, 1\nB, IBM, B, 10, 100\nC, IBM, 1, 1\nB, IBM, B, -, -\n"
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("line 4: unknown message type"), "{err}");
    }
}
