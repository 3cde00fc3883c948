//! One partition's log: a directory of segments written by a single appender, read
//! concurrently, made durable by the store's shared fsync workers and trimmed by retention.
//!
//! This file holds the type, its shared state and opening (with recovery); the jobs live in
//! `append.rs` (the write path and segment roll), `read.rs`, `time_lookup.rs` (offsets by
//! timestamp), `sync.rs` (durability waits, the fsync step the workers run, flush) and
//! `retention.rs`.
//!
//! A log costs no thread and, between uses, no descriptor: fsyncs run on the store's
//! [`crate::sync::SyncPool`] and files are reached through the store's open-file cache.

mod append;

pub use append::MAX_PREALLOCATION;
mod read;
mod retention;
mod sync;
mod time_lookup;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use crate::config::{Durability, LogConfig};
use crate::error::{IoContext, Result};
use crate::resources::Resources;
use crate::segment::{CleanMarker, IndexBuilder, Segment};
use crate::sync::SyncJob;

/// Offsets assigned to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
}

/// Records read from a log, in STRP FETCH wire form: `count × (u32 LE len, Message)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    /// The records' bytes, ready to be written to a socket as they are.
    pub bytes: Bytes,
    /// Number of records in `bytes`.
    pub count: u32,
    /// The high watermark when the read finished (at least one past the last record read).
    pub high_watermark: u64,
}

/// What recovery on open found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found.
    pub segments: usize,
    /// Bytes cut from the tail of the active segment (torn or corrupt records).
    pub truncated_bytes: u64,
    /// Human-readable notes: each truncation and each index rebuild.
    pub notes: Vec<String>,
    /// The log start offset after recovery.
    pub log_start_offset: u64,
    /// The high watermark after recovery.
    pub high_watermark: u64,
    /// Bytes read by validation scans (0 after a clean shutdown with intact indexes).
    pub scanned_bytes: u64,
}

