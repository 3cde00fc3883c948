//! When to add sparse index entries: one state machine shared by appends and recovery scans,
//! so both build the same offset and time index for the same bytes.

use crate::index::{IndexEntry, TimeEntry};

/// Tracks the bytes since the last index entry and the largest timestamps seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexBuilder {
    pub(super) bytes_since: u64,
    pub(super) max_ts: u64,
    pub(super) last_time_ts: u64,
}

impl IndexBuilder {
    /// Called before a record at (`rel`, `pos`) is stored; may emit index entries.
    pub(crate) fn before(
        &mut self,
        interval: u32,
        rel: u32,
        pos: u32,
        idx: &mut Vec<IndexEntry>,
        time: &mut Vec<TimeEntry>,
    ) {
        if self.bytes_since >= u64::from(interval) {
            idx.push(IndexEntry { rel, pos });
            if self.max_ts > self.last_time_ts {
                time.push(TimeEntry {
                    ts: self.max_ts,
                    rel,
                });
                self.last_time_ts = self.max_ts;
            }
            self.bytes_since = 0;
        }
    }

    /// Called after a record of `len` bytes with `ts` is stored.
    pub(crate) fn after(&mut self, len: usize, ts: u64) {
        self.bytes_since += len as u64;
        self.max_ts = self.max_ts.max(ts);
    }

    /// The final time-index entry for a segment ending before relative offset `end_rel`.
    pub(crate) fn final_time_entry(&self, end_rel: u32) -> Option<TimeEntry> {
        (self.max_ts > self.last_time_ts).then_some(TimeEntry {
            ts: self.max_ts,
            rel: end_rel,
        })
    }

    /// Largest record timestamp seen.
    pub(crate) fn max_ts(&self) -> u64 {
        self.max_ts
    }
}
