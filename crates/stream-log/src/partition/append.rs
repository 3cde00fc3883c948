//! The write path: encoding a batch, the one `pwrite`, publishing the new high watermark, and
//! rolling to a new segment. Appends never start an fsync (group commit is demand-driven, see
//! `sync.rs`), except under `EveryWrite`, whose append waits for one.
//!
//! Under the fsync policies the active segment's file is extended with zeros ahead of its
//! records ([`preallocation`]): an fdatasync after an append that grows the file must also
//! write the file's size and its new blocks' allocation, one more synchronous write, so
//! overwriting zeros already on disk makes each group commit's fsync about half as long. The
//! file is cut back to its records when the segment is sealed or flushed, and recovery cuts a
//! zero tail (`segment/recover.rs`), so the zeros are never read as records.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::{now_ms, sync_dir, Appended, PartitionLog, Writer};
use crate::config::{Durability, MAX_SEGMENT_BYTES};
use crate::error::{LogError, Result};
use crate::index::{IndexEntry, TimeEntry};
use crate::lock;
use crate::record::{encode_into, Record};
use crate::segment::{CleanMarker, IndexBuilder, Segment};

/// The active segment starts preallocating once it holds this much: a quiet partition costs
/// no disk beyond its records.
const PREALLOCATE_AFTER: u64 = 64 << 10;
/// The most zeros written ahead of a segment's records.
pub const MAX_PREALLOCATION: u64 = 1 << 20;

/// How far ahead of `size` bytes of records the file is extended once the records reach the
/// end of what was allocated: a quarter of the records, at most [`MAX_PREALLOCATION`], so the
/// space a partition holds beyond its records is bounded by both.
pub(crate) fn preallocation(size: u64) -> u64 {
    if size < PREALLOCATE_AFTER {
        0
    } else {
        (size / 4).min(MAX_PREALLOCATION)
    }
}