impl RecoveryReport {
    /// True if anything was cut or rebuilt.
    pub fn is_clean(&self) -> bool {
        self.notes.is_empty()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// State owned by the single appender (behind the append lock).
struct Writer {
    active: Arc<Segment>,
    next_offset: u64,
    builder: IndexBuilder,
    buf: Vec<u8>,
    failed: Option<String>,
    /// The clean-shutdown marker on disk describes the log as it is (nothing appended or
    /// rolled since the flush that wrote it): a flush has nothing to do, and an idle partition
    /// costs no fsyncs at shutdown nor a scan at the next start.
    marker_current: bool,
    /// Length of the active segment's file: its records, then zeros written ahead of them
    /// (see `append.rs`, [`preallocation`](append::preallocation)).
    allocated: u64,
}

/// Durability bookkeeping shared by appenders, waiters and the fsync workers.
struct SyncState {
    /// Offset after the last record written to the page cache.
    written: u64,
    /// Segment holding the newest records (earlier segments were fsynced when they rolled).
    active: Arc<Segment>,
    /// Offset after the last record known durable.
    durable: u64,
    /// A sticky fsync failure: nothing after `durable` can be promised any more.
    error: Option<String>,
    /// Offset after the last record somebody waits for: an fsync runs only for demand, so
    /// appends arriving together share it.
    demand: u64,
    /// In the pool's queue or being fsynced now: a new wait only raises `demand`, and the
    /// worker queues the log again after its fsync if `demand` is still ahead of `durable`.
    queued: bool,
    /// Fsync attempts that could not run (the file could not be opened, e.g. the process is
    /// out of descriptors). Unlike `error` not sticky: nothing on disk changed, so only the
    /// waiters registered before the failure are told.
    failures: u64,
    /// Why the last such attempt failed.
    last_failure: Option<String>,
}

/// What async waiters watch: durable offset or a sticky fsync error.
#[derive(Debug, Clone, Default)]
struct DurableView {
    durable: u64,
    error: Option<Arc<str>>,
    failures: u64,
    last_failure: Option<Arc<str>>,
}

struct Shared {
    dir: PathBuf,
    partition: u32,
    config: LogConfig,
    res: Resources,
    writer: Mutex<Writer>,
    segments: RwLock<Vec<Arc<Segment>>>,
    hw: AtomicU64,
    log_start: AtomicU64,
    hw_tx: watch::Sender<u64>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    durable_tx: watch::Sender<DurableView>,
    closed: AtomicBool,
    fsyncs: AtomicU64,
}

/// One partition's log. `Send + Sync`: appends are serialised by an internal lock, reads run
/// concurrently with them and with each other.
pub struct PartitionLog {
    shared: Arc<Shared>,
    report: RecoveryReport,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.shared.dir)
            .field("partition", &self.shared.partition)
            .field("high_watermark", &self.high_watermark())
            .finish()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, running recovery: the active segment's tail
    /// is validated by length and CRC and a torn or corrupt tail truncated; missing or damaged
    /// indexes of sealed segments are rebuilt. See [`PartitionLog::recovery_report`].
    ///
    /// A log opened this way (outside a [`crate::TopicStore`]) shares the process-wide fsync
    /// workers and open-file cache with every other such log.
    pub fn open(dir: &Path, partition: u32, config: LogConfig) -> Result<PartitionLog> {
        let res = Resources::process_wide()?;
        PartitionLog::open_in(dir, partition, config, &res)
    }

    /// [`PartitionLog::open`] with the workers and file cache of a store.
    pub(crate) fn open_in(
        dir: &Path,
        partition: u32,
        config: LogConfig,
        res: &Resources,
    ) -> Result<PartitionLog> {
        config.validate()?;
        fs::create_dir_all(dir).ctx("create directory", dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).ctx("list directory", dir)? {
            let entry = entry.ctx("list directory", dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                // An index write interrupted by a crash.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<u64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let marker_path = dir.join(CleanMarker::FILE);
        let clean = fs::read_to_string(&marker_path)
            .ok()
            .and_then(|t| CleanMarker::parse(&t));
        let now = now_ms();
        let sync_meta = config.durability != Durability::Never;
        let mut notes = Vec::new();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut truncated_bytes = 0;
        let mut scanned_bytes = 0;
        let mut active_scan = None;
        // What recovery found is on disk after a clean shutdown (that flush fsynced it) or a
        // truncation (fsynced then); untouched bytes after a process crash may still sit in
        // the page cache only, so those are fsynced once below.
        let mut active_durable = true;
        let mut marker_current = false;
        for (i, &base) in bases.iter().enumerate() {
            let active = i + 1 == bases.len();
            let o = Segment::open(
                dir,
                base,
                partition,
                config.index_interval_bytes,
                active,
                clean.as_ref(),
                now,
                &mut notes,
                &res.files,
            )?;
            truncated_bytes += o.truncated;
            scanned_bytes += o.scanned;
            if active {
                active_scan = o.scan;
                active_durable = o.clean || o.truncated > 0 || o.seg.size() == 0;
                marker_current = o.clean;
            }
            segments.push(Arc::new(o.seg));
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(
                dir, 0, partition, now, &res.files,
            )?));
            if sync_meta {
                sync_dir(dir)?;
            }
        }
        if !marker_current {
            // Describes nothing any more; kept it would be ignored anyway (its size no longer
            // matches), but it is removed so it cannot mislead.
            let _ = fs::remove_file(&marker_path);
        }
        let active = segments[segments.len() - 1].clone();
        if sync_meta && !active_durable {
            active.sync_data()?;
        }
        let (next_offset, builder) = match active_scan {
            Some(s) => (s.next_offset, s.builder),
            None => (active.base, IndexBuilder::default()),
        };
        let log_start = segments[0].base;
        let report = RecoveryReport {
            segments: segments.len(),
            truncated_bytes,
            notes,
            log_start_offset: log_start,
            high_watermark: next_offset,
            scanned_bytes,
        };
        for n in &report.notes {
            tracing::warn!(dir = %dir.display(), partition, "recovery: {n}");
        }
        let (hw_tx, _) = watch::channel(next_offset);
        let (durable_tx, _) = watch::channel(DurableView {
            durable: next_offset,
            ..DurableView::default()
        });
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            partition,
            res: res.clone(),
            writer: Mutex::new(Writer {
                active: active.clone(),
                next_offset,
                builder,
                // Grown by the first append: an idle partition costs no buffer.
                buf: Vec::new(),
                failed: None,
                marker_current,
                // Recovery cut the file to its records.
                allocated: active.size(),
            }),
            segments: RwLock::new(segments),
            hw: AtomicU64::new(next_offset),
            log_start: AtomicU64::new(log_start),
            hw_tx,
            sync: Mutex::new(SyncState {
                written: next_offset,
                active,
                durable: next_offset,
                error: None,
                demand: 0,
                queued: false,
                failures: 0,
                last_failure: None,
            }),
            sync_cv: Condvar::new(),
            durable_tx,
            closed: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
            config,
        });
        if let Durability::Interval(period) = shared.config.durability {
            let weak: Weak<dyn SyncJob> = Arc::downgrade(&shared) as Weak<dyn SyncJob>;
            res.sync.register_interval(weak, period);
        }
        Ok(PartitionLog { shared, report })
    }

    /// What recovery found when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The partition id stored in every record.
    pub fn partition(&self) -> u32 {
        self.shared.partition
    }

    /// The directory holding this log's segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The durability policy in force.
    pub fn durability(&self) -> Durability {
        self.shared.config.durability
    }

    /// The next offset to be assigned.
    pub fn high_watermark(&self) -> u64 {
        self.shared.hw.load(Ordering::Acquire)
    }

    /// The first offset still stored (moves forward with retention).
    pub fn log_start_offset(&self) -> u64 {
        self.shared.log_start.load(Ordering::Acquire)
    }

    /// Bytes of record data on disk (indexes excluded).
    pub fn size_bytes(&self) -> u64 {
        let segs = self
            .shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        segs.iter().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// A receiver of the high watermark; `changed()` wakes when appends move it (long-poll
    /// fetches wait on it instead of spinning).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.hw_tx.subscribe()
    }

    /// Refuses further appends, makes what was appended durable for its waiters, and closes
    /// the log's cached descriptors (used when the topic is deleted: its files are about to
    /// go).
    pub fn close(&self) {
        {
            // Under the append lock: no append is half done when appends stop.
            let _appends = crate::lock(&self.shared.writer);
            self.shared.closed.store(true, Ordering::Release);
        }
        self.shared.sync_unsynced("before closing");
        for s in self
            .shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            s.release_file();
        }
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        // What the old per-log syncer thread did on its way out: make appended data durable
        // (for the fsync policies) even if nobody waited for it.
        self.shared.sync_unsynced("on drop");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexEntry;
    use crate::record::Record;

    fn rec(v: &[u8]) -> Record<'_> {
        Record {
            timestamp_ms: 1,
            key: b"",
            value: v,
            priority: 2,
            codec: 0,
        }
    }

    #[test]
    fn random_read_walks_at_most_one_index_interval() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            durability: Durability::Never,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), 0, cfg).unwrap();
        let v = [7u8; 100];
        for _ in 0..100 {
            log.append(&[rec(&v); 100]).unwrap();
        }
        let seg = log.segment_for(0).unwrap();
        let idx = seg_index_len(&seg);
        // 10_000 records × 134 bytes, one entry per >= 1024 bytes.
        assert!(idx >= 10_000 * 134 / (1024 + 134), "{idx} entries");
        for off in [0u64, 1, 4_999, 9_999] {
            let e = crate::index::lookup(&seg_index(&seg), off as u32);
            // The walk from the index entry to the record skips fewer than interval+1 records.
            let skipped_bytes = (off - u64::from(e.rel)) * 134;
            assert!(skipped_bytes <= 1024 + 134, "offset {off}: {skipped_bytes}");
            let b = log.read(off, 1, 1).unwrap();
            assert_eq!(b.count, 1);
        }
    }

    fn seg_index(seg: &Segment) -> Vec<IndexEntry> {
        seg.index_snapshot()
    }

    fn seg_index_len(seg: &Segment) -> usize {
        seg.index_snapshot().len()
    }
}
