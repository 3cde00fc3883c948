//! One partition's log: a directory of segments, the single-writer append path, concurrent
//! reads, the durability machinery (syncer thread) and retention.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::config::{Durability, LogConfig, MAX_SEGMENT_BYTES};
use crate::error::{IoContext, LogError, Result};
use crate::index::{IndexEntry, TimeEntry};
use crate::record::{encode_into, Record, MAX_MESSAGE_BYTES};
use crate::segment::{CleanMarker, IndexBuilder, Segment};

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not turn every later call into a panic; the protected state is
    // kept consistent by each critical section.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State owned by the single appender (behind the append lock).
struct Writer {
    active: Arc<Segment>,
    next_offset: u64,
    builder: IndexBuilder,
    buf: Vec<u8>,
    failed: Option<String>,
}

/// Durability bookkeeping shared by appenders, waiters and the syncer thread.
struct SyncState {
    /// Offset after the last record written to the page cache.
    written: u64,
    /// Segment holding the newest records (earlier segments were fsynced when they rolled).
    active: Arc<Segment>,
    /// Offset after the last record known durable.
    durable: u64,
    error: Option<String>,
    shutdown: bool,
    /// The syncer is parked waiting for work: only then does an append pay for a wake-up.
    syncer_idle: bool,
    /// Threads blocked in `wait_durable_blocking` (woken by the syncer after each fsync).
    blocked: usize,
}

/// What async waiters watch: durable offset or a sticky fsync error.
#[derive(Debug, Clone, Default)]
struct DurableView {
    durable: u64,
    error: Option<Arc<str>>,
}

