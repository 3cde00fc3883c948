//! Opening an existing segment at startup: the active segment is validated to its end (or,
//! after a clean shutdown, trusted by its marker and a check of its tail) and a torn or corrupt
//! tail cut; a sealed one loads its indexes, rebuilding them if missing or damaged.
//!
//! The work uses a descriptor of its own, closed again for sealed segments, so recovering a
//! store never holds more files open than the cache allows; the active segment's descriptor is
//! handed to the cache, since the first append needs it.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use memmap2::MmapOptions;

use super::scan::{scan, Scan};
use super::{paths, CleanMarker, Segment};
use crate::error::{IoContext, Result};
use crate::files::{FileCache, FileSlot};
use crate::index::{self, IndexEntry, TimeEntry};
use crate::record::MAX_MESSAGE_BYTES;

/// A segment opened by `Segment::open` with what recovery found.
pub(crate) struct Opened {
    pub seg: Segment,
    /// Writer state for the active segment.
    pub scan: Option<Scan>,
    /// Bytes cut from a torn/corrupt tail.
    pub truncated: u64,
    /// Bytes read by validation scans.
    pub scanned: u64,
    /// The active segment was accepted from the clean-shutdown marker: it was fsynced by that
    /// shutdown's flush and need not be fsynced again.
    pub clean: bool,
}

/// What recovery of one segment found, before the segment is handed out.
struct Outcome {
    scan: Option<Scan>,
    truncated: u64,
    scanned: u64,
    clean: bool,
}

