//! Lookups by time (Kafka's ListOffsets with a timestamp): the earliest offset whose record's
//! timestamp is at or after a target, and the earliest record with the largest timestamp.
//!
//! Timestamps are set by clients and need not grow with offsets, so, as in Kafka, the answer is
//! the first offset whose timestamp reaches the target, even when a later offset has a
//! timestamp closer to it. Each segment's largest timestamp (in memory) picks the first
//! segment holding such a record, and its time index narrows the walk inside it to one index
//! interval (`segment/time_scan.rs`). A lookup therefore costs a pass over the segment list in
//! memory plus reading and checking about `index_interval_bytes` and one record; more only
//! when it races appends or retention.
//!
//! Like `read.rs`, lookups run concurrently with appends, rolls and retention. The answer is
//! taken among the records below the high watermark at the call's start. A segment that
//! retention deletes meanwhile is passed over: its records are gone, so the answer is the one
//! the log now gives, in a later segment and below the high watermark loaded again then (the
//! log may have moved on by many segments while the lookup waited).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::PartitionLog;
use crate::error::{LogError, Result};
use crate::segment::Segment;

/// Lookups of the largest timestamp made before giving up on a log that keeps changing under
/// them (see [`PartitionLog::offset_of_max_timestamp`]).
const MAX_TIMESTAMP_ATTEMPTS: usize = 3;

impl PartitionLog {
    /// The earliest offset whose record has a timestamp of at least `timestamp_ms`, with that
    /// record's timestamp, as `(offset, timestamp_ms)`; `None` when no record below the high
    /// watermark (as loaded at the start of the call, or again after retention deleted a
    /// segment under the lookup) has one, including on an empty log.
    ///
    /// A caller that answers "no such record" with the high watermark should load it before
    /// this call: records appended after it was loaded are then at or after it.
    pub fn offset_for_timestamp(&self, timestamp_ms: u64) -> Result<Option<(u64, u64)>> {
        let sh = &*self.shared;
        let mut hw = sh.hw.load(Ordering::Acquire);
        let mut from = 0u64;
        while let Some(seg) = self.first_reaching(timestamp_ms, from) {
            if seg.base >= hw {
                break;
            }
            from = seg.base + 1;
            match seg.find_time(timestamp_ms, hw) {
                // Deleted by retention since (found below the log start now, or gone before
                // it could be read): the log has moved on while this lookup waited, maybe by
                // many segments, so the answer is taken among what it holds now.
                Ok(Some(_)) | Err(_) if seg.is_deleted() => {
                    hw = sh.hw.load(Ordering::Acquire);
                    continue;
                }
                Ok(Some(hit)) => return Ok(Some(hit)),
                // Only appends not yet below `hw` reach the target there (or, for the active
                // segment, none yet): a later segment may still hold an older record that does.
                Ok(None) => continue,
                Err(_) if sh.closed.load(Ordering::Acquire) => {
                    return Err(LogError::Closed {
                        path: sh.dir.clone(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The earliest record carrying the largest timestamp in the log (Kafka's MAX_TIMESTAMP),
    /// as `(offset, timestamp_ms)`; `None` on an empty log.
    ///
    /// Each segment's largest timestamp is known without reading, so this is a lookup by the
    /// largest of them and costs what [`PartitionLog::offset_for_timestamp`] does.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<(u64, u64)>> {
        // The lookup finds nothing only when the segment holding that timestamp went
        // (retention) or its record is not below the high watermark yet (an append between
        // publishing its timestamp and its offset). Both pass, so the largest timestamp is
        // taken again from what the log holds now.
        for _ in 0..MAX_TIMESTAMP_ATTEMPTS {
            let Some(max) = self.max_timestamp() else {
                return Ok(None);
            };
            if let Some(hit) = self.offset_for_timestamp(max)? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    /// The largest record timestamp of the non-empty segments.
    fn max_timestamp(&self) -> Option<u64> {
        self.shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.size() > 0)
            .map(|s| s.max_ts())
            .max()
    }

    /// The first segment with base offset `from` or later whose largest timestamp reaches
    /// `timestamp_ms`. A linear pass: timestamps need not grow from segment to segment, and the
    /// largest ones are in memory.
    fn first_reaching(&self, timestamp_ms: u64, from: u64) -> Option<Arc<Segment>> {
        let segs = self
            .shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let i = segs.partition_point(|s| s.base < from);
        segs[i..]
            .iter()
            .find(|s| s.max_ts() >= timestamp_ms)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Durability, LogConfig};
    use crate::record::Record;

    /// The walk for a target starts within one index interval of its answer, also where the
    /// largest timestamp stays flat for many intervals before the record that reaches the
    /// target (starting at the last time-index entry below the target would walk them all).
    #[test]
    fn the_walk_starts_within_one_index_interval_of_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Never,
            index_interval_bytes: 512,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), 0, config).unwrap();
        // Grows, stays flat for many intervals, jumps, drops, grows again.
        let ts: Vec<u64> = (0..4_000u64)
            .map(|i| match i {
                0..=99 => i,
                100..=1_999 => 100,
                2_000 => 10_000,
                2_001..=2_999 => 50 + i % 7,
                _ => 10_000 + i,
            })
            .collect();
        let value = [5u8; 50];
        let rec = |t: u64| Record {
            timestamp_ms: t,
            key: b"",
            value: &value,
            priority: 0,
            codec: 0,
        };
        for chunk in ts.chunks(10) {
            let recs: Vec<Record<'_>> = chunk.iter().map(|&t| rec(t)).collect();
            log.append(&recs).unwrap();
        }
        let records_per_interval = 512 / rec(0).frame_len() as u64 + 1;
        for sealed in [false, true] {
            if sealed {
                log.roll().unwrap();
            }
            let seg = log.segment_for(0).unwrap();
            let hw = log.high_watermark();
            for target in [1, 50, 99, 100, 101, 5_000, 10_000, 10_001, 12_000, 13_999] {
                let first = ts.iter().position(|&t| t >= target).unwrap() as u64;
                assert_eq!(
                    log.offset_for_timestamp(target).unwrap(),
                    Some((first, ts[first as usize]))
                );
                let start = u64::from(seg.time_start(target, hw).rel);
                assert!(
                    start <= first && first - start <= records_per_interval,
                    "sealed {sealed}, target {target}: walk from {start} to {first}"
                );
            }
        }
    }
}
