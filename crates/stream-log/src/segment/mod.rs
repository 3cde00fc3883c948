//! One segment: a `.log` file of stored frames starting at `base` offset, with its sparse offset
//! index and time index. The active (last) segment is appended to with `pwrite`; sealed segments
//! are immutable and read through a shared read-only mmap (zero-copy `Bytes`).
//!
//! A segment does not own a descriptor: its file is reached through a [`FileSlot`] of the
//! store's open-file cache and reopened on a miss. This file holds the type, creation and the
//! writer's bookkeeping; recovery of an existing segment is in `recover.rs` (using the scan in
//! `scan.rs`), reads in `read.rs`, finding a record by timestamp in `time_scan.rs`, the index
//! builder and the clean-shutdown marker in their own files.

mod index_builder;
mod marker;
mod read;
mod recover;
mod scan;
mod time_scan;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use memmap2::Mmap;

use crate::error::{IoContext, LogError, Result};
use crate::files::{FileCache, FileSlot};
use crate::index::{self, IndexEntry, TimeEntry};

pub(crate) use index_builder::IndexBuilder;
pub(crate) use marker::CleanMarker;

/// File name stem of a segment: the base offset, zero-padded to 20 digits so names sort.
pub(crate) fn file_stem(base: u64) -> String {
    format!("{base:020}")
}

/// One segment's files and in-memory indexes.
pub(crate) struct Segment {
    pub base: u64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_path: PathBuf,
    file: Arc<FileSlot>,
    partition: u32,
    /// Bytes readable by readers (published with Release after each write).
    size: AtomicU64,
    index: RwLock<Vec<IndexEntry>>,
    time: Mutex<Vec<TimeEntry>>,
    /// Largest record timestamp (0 if empty).
    max_ts: AtomicU64,
    /// Wall-clock or first-record time the segment started (for age-based roll).
    pub created_ms: u64,
    sealed: AtomicBool,
    /// Set before retention unlinks the files: a reader that then fails to reopen the file
    /// reports the offset as gone rather than a disk error.
    deleted: AtomicBool,
    /// Created on the first read of a sealed segment; holds no descriptor.
    map: Mutex<Option<Arc<Mmap>>>,
}

fn paths(dir: &Path, base: u64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = file_stem(base);
    (
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.index")),
        dir.join(format!("{stem}.timeindex")),
    )
}

impl Segment {
    #[allow(clippy::too_many_arguments)]
    fn with_parts(
        base: u64,
        (log_path, index_path, time_path): (PathBuf, PathBuf, PathBuf),
        file: Arc<FileSlot>,
        partition: u32,
        size: u64,
        created_ms: u64,
        sealed: bool,
    ) -> Segment {
        Segment {
            base,
            log_path,
            index_path,
            time_path,
            file,
            partition,
            size: AtomicU64::new(size),
            index: RwLock::new(Vec::new()),
            time: Mutex::new(Vec::new()),
            max_ts: AtomicU64::new(0),
            created_ms,
            sealed: AtomicBool::new(sealed),
            deleted: AtomicBool::new(false),
            map: Mutex::new(None),
        }
    }

    /// Creates a new, empty segment file (fails if it exists); its descriptor joins the cache.
    pub(crate) fn create(
        dir: &Path,
        base: u64,
        partition: u32,
        now_ms: u64,
        files: &Arc<FileCache>,
    ) -> Result<Segment> {
        let (log_path, index_path, time_path) = paths(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log_path)
            .ctx("create segment", &log_path)?;
        // Stale indexes from an earlier segment of the same base (truncated away) must not be
        // trusted later.
        let _ = fs::remove_file(&index_path);
        let _ = fs::remove_file(&time_path);
        let slot = FileSlot::with_file(files, log_path.clone(), file);
        Ok(Segment::with_parts(
            base,
            (log_path, index_path, time_path),
            slot,
            partition,
            0,
            now_ms,
            false,
        ))
    }

    /// The segment's open file (reopened if the cache closed it).
    pub(crate) fn file(&self) -> Result<Arc<File>> {
        self.file.get()
    }

    /// `fdatasync` of the segment file.
    pub(crate) fn sync_data(&self) -> Result<()> {
        debug_assert_eq!(self.file.path(), self.log_path.as_path());
        self.file()?.sync_data().ctx("fsync", &self.log_path)
    }

    /// Bytes readable now.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::Relaxed)
    }

    /// True once retention (or a topic delete) removed the files.
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Publishes a completed write (called by the single writer, under the append lock).
    pub(crate) fn publish(
        &self,
        new_size: u64,
        idx: &[IndexEntry],
        time: &[TimeEntry],
        max_ts: u64,
    ) {
        if !idx.is_empty() {
            self.index
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(idx);
        }
        if !time.is_empty() {
            self.time
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(time);
        }
        self.max_ts.fetch_max(max_ts, Ordering::Relaxed);
        self.size.store(new_size, Ordering::Release);
    }

    /// Marks the segment immutable and records the final time-index entry.
    pub(crate) fn seal(&self, last: Option<TimeEntry>) {
        if let Some(t) = last {
            let mut time = self.time.lock().unwrap_or_else(PoisonError::into_inner);
            if time.last().is_none_or(|l| t.rel > l.rel && t.ts > l.ts) {
                time.push(t);
            }
        }
        self.sealed.store(true, Ordering::Release);
    }

    /// Writes both index files (atomically; fsynced when `sync`).
    pub(crate) fn write_indexes(&self, sync: bool) -> Result<()> {
        let idx =
            index::encode_offset_index(&self.index.read().unwrap_or_else(PoisonError::into_inner));
        let time =
            index::encode_time_index(&self.time.lock().unwrap_or_else(PoisonError::into_inner));
        index::write_atomic(&self.index_path, &idx, sync)?;
        index::write_atomic(&self.time_path, &time, sync)?;
        Ok(())
    }

    /// Closes the cached descriptor (a sealed segment already mapped, or a deleted topic's).
    pub(crate) fn release_file(&self) {
        self.file.close();
    }

    /// Removes the segment's files and closes its descriptor. Reads already holding the mmap
    /// or the file keep working; later ones see the segment as deleted.
    pub(crate) fn delete_files(&self) -> Result<()> {
        self.deleted.store(true, Ordering::Release);
        self.file.close();
        for p in [&self.log_path, &self.index_path, &self.time_path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("delete", p, e)),
            }
        }
        Ok(())
    }

    fn corrupt(&self, position: u64, offset: u64, reason: &'static str) -> LogError {
        LogError::Corrupt {
            path: self.log_path.clone(),
            position,
            offset,
            reason,
        }
    }
}

#[cfg(test)]
impl Segment {
    /// A copy of the offset index (tests).
    pub(crate) fn index_snapshot(&self) -> Vec<IndexEntry> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