struct Shared {
    dir: PathBuf,
    partition: u32,
    config: LogConfig,
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
    syncer: Option<JoinHandle<()>>,
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
    pub fn open(dir: &Path, partition: u32, config: LogConfig) -> Result<PartitionLog> {
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
        // Used at most once: removed now, rewritten by the next flush.
        let marker_path = dir.join(CleanMarker::FILE);
        let clean = fs::read_to_string(&marker_path)
            .ok()
            .and_then(|t| CleanMarker::parse(&t));
        let _ = fs::remove_file(&marker_path);
        let now = now_ms();
        let sync_meta = config.durability != Durability::Never;
        let mut notes = Vec::new();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut truncated_bytes = 0;
        let mut scanned_bytes = 0;
        let mut active_scan = None;
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
            )?;
            truncated_bytes += o.truncated;
            scanned_bytes += o.scanned;
            if active {
                active_scan = o.scan;
            }
            segments.push(Arc::new(o.seg));
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(dir, 0, partition, now)?));
            if sync_meta {
                sync_dir(dir)?;
            }
        }
        let active = segments[segments.len() - 1].clone();
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
            error: None,
        });
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            partition,
            writer: Mutex::new(Writer {
                active: active.clone(),
                next_offset,
                builder,
                buf: Vec::with_capacity(64 << 10),
                failed: None,
            }),
            segments: RwLock::new(segments),
            hw: AtomicU64::new(next_offset),
            log_start: AtomicU64::new(log_start),
            hw_tx,
            sync: Mutex::new(SyncState {
                written: next_offset,
                active,
                // What recovery found is on disk now (a truncation was fsynced; untouched bytes
                // may still sit in the page cache after a process crash, so sync them once).
                durable: next_offset,
                error: None,
                shutdown: false,
                syncer_idle: false,
                blocked: 0,
            }),
            sync_cv: Condvar::new(),
            durable_tx,
            closed: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
            config,
        });
        if sync_meta {
            let a = lock(&shared.sync).active.clone();
            a.file.sync_data().ctx("fsync", &a.log_path)?;
        }
        let syncer = match shared.config.durability {
            Durability::Never => None,
            _ => {
                let s = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name(format!("log-sync-{partition}"))
                        .spawn(move || syncer_loop(&s))
                        .ctx("spawn syncer thread", dir)?,
                )
            }
        };
        Ok(PartitionLog {
            shared,
            syncer,
            report,
        })
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
            let n = r.frame_len();
            if n > MAX_MESSAGE_BYTES {
                return Err(LogError::RecordTooLarge {
                    size: n,
                    max: MAX_MESSAGE_BYTES,
                });
            }
            batch_len += n;
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
        let seg = w.active.clone();
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
        if let Err(e) = seg.file.write_all_at(&w.buf, pos) {
            w.builder = saved_builder;
            // Cut any partial write so the next append starts at a clean boundary; if even that
            // fails, stop accepting appends (recovery on reopen truncates the tail).
            if let Err(e2) = seg.file.set_len(pos) {
                w.failed = Some(format!("write failed ({e}) and truncate failed ({e2})"));
            }
            return Err(LogError::io("write", &seg.log_path, e));
        }
        let n = records.len() as u64;
        seg.publish(pos + w.buf.len() as u64, &idx, &time, w.builder.max_ts());
        w.next_offset = base + n;
        sh.hw.store(base + n, Ordering::Release);
        sh.hw_tx.send_replace(base + n);
        if sh.config.durability != Durability::Never {
            let mut s = lock(&sh.sync);
            s.written = base + n;
            if !Arc::ptr_eq(&s.active, &seg) {
                s.active = seg;
            }
            let wake = s.syncer_idle;
            drop(s);
            if wake {
                sh.sync_cv.notify_all();
            }
        }
        let appended = Appended {
            base_offset: base,
            last_offset: base + n - 1,
        };
        if w.buf.capacity() > (4 << 20) {
            // Do not keep a huge buffer around after one large batch.
            w.buf = Vec::with_capacity(64 << 10);
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
            // Sealed segments are durable before the next one gets records, so the syncer only
            // ever has to fsync the active segment.
            if let Err(e) = old.file.sync_data() {
                // After a failed fsync nothing unsynced can be promised any more.
                w.failed = Some(format!("fsync {}: {e}", old.log_path.display()));
                return Err(LogError::io("fsync", &old.log_path, e));
            }
        }
        let seg = Arc::new(Segment::create(&sh.dir, w.next_offset, sh.partition, now)?);
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
        sh.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seg.clone());
        w.active = seg;
        w.builder = IndexBuilder::default();
        Ok(())
    }

    /// Resolves once everything up to and including `offset` is durable under the policy:
    /// immediately for `Never`/`Interval`, after the covering fsync for `GroupCommit` and
    /// `EveryWrite`. An offset not yet appended is `OffsetOutOfRange`; an fsync failure is
    /// reported to every waiter.
    pub async fn wait_durable(&self, offset: u64) -> Result<()> {
        let sh = &*self.shared;
        self.check_appended(offset)?;
        if !matches!(
            sh.config.durability,
            Durability::GroupCommit | Durability::EveryWrite
        ) {
            return Ok(());
        }
        let mut rx = sh.durable_tx.subscribe();
        let view = rx
            .wait_for(|v| v.error.is_some() || v.durable > offset)
            .await
            .map_err(|_| LogError::Closed {
                path: sh.dir.clone(),
            })?
            .clone();
        match view.error {
            Some(reason) if view.durable <= offset => Err(LogError::Failed {
                path: sh.dir.clone(),
                reason: reason.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Blocking form of [`PartitionLog::wait_durable`] for threads outside an async runtime.
    pub fn wait_durable_blocking(&self, offset: u64) -> Result<()> {
        let sh = &*self.shared;
        self.check_appended(offset)?;
        if !matches!(
            sh.config.durability,
            Durability::GroupCommit | Durability::EveryWrite
        ) {
            return Ok(());
        }
        let mut s = lock(&sh.sync);
        while s.durable <= offset && s.error.is_none() {
            s.blocked += 1;
            s = sh.sync_cv.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.blocked -= 1;
        }
        if s.durable <= offset {
            let reason = s.error.clone().unwrap_or_default();
            return Err(LogError::Failed {
                path: sh.dir.clone(),
                reason,
            });
        }
        Ok(())
    }

    fn check_appended(&self, offset: u64) -> Result<()> {
        let hw = self.high_watermark();
        if offset >= hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                high_watermark: hw,
            });
        }
        Ok(())
    }

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
            let Some(seg) = self.segment_for(cur) else {
                // Retention removed it between the check and now.
                return Err(LogError::OffsetOutOfRange {
                    offset: cur,
                    log_start: self.log_start_offset(),
                    high_watermark: self.high_watermark(),
                });
            };
            let r = seg.read(
                cur,
                max_records - count,
                u64::from(max_bytes).saturating_sub(bytes),
                chunks.is_empty(),
                sh.config.index_interval_bytes,
            )?;
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

    fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
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

    /// Applies retention: deletes the oldest whole segments while the log exceeds
    /// `retention_bytes`, and those whose newest record is older than `retention_ms`. The
    /// active segment is never deleted. Returns the number of segments deleted.
    pub fn enforce_retention(&self) -> Result<usize> {
        let sh = &*self.shared;
        let (rb, rm) = (sh.config.retention_bytes, sh.config.retention_ms);
        if rb.is_none() && rm.is_none() {
            return Ok(0);
        }
        let now = now_ms();
        let mut removed = Vec::new();
        {
            let mut segs = sh.segments.write().unwrap_or_else(PoisonError::into_inner);
            let mut total: u64 = segs.iter().map(|s| s.size()).sum();
            while segs.len() > 1 {
                let oldest = &segs[0];
                let by_bytes = rb.is_some_and(|rb| total > rb);
                let by_age = rm.is_some_and(|rm| oldest.max_ts().saturating_add(rm) < now);
                if !(by_bytes || by_age) {
                    break;
                }
                total -= oldest.size();
                removed.push(segs.remove(0));
            }
            if !removed.is_empty() {
                sh.log_start.store(segs[0].base, Ordering::Release);
            }
        }
        for s in &removed {
            s.delete_files()?;
            tracing::info!(
                segment = %s.log_path.display(),
                "retention deleted segment; log start offset now {}",
                self.log_start_offset()
            );
        }
        Ok(removed.len())
    }

    /// Fsyncs the active segment, writes its indexes and a clean-shutdown marker (for
    /// shutdown: the next open then skips the scan of the active segment if it is unchanged).
    /// Afterwards everything appended so far is durable whatever the policy.
    pub fn flush(&self) -> Result<()> {
        let sh = &*self.shared;
        let w = lock(&sh.writer);
        w.active.file.sync_data().ctx("fsync", &w.active.log_path)?;
        w.active.write_indexes(true)?;
        let marker = CleanMarker::new(&w.active, w.next_offset, &w.builder);
        crate::index::write_atomic(
            &sh.dir.join(CleanMarker::FILE),
            marker.encode().as_bytes(),
            true,
        )?;
        let hw = w.next_offset;
        drop(w);
        let mut s = lock(&sh.sync);
        s.durable = s.durable.max(hw);
        let view = DurableView {
            durable: s.durable,
            error: s.error.clone().map(Arc::from),
        };
        drop(s);
        sh.sync_cv.notify_all();
        sh.durable_tx.send_replace(view);
        Ok(())
    }

    /// Number of fsyncs the syncer thread has run (group commit shares one among many
    /// appends; exported as a metric and checked by tests).
    pub fn syncer_fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Refuses further appends (used when the topic is deleted).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        lock(&self.shared.sync).shutdown = true;
        self.shared.sync_cv.notify_all();
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
    }
}

