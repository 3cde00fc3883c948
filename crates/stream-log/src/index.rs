//! Sparse offset index and time index of one segment, in memory and on disk.
//!
//! `.index`: n × (u32 LE relative offset, u32 LE byte position) — one entry per
//! `index_interval_bytes` of records, strictly increasing in both fields.
//! `.timeindex`: n × (u64 LE max timestamp so far, u32 LE relative offset) — written at the same
//! points when the segment's largest timestamp grew; the last entry holds the segment's largest
//! timestamp (used by time retention). That an entry is written at every point where the
//! maximum grew is what lets a lookup by time walk a single index interval
//! (`segment/time_scan.rs`).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// One offset-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel: u32,
    pub pos: u32,
}

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: u64,
    pub rel: u32,
}

/// The entry to start a walk for `rel`: the last entry at or before it (or the segment start).
pub(crate) fn lookup(entries: &[IndexEntry], rel: u32) -> IndexEntry {
    let i = entries.partition_point(|e| e.rel <= rel);
    if i == 0 {
        IndexEntry { rel: 0, pos: 0 }
    } else {
        entries[i - 1]
    }
}

pub(crate) fn encode_offset_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(entries.len() * 8);
    for e in entries {
        b.extend_from_slice(&e.rel.to_le_bytes());
        b.extend_from_slice(&e.pos.to_le_bytes());
    }
    b
}

pub(crate) fn encode_time_index(entries: &[TimeEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(entries.len() * 12);
    for e in entries {
        b.extend_from_slice(&e.ts.to_le_bytes());
        b.extend_from_slice(&e.rel.to_le_bytes());
    }
    b
}

/// Parses an offset index; `None` if its shape is damaged (size, ordering, positions beyond
/// `segment_len`).
pub(crate) fn decode_offset_index(b: &[u8], segment_len: u64) -> Option<Vec<IndexEntry>> {
    if !b.len().is_multiple_of(8) {
        return None;
    }
    let mut out: Vec<IndexEntry> = Vec::with_capacity(b.len() / 8);
    for c in b.chunks_exact(8) {
        let e = IndexEntry {
            rel: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            pos: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        };
        if u64::from(e.pos) >= segment_len {
            return None;
        }
        if let Some(p) = out.last() {
            if e.rel <= p.rel || e.pos <= p.pos {
                return None;
            }
        }
        out.push(e);
    }
    Some(out)
}

/// Parses a time index; `None` if damaged (size or ordering).
pub(crate) fn decode_time_index(b: &[u8]) -> Option<Vec<TimeEntry>> {
    if !b.len().is_multiple_of(12) {
        return None;
    }
    let mut out: Vec<TimeEntry> = Vec::with_capacity(b.len() / 12);
    for c in b.chunks_exact(12) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&c[..8]);
        let e = TimeEntry {
            ts: u64::from_le_bytes(ts),
            rel: u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
        };
        if let Some(p) = out.last() {
            if e.ts <= p.ts || e.rel <= p.rel {
                return None;
            }
        }
        out.push(e);
    }
    Some(out)
}

/// Writes `bytes` to `path` atomically (temp file, optional fsync, rename), so a crash leaves
/// either the old or the new index, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        if sync {
            f.sync_data().ctx("fsync", &tmp)?;
        }
    }
    fs::rename(&tmp, path).ctx("rename", path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry() {
        let e = [
            IndexEntry { rel: 3, pos: 100 },
            IndexEntry { rel: 10, pos: 400 },
        ];
        assert_eq!(lookup(&e, 0), IndexEntry { rel: 0, pos: 0 });
        assert_eq!(lookup(&e, 3), e[0]);
        assert_eq!(lookup(&e, 9), e[0]);
        assert_eq!(lookup(&e, 10), e[1]);
        assert_eq!(lookup(&e, 99), e[1]);
    }

    #[test]
    fn damaged_indexes_are_rejected() {
        let e = vec![
            IndexEntry { rel: 3, pos: 100 },
            IndexEntry { rel: 10, pos: 400 },
        ];
        let b = encode_offset_index(&e);
        assert_eq!(decode_offset_index(&b, 1000), Some(e.clone()));
        assert_eq!(decode_offset_index(&b, 400), None);
        assert_eq!(decode_offset_index(&b[..7], 1000), None);
        let swapped = encode_offset_index(&[e[1], e[0]]);
        assert_eq!(decode_offset_index(&swapped, 1000), None);
        let t = vec![TimeEntry { ts: 5, rel: 0 }, TimeEntry { ts: 9, rel: 4 }];
        assert_eq!(decode_time_index(&encode_time_index(&t)), Some(t));
    }
}