impl Segment {
    /// Opens an existing segment. The active segment is fully scanned and a torn/corrupt tail
    /// truncated; a sealed one loads its indexes (rebuilding them if missing or damaged).
    /// Returns the segment, its scan state for the writer (active only) and recovery notes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        dir: &Path,
        base: u64,
        partition: u32,
        interval: u32,
        active: bool,
        clean: Option<&CleanMarker>,
        now_ms: u64,
        notes: &mut Vec<String>,
        files: &Arc<FileCache>,
    ) -> Result<Opened> {
        let p = paths(dir, base);
        let log_path = p.0.clone();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .ctx("open segment", &log_path)?;
        let len = file.metadata().ctx("stat", &log_path)?.len();
        let slot = FileSlot::new(files, log_path);
        let mut seg = Segment::with_parts(base, p, slot, partition, len, now_ms, !active);
        let o = seg.recover(&file, len, interval, active, clean, now_ms, notes)?;
        if active {
            seg.file.adopt(file);
        }
        Ok(Opened {
            seg,
            scan: o.scan,
            truncated: o.truncated,
            scanned: o.scanned,
            clean: o.clean,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn recover(
        &mut self,
        file: &File,
        len: u64,
        interval: u32,
        active: bool,
        clean: Option<&CleanMarker>,
        now_ms: u64,
        notes: &mut Vec<String>,
    ) -> Result<Outcome> {
        if let Some(m) = clean.filter(|m| active && m.base == self.base && m.size == len) {
            // Clean shutdown and unchanged since: trust the indexes written by that flush (if
            // they validate) instead of scanning the whole segment.
            if let Some((idx, time)) = self
                .load_indexes(file, len)
                .filter(|(idx, _)| self.tail_matches(file, idx, len, m.next_offset, interval))
            {
                self.max_ts.store(m.max_ts, Ordering::Relaxed);
                self.created_ms = m.created_ms.min(now_ms);
                *self.index.get_mut().unwrap_or_else(PoisonError::into_inner) = idx;
                *self.time.get_mut().unwrap_or_else(PoisonError::into_inner) = time;
                let scan = Scan {
                    valid_len: len,
                    next_offset: m.next_offset,
                    builder: m.builder(),
                    ..Scan::default()
                };
                return Ok(Outcome {
                    scan: Some(scan),
                    truncated: 0,
                    scanned: 0,
                    clean: true,
                });
            }
        }
        if active {
            let s = self.scan_file(file, len, interval)?;
            let mut truncated = 0;
            if s.valid_len < len {
                if s.zero_tail {
                    // Nothing a record was written into: not counted as truncated.
                    notes.push(format!(
                        "{}: cut {} bytes of zeros after the last record at position {} \
                         (space written ahead of appends)",
                        self.log_path.display(),
                        len - s.valid_len,
                        s.valid_len
                    ));
                } else {
                    truncated = len - s.valid_len;
                    notes.push(format!(
                        "{}: truncated {} bytes at position {} (offset {}): {}",
                        self.log_path.display(),
                        truncated,
                        s.valid_len,
                        s.next_offset,
                        s.bad.unwrap_or("trailing bytes")
                    ));
                }
                file.set_len(s.valid_len).ctx("truncate", &self.log_path)?;
                file.sync_all().ctx("fsync", &self.log_path)?;
            }
            self.size.store(s.valid_len, Ordering::Release);
            self.install_scan(&s, false);
            if let Some(ts) = s.first_ts {
                self.created_ms = ts.min(now_ms);
            }
            return Ok(Outcome {
                scan: Some(s),
                truncated,
                scanned: len,
                clean: false,
            });
        }
        let mut scanned = 0;
        match self.load_indexes(file, len) {
            Some((idx, time)) => {
                let max = time.last().map_or(0, |t| t.ts);
                self.max_ts.store(max, Ordering::Relaxed);
                self.created_ms = max.min(now_ms);
                *self.index.get_mut().unwrap_or_else(PoisonError::into_inner) = idx;
                *self.time.get_mut().unwrap_or_else(PoisonError::into_inner) = time;
            }
            None => {
                let s = self.scan_file(file, len, interval)?;
                scanned = len;
                notes.push(format!(
                    "{}: index missing or damaged, rebuilt from {} bytes",
                    self.log_path.display(),
                    s.valid_len
                ));
                if let Some(reason) = s.bad {
                    // A sealed segment is not truncated (later segments follow it); reads that
                    // reach the bad record fail with LogError::Corrupt instead.
                    notes.push(format!(
                        "{}: sealed segment has an invalid record at position {} (offset {}): {reason}; it will not be served",
                        self.log_path.display(),
                        s.valid_len,
                        s.next_offset
                    ));
                }
                self.install_scan(&s, true);
                self.write_indexes(true)?;
            }
        }
        Ok(Outcome {
            scan: None,
            truncated: 0,
            scanned,
            clean: false,
        })
    }

    /// Validates the records after the last index entry (at most one index interval plus a
    /// record) by length, offset and CRC, and checks they end exactly at `len` with
    /// `next_offset`.
    fn tail_matches(
        &self,
        file: &File,
        idx: &[IndexEntry],
        len: u64,
        next_offset: u64,
        interval: u32,
    ) -> bool {
        let start = idx.last().copied().unwrap_or(IndexEntry { rel: 0, pos: 0 });
        let Some(tail_len) = len.checked_sub(u64::from(start.pos)) else {
            return false;
        };
        if tail_len > u64::from(interval) + MAX_MESSAGE_BYTES as u64 {
            return false;
        }
        let mut buf = vec![0u8; tail_len as usize];
        if file.read_exact_at(&mut buf, u64::from(start.pos)).is_err() {
            return false;
        }
        let s = scan(
            &buf,
            self.base + u64::from(start.rel),
            self.partition,
            interval,
        );
        s.bad.is_none() && s.valid_len == tail_len && s.next_offset == next_offset
    }

    /// Reads and validates both index files; `None` if either is missing or damaged.
    fn load_indexes(&self, file: &File, len: u64) -> Option<(Vec<IndexEntry>, Vec<TimeEntry>)> {
        let idx = fs::read(&self.index_path)
            .ok()
            .and_then(|b| index::decode_offset_index(&b, len))
            .filter(|e| self.spot_check(file, e))?;
        let time = fs::read(&self.time_path)
            .ok()
            .and_then(|b| index::decode_time_index(&b))?;
        Some((idx, time))
    }

    fn scan_file(&self, file: &File, len: u64, interval: u32) -> Result<Scan> {
        if len == 0 {
            return Ok(Scan {
                next_offset: self.base,
                ..Scan::default()
            });
        }
        // SAFETY: the map is read-only and dropped before this function returns; no one else
        // writes this segment while it is being opened (the partition directory is ours).
        let map = unsafe { MmapOptions::new().len(len as usize).map(file) }
            .ctx("mmap", &self.log_path)?;
        Ok(scan(&map, self.base, self.partition, interval))
    }

    /// Installs a scan's indexes. Only a sealed segment gets the final time-index entry now;
    /// the active one gets it when it is sealed (adding it earlier would collide with the entry
    /// the next append may add at the same relative offset).
    fn install_scan(&mut self, s: &Scan, sealed: bool) {
        let mut time = s.time.clone();
        if sealed {
            if let Some(t) = s
                .builder
                .final_time_entry((s.next_offset - self.base) as u32)
            {
                if time.last().is_none_or(|l| t.rel > l.rel) {
                    time.push(t);
                }
            }
        }
        self.max_ts.store(s.builder.max_ts(), Ordering::Relaxed);
        *self.index.get_mut().unwrap_or_else(PoisonError::into_inner) = s.index.clone();
        *self.time.get_mut().unwrap_or_else(PoisonError::into_inner) = time;
    }

    /// Checks that the last index entry points at the record it names.
    fn spot_check(&self, file: &File, idx: &[IndexEntry]) -> bool {
        let Some(e) = idx.last() else { return true };
        let mut head = [0u8; 12];
        if file.read_exact_at(&mut head, u64::from(e.pos)).is_err() {
            return false;
        }
        let mut off = [0u8; 8];
        off.copy_from_slice(&head[4..12]);
        u64::from_le_bytes(off) == self.base + u64::from(e.rel)
    }
}