/// The syncer thread. GroupCommit/EveryWrite: fsync back to back while there is undurable data;
/// each fsync covers everything written before it started. Interval: fsync once per period.
fn syncer_loop(sh: &Shared) {
    let interval = match sh.config.durability {
        Durability::Interval(d) => Some(d),
        _ => None,
    };
    loop {
        let (target, seg) = {
            let mut s = lock(&sh.sync);
            match interval {
                None => {
                    while !s.shutdown && (s.written <= s.durable || s.error.is_some()) {
                        s.syncer_idle = true;
                        s = sh.sync_cv.wait(s).unwrap_or_else(PoisonError::into_inner);
                        s.syncer_idle = false;
                    }
                }
                Some(d) => {
                    if !s.shutdown {
                        s = sh
                            .sync_cv
                            .wait_timeout(s, d)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            }
            if s.error.is_some() || (s.shutdown && s.written <= s.durable) {
                return;
            }
            if s.written <= s.durable {
                continue;
            }
            (s.written, s.active.clone())
        };
        let r = seg.file.sync_data();
        sh.fsyncs.fetch_add(1, Ordering::Relaxed);
        let view = {
            let mut s = lock(&sh.sync);
            match r {
                Ok(()) => s.durable = s.durable.max(target),
                Err(e) => {
                    // After a failed fsync the page cache may have dropped the dirty pages:
                    // nothing after `durable` can be promised, so fail loudly and stay failed.
                    tracing::error!(segment = %seg.log_path.display(), "fsync failed: {e}");
                    s.error = Some(format!("fsync {}: {e}", seg.log_path.display()));
                }
            }
            DurableView {
                durable: s.durable,
                error: s.error.clone().map(Arc::from),
            }
        };
        sh.sync_cv.notify_all();
        sh.durable_tx.send_replace(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
