//! The recovery scan: validates every frame of a segment's bytes (length, offset sequence,
//! partition, CRC) and rebuilds its indexes on the way.

use super::IndexBuilder;
use crate::index::{IndexEntry, TimeEntry};
use crate::record::{check_frame, Frame};

/// What a full scan of a segment's bytes found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Bytes of valid frames from the start.
    pub valid_len: u64,
    /// Offset after the last valid frame.
    pub next_offset: u64,
    pub index: Vec<IndexEntry>,
    pub time: Vec<TimeEntry>,
    pub builder: IndexBuilder,
    pub first_ts: Option<u64>,
    /// Why the scan stopped before the end of the bytes, if it did.
    pub bad: Option<&'static str>,
    /// It stopped at zeros that run to the end: space written ahead of the records (see
    /// `partition/append.rs`), or blocks a crash left unwritten, not a damaged record.
    pub zero_tail: bool,
}

/// Scans `bytes`, the records of the segment starting at offset `base`.
pub(crate) fn scan(bytes: &[u8], base: u64, partition: u32, interval: u32) -> Scan {
    let mut s = Scan {
        next_offset: base,
        ..Scan::default()
    };
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let offset = s.next_offset;
        match check_frame(rest, offset) {
            Frame::Ok {
                len,
                timestamp_ms,
                partition: stored,
            } => {
                if stored != partition {
                    s.bad = Some("record belongs to another partition");
                    break;
                }
                let rel = (offset - base) as u32;
                s.builder
                    .before(interval, rel, pos as u32, &mut s.index, &mut s.time);
                s.builder.after(len, timestamp_ms);
                s.first_ts.get_or_insert(timestamp_ms);
                pos += len;
                s.next_offset += 1;
            }
            Frame::Incomplete { .. } => {
                s.bad = Some("torn record at the end");
                break;
            }
            Frame::Bad(reason) => {
                s.bad = Some(reason);
                break;
            }
        }
    }
    s.valid_len = pos as u64;
    s.zero_tail = s.bad.is_some() && bytes[pos..].iter().all(|&b| b == 0);
    s
}
