//! The read path: finding the segments covering an offset and collecting records from them in
//! FETCH wire form, concurrently with appends, rolls and retention.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use bytes::{Bytes, BytesMut};

use super::{PartitionLog, ReadBatch};
use crate::error::{LogError, Result};
use crate::segment::Segment;

impl PartitionLog {
    /// Reads up to `max_records` records / `max_bytes` bytes (at least one record if any)
    /// starting at `offset`, as `n × (u32 LE len, Message)`. Reading at the high watermark
    /// returns an empty batch; below the log start offset or above the high watermark is
    /// `OffsetOutOfRange`. Sealed segments are served zero-copy from an mmap; the active one
    /// with one `pread`.
    pub fn read(&self, offset: u64, max_records: u32, max_bytes: u32) -> Result<ReadBatch> {
        let sh = &*self.shared;
        let hw = sh.hw.load(Ordering::Acquire);
        let start = sh.log_start.load(Ordering::Acquire);
        if offset < start || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: start,
                high_watermark: hw,
            });
        }
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut count = 0u32;
        let mut bytes = 0u64;
        let mut cur = offset;
        while cur < hw && count < max_records {
            let gone = || LogError::OffsetOutOfRange {
                offset: cur,
                log_start: self.log_start_offset(),
                high_watermark: self.high_watermark(),
            };
            // None: retention removed it between the check and now.
            let seg = self.segment_for(cur).ok_or_else(gone)?;
            let r = match seg.read(
                cur,
                max_records - count,
                u64::from(max_bytes).saturating_sub(bytes),
                chunks.is_empty(),
                sh.config.index_interval_bytes,
            ) {
                Ok(r) => r,
                // Deleted while we read (its file could not be reopened, say).
                Err(_) if seg.is_deleted() => return Err(gone()),
                Err(_) if sh.closed.load(Ordering::Acquire) => {
                    return Err(LogError::Closed {
                        path: sh.dir.clone(),
                    })
                }
                Err(e) => return Err(e),
            };
            if r.count == 0 {
                break;
            }
            count += r.count;
            bytes += r.bytes.len() as u64;
            cur = r.next_offset;
            chunks.push(r.bytes);
            if bytes >= u64::from(max_bytes) {
                break;
            }
        }
        let bytes = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                // Crossing a segment boundary: one copy to hand out a single contiguous buffer.
                let mut b = BytesMut::with_capacity(bytes as usize);
                for c in &chunks {
                    b.extend_from_slice(c);
                }
                b.freeze()
            }
        };
        let high_watermark = sh.hw.load(Ordering::Acquire).max(cur);
        Ok(ReadBatch {
            bytes,
            count,
            high_watermark,
        })
    }

    pub(super) fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let segs = self
            .shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let i = segs.partition_point(|s| s.base <= offset);
        if i == 0 {
            None
        } else {
            Some(segs[i - 1].clone())
        }
    }
}