/// Writes zeros over `from..to` of `file`.
fn write_zeros(file: &std::fs::File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl PartitionLog {
    /// Appends the batch with one `pwrite` and assigns consecutive offsets. Returns once the
    /// bytes are in the page cache (and, under [`Durability::EveryWrite`], fsynced). The
    /// append lock is never held during an fsync except when a segment rolls.
    pub fn append(&self, records: &[Record<'_>]) -> Result<Appended> {
        let sh = &*self.shared;
        if records.is_empty() {
            return Err(LogError::InvalidConfig("append of an empty batch".into()));
        }
        let mut batch_len = 0usize;
        for r in records {
            batch_len += r.checked_len()?;
        }
        if batch_len as u64 > MAX_SEGMENT_BYTES {
            return Err(LogError::RecordTooLarge {
                size: batch_len,
                max: MAX_SEGMENT_BYTES as usize,
            });
        }
        let mut guard = lock(&sh.writer);
        let w = &mut *guard;
        if sh.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed {
                path: sh.dir.clone(),
            });
        }
        if let Some(reason) = &w.failed {
            return Err(LogError::Failed {
                path: sh.dir.clone(),
                reason: reason.clone(),
            });
        }
        let now = now_ms();
        let size = w.active.size();
        if size > 0
            && (size + batch_len as u64 > sh.config.segment_bytes
                || now.saturating_sub(w.active.created_ms) >= sh.config.segment_ms)
        {
            self.roll_locked(w, now)?;
        }
        if w.marker_current {
            // The marker stops describing the log with this write. Should the removal fail,
            // the marker is still harmless: it only applies to a segment of exactly its size.
            let _ = std::fs::remove_file(sh.dir.join(CleanMarker::FILE));
            w.marker_current = false;
        }
        let seg = w.active.clone();
        let file = seg.file()?;
        let pos = seg.size();
        let base = w.next_offset;
        let saved_builder = w.builder.clone();
        let mut idx: Vec<IndexEntry> = Vec::new();
        let mut time: Vec<TimeEntry> = Vec::new();
        w.buf.clear();
        w.buf.reserve(batch_len);
        for (i, r) in records.iter().enumerate() {
            let offset = base + i as u64;
            let rel = (offset - seg.base) as u32;
            let at = pos + w.buf.len() as u64;
            w.builder.before(
                sh.config.index_interval_bytes,
                rel,
                at as u32,
                &mut idx,
                &mut time,
            );
            encode_into(&mut w.buf, offset, sh.partition, r);
            w.builder.after(r.frame_len(), r.timestamp_ms);
        }
        let end = pos + w.buf.len() as u64;
        if end > w.allocated && sh.config.durability.acks_after_fsync() {
            let ahead = preallocation(end);
            if ahead > 0 {
                // Zeros first, then the records over their start: the file never holds
                // records beyond zeros it does not have yet. A failure (a full disk) only
                // costs the speed-up; the append below reports its own.
                let before = w.allocated.max(pos);
                match write_zeros(&file, w.allocated.max(end), end + ahead) {
                    Ok(()) => w.allocated = end + ahead,
                    Err(e) => {
                        // Give the space back to the records' own write. Should even that
                        // fail, zeros may reach as far as asked: the roll and the flush then
                        // still cut the file back to its records.
                        if file.set_len(before).is_err() {
                            w.allocated = end + ahead;
                        }
                        tracing::debug!("preallocating {}: {e}", seg.log_path.display());
                    }
                }
            }
        }
        if let Err(e) = file.write_all_at(&w.buf, pos) {
            w.builder = saved_builder;
            // Cut any partial write (and the zeros ahead) so the next append starts at a clean
            // boundary; if even that fails, stop accepting appends (recovery on reopen
            // truncates the tail).
            match file.set_len(pos) {
                Ok(()) => w.allocated = pos,
                Err(e2) => {
                    w.failed = Some(format!("write failed ({e}) and truncate failed ({e2})"))
                }
            }
            return Err(LogError::io("write", &seg.log_path, e));
        }
        drop(file);
        let n = records.len() as u64;
        seg.publish(pos + w.buf.len() as u64, &idx, &time, w.builder.max_ts());
        w.next_offset = base + n;
        if sh.config.durability != Durability::Never {
            // Before the high watermark moves: a waiter that sees an offset appended must find
            // it counted as written, or its demand could name data no fsync is about to cover.
            let mut s = lock(&sh.sync);
            s.written = base + n;
            if !Arc::ptr_eq(&s.active, &seg) {
                s.active = seg;
            }
        }
        sh.hw.store(base + n, Ordering::Release);
        sh.hw_tx.send_replace(base + n);
        let appended = Appended {
            base_offset: base,
            last_offset: base + n - 1,
        };
        if w.buf.capacity() > (4 << 20) {
            // Do not keep a huge buffer around after one large batch.
            w.buf = Vec::new();
        }
        drop(guard);
        if sh.config.durability == Durability::EveryWrite {
            self.wait_durable_blocking(appended.last_offset)?;
        }
        Ok(appended)
    }

    /// Seals the active segment and starts a new one (no-op if the active one is empty).
    pub fn roll(&self) -> Result<()> {
        let mut w = lock(&self.shared.writer);
        if w.active.size() == 0 {
            return Ok(());
        }
        self.roll_locked(&mut w, now_ms())
    }

    /// Order matters: nothing changes until the new segment exists (and, for fsync policies,
    /// its directory entry is durable), so a failure (e.g. a full disk) leaves the old segment
    /// active and writable and the next append retries the roll.
    fn roll_locked(&self, w: &mut Writer, now: u64) -> Result<()> {
        let sh = &*self.shared;
        let sync = sh.config.durability != Durability::Never;
        let old = w.active.clone();
        if sync {
            // Sealed segments are durable before the next one gets records, so the workers only
            // ever have to fsync the active segment.
            // Not being able to open the file (out of descriptors) changes nothing on disk:
            // the append fails and the next one retries. A failed fsync is different.
            let file = old.file()?;
            // A sealed segment's file holds exactly its records (its readers map that much).
            if w.allocated > old.size() {
                file.set_len(old.size())
                    .map_err(|e| LogError::io("truncate", &old.log_path, e))?;
                w.allocated = old.size();
            }
            if let Err(e) = file.sync_data() {
                // After a failed fsync nothing unsynced can be promised any more.
                w.failed = Some(format!("fsync {}: {e}", old.log_path.display()));
                return Err(LogError::io("fsync", &old.log_path, e));
            }
        }
        let seg = Arc::new(Segment::create(
            &sh.dir,
            w.next_offset,
            sh.partition,
            now,
            &sh.res.files,
        )?);
        if sync {
            if let Err(e) = sync_dir(&sh.dir) {
                let _ = seg.delete_files();
                return Err(e);
            }
        }
        old.seal(
            w.builder
                .final_time_entry((w.next_offset - old.base) as u32),
        );
        if let Err(e) = old.write_indexes(sync) {
            // Indexes are rebuilt from the segment on the next open; not worth failing for.
            tracing::warn!("writing indexes of a sealed segment: {e}");
        }
        // Sealed: read through a mapping from now on, its descriptor is not needed.
        old.release_file();
        sh.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seg.clone());
        w.active = seg;
        w.builder = IndexBuilder::default();
        w.marker_current = false;
        w.allocated = 0;
        Ok(())
    }
}
