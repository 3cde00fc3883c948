//! One segment: a `.log` file of stored frames starting at `base` offset, with its sparse offset
//! index and time index. The active (last) segment is appended to with `pwrite`; sealed segments
//! are immutable and read through a shared read-only mmap (zero-copy `Bytes`).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use crate::error::{IoContext, LogError, Result};
use crate::index::{self, IndexEntry, TimeEntry};
use crate::record::{check_frame, frame_partition, Frame, FRAME_FIXED_BYTES, MAX_MESSAGE_BYTES};

/// File name stem of a segment: the base offset, zero-padded to 20 digits so names sort.
pub(crate) fn file_stem(base: u64) -> String {
    format!("{base:020}")
}

/// Tracks when to add sparse index entries; shared by appends and recovery scans so both build
/// the same index.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexBuilder {
    bytes_since: u64,
    max_ts: u64,
    last_time_ts: u64,
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

    pub(crate) fn max_ts(&self) -> u64 {
        self.max_ts
    }
}

/// The clean-shutdown marker written by `PartitionLog::flush` after the active segment and its
/// indexes are on disk. If the active segment still has exactly `size` bytes on the next open,
/// its indexes are loaded instead of rescanning the whole segment. Text, one `key=value` a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CleanMarker {
    pub base: u64,
    pub size: u64,
    pub next_offset: u64,
    pub created_ms: u64,
    pub bytes_since: u64,
    pub max_ts: u64,
    pub last_time_ts: u64,
}

impl CleanMarker {
    pub(crate) const FILE: &'static str = "clean-shutdown.marker";

    pub(crate) fn encode(&self) -> String {
        format!(
            "base={}\nsize={}\nnext_offset={}\ncreated_ms={}\nbytes_since={}\nmax_ts={}\nlast_time_ts={}\n",
            self.base, self.size, self.next_offset, self.created_ms, self.bytes_since, self.max_ts, self.last_time_ts
        )
    }

    pub(crate) fn parse(text: &str) -> Option<CleanMarker> {
        let mut m = CleanMarker::default();
        let mut seen = 0;
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            let slot = match k {
                "base" => &mut m.base,
                "size" => &mut m.size,
                "next_offset" => &mut m.next_offset,
                "created_ms" => &mut m.created_ms,
                "bytes_since" => &mut m.bytes_since,
                "max_ts" => &mut m.max_ts,
                "last_time_ts" => &mut m.last_time_ts,
                _ => return None,
            };
            *slot = v;
            seen += 1;
        }
        (seen == 7 && m.next_offset >= m.base).then_some(m)
    }

    pub(crate) fn builder(&self) -> IndexBuilder {
        IndexBuilder {
            bytes_since: self.bytes_since,
            max_ts: self.max_ts,
            last_time_ts: self.last_time_ts,
        }
    }

    pub(crate) fn new(seg: &Segment, next_offset: u64, b: &IndexBuilder) -> CleanMarker {
        CleanMarker {
            base: seg.base,
            size: seg.size(),
            next_offset,
            created_ms: seg.created_ms,
            bytes_since: b.bytes_since,
            max_ts: b.max_ts,
            last_time_ts: b.last_time_ts,
        }
    }
}

/// A segment opened by `Segment::open` with what recovery found.
pub(crate) struct Opened {
    pub seg: Segment,
    /// Writer state for the active segment.
    pub scan: Option<Scan>,
    /// Bytes cut from a torn/corrupt tail.
    pub truncated: u64,
    /// Bytes read by validation scans.
    pub scanned: u64,
}

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
}

/// Validates every frame (length, offset sequence, partition, CRC) and rebuilds the indexes.
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
            Frame::Ok { len, timestamp_ms } => {
                if frame_partition(rest) != partition {
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
    s
}

/// Owner that keeps a mapping alive for `Bytes::from_owner`.
struct MapOwner(Arc<Mmap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One segment's files and in-memory indexes.
pub(crate) struct Segment {
    pub base: u64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_path: PathBuf,
    pub file: File,
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
    map: Mutex<Option<Arc<Mmap>>>,
}

/// A slice of records read from one segment.
pub(crate) struct SegmentRead {
    pub bytes: Bytes,
    pub count: u32,
    pub next_offset: u64,
}

impl Segment {
    fn paths(dir: &Path, base: u64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base);
        (
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        )
    }

    /// Creates a new, empty segment file (fails if it exists).
    pub(crate) fn create(dir: &Path, base: u64, partition: u32, now_ms: u64) -> Result<Segment> {
        let (log_path, index_path, time_path) = Self::paths(dir, base);
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
        Ok(Segment {
            base,
            log_path,
            index_path,
            time_path,
            file,
            partition,
            size: AtomicU64::new(0),
            index: RwLock::new(Vec::new()),
            time: Mutex::new(Vec::new()),
            max_ts: AtomicU64::new(0),
            created_ms: now_ms,
            sealed: AtomicBool::new(false),
            map: Mutex::new(None),
        })
    }

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
    ) -> Result<Opened> {
        let (log_path, index_path, time_path) = Self::paths(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .ctx("open segment", &log_path)?;
        let len = file.metadata().ctx("stat", &log_path)?.len();
        let mut seg = Segment {
            base,
            log_path,
            index_path,
            time_path,
            file,
            partition,
            size: AtomicU64::new(len),
            index: RwLock::new(Vec::new()),
            time: Mutex::new(Vec::new()),
            max_ts: AtomicU64::new(0),
            created_ms: now_ms,
            sealed: AtomicBool::new(!active),
            map: Mutex::new(None),
        };
        if let Some(m) = clean.filter(|m| active && m.base == base && m.size == len) {
            // Clean shutdown and unchanged since: trust the indexes written by that flush (if
            // they validate) instead of scanning the whole segment.
            if let Some((idx, time)) = seg
                .load_indexes(len)
                .filter(|(idx, _)| seg.tail_matches(idx, len, m.next_offset, interval))
            {
                seg.max_ts.store(m.max_ts, Ordering::Relaxed);
                seg.created_ms = m.created_ms.min(now_ms);
                *seg.index.get_mut().unwrap_or_else(PoisonError::into_inner) = idx;
                *seg.time.get_mut().unwrap_or_else(PoisonError::into_inner) = time;
                let scan = Scan {
                    valid_len: len,
                    next_offset: m.next_offset,
                    builder: m.builder(),
                    ..Scan::default()
                };
                return Ok(Opened {
                    seg,
                    scan: Some(scan),
                    truncated: 0,
                    scanned: 0,
                });
            }
        }
        if active {
            let s = seg.scan_file(len, interval)?;
            let mut truncated = 0;
            if s.valid_len < len {
                truncated = len - s.valid_len;
                notes.push(format!(
                    "{}: truncated {} bytes at position {} (offset {}): {}",
                    seg.log_path.display(),
                    truncated,
                    s.valid_len,
                    s.next_offset,
                    s.bad.unwrap_or("trailing bytes")
                ));
                seg.file
                    .set_len(s.valid_len)
                    .ctx("truncate", &seg.log_path)?;
                seg.file.sync_all().ctx("fsync", &seg.log_path)?;
            }
            seg.size.store(s.valid_len, Ordering::Release);
            seg.install_scan(&s, false);
            if let Some(ts) = s.first_ts {
                seg.created_ms = ts.min(now_ms);
            }
            return Ok(Opened {
                seg,
                scan: Some(s),
                truncated,
                scanned: len,
            });
        }
        let mut scanned = 0;
        match seg.load_indexes(len) {
            Some((idx, time)) => {
                let max = time.last().map_or(0, |t| t.ts);
                seg.max_ts.store(max, Ordering::Relaxed);
                seg.created_ms = max.min(now_ms);
                *seg.index.get_mut().unwrap_or_else(PoisonError::into_inner) = idx;
                *seg.time.get_mut().unwrap_or_else(PoisonError::into_inner) = time;
            }
            None => {
                let s = seg.scan_file(len, interval)?;
                scanned = len;
                notes.push(format!(
                    "{}: index missing or damaged, rebuilt from {} bytes",
                    seg.log_path.display(),
                    s.valid_len
                ));
                if let Some(reason) = s.bad {
                    // A sealed segment is not truncated (later segments follow it); reads that
                    // reach the bad record fail with LogError::Corrupt instead.
                    notes.push(format!(
                        "{}: sealed segment has an invalid record at position {} (offset {}): {reason}; it will not be served",
                        seg.log_path.display(),
                        s.valid_len,
                        s.next_offset
                    ));
                }
                seg.install_scan(&s, true);
                seg.write_indexes(true)?;
            }
        }
        Ok(Opened {
            seg,
            scan: None,
            truncated: 0,
            scanned,
        })
    }

    /// Validates the records after the last index entry (at most one index interval plus a
    /// record) by length, offset and CRC, and checks they end exactly at `len` with
    /// `next_offset`.
    fn tail_matches(&self, idx: &[IndexEntry], len: u64, next_offset: u64, interval: u32) -> bool {
        let start = idx.last().copied().unwrap_or(IndexEntry { rel: 0, pos: 0 });
        let Some(tail_len) = len.checked_sub(u64::from(start.pos)) else {
            return false;
        };
        if tail_len > u64::from(interval) + MAX_MESSAGE_BYTES as u64 {
            return false;
        }
        let mut buf = vec![0u8; tail_len as usize];
        if self
            .file
            .read_exact_at(&mut buf, u64::from(start.pos))
            .is_err()
        {
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
    fn load_indexes(&self, len: u64) -> Option<(Vec<IndexEntry>, Vec<TimeEntry>)> {
        let idx = fs::read(&self.index_path)
            .ok()
            .and_then(|b| index::decode_offset_index(&b, len))
            .filter(|e| self.spot_check(e))?;
        let time = fs::read(&self.time_path)
            .ok()
            .and_then(|b| index::decode_time_index(&b))?;
        Some((idx, time))
    }

    fn scan_file(&self, len: u64, interval: u32) -> Result<Scan> {
        if len == 0 {
            return Ok(Scan {
                next_offset: self.base,
                ..Scan::default()
            });
        }
        // SAFETY: the map is read-only and dropped before this function returns; no one else
        // writes this segment while it is being opened (the partition directory is ours).
        let map = unsafe { MmapOptions::new().len(len as usize).map(&self.file) }
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
    fn spot_check(&self, idx: &[IndexEntry]) -> bool {
        let Some(e) = idx.last() else { return true };
        let mut head = [0u8; 12];
        if self
            .file
            .read_exact_at(&mut head, u64::from(e.pos))
            .is_err()
        {
            return false;
        }
        let mut off = [0u8; 8];
        off.copy_from_slice(&head[4..12]);
        u64::from_le_bytes(off) == self.base + u64::from(e.rel)
    }

    /// Bytes readable now.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::Relaxed)
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

    /// Removes the segment's files (reads holding this segment keep working on the open fd).
    pub(crate) fn delete_files(&self) -> Result<()> {
        for p in [&self.log_path, &self.index_path, &self.time_path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("delete", p, e)),
            }
        }
        Ok(())
    }

    fn mapping(&self, size: u64) -> Result<Arc<Mmap>> {
        let mut g = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = g.as_ref() {
            return Ok(m.clone());
        }
        // SAFETY: a sealed segment is never written or truncated again by this crate (only the
        // active segment is, and only before it is sealed); deletion unlinks the file, which
        // keeps the mapped pages valid.
        let m = Arc::new(
            unsafe { MmapOptions::new().len(size as usize).map(&self.file) }
                .ctx("mmap", &self.log_path)?,
        );
        *g = Some(m.clone());
        Ok(m)
    }

    /// Reads records starting at `offset` (which must be >= base) within the limits. Returns
    /// `count == 0` if the segment holds nothing at or after `offset`.
    /// `first` allows the first record to exceed `max_bytes` (a fetch returns at least one).
    pub(crate) fn read(
        &self,
        offset: u64,
        max_records: u32,
        max_bytes: u64,
        first: bool,
        interval: u32,
    ) -> Result<SegmentRead> {
        let sealed = self.sealed.load(Ordering::Acquire);
        let size = self.size();
        let rel = u32::try_from(offset - self.base).unwrap_or(u32::MAX);
        // The one index lookup: a binary search of the sparse index.
        let start = index::lookup(
            &self.index.read().unwrap_or_else(PoisonError::into_inner),
            rel,
        );
        let pos = u64::from(start.pos);
        let mut walk = Walk::new(
            self.base + u64::from(start.rel),
            offset,
            max_records,
            max_bytes,
            self.partition,
        );
        walk.first = first;
        let empty = SegmentRead {
            bytes: Bytes::new(),
            count: 0,
            next_offset: offset,
        };
        if pos >= size {
            return Ok(empty);
        }
        let avail = (size - pos) as usize;
        let (owner_bytes, view_start) = if sealed && size > 0 {
            let map = self.mapping(size)?;
            let view = &map[pos as usize..size as usize];
            match walk.run(view) {
                Step::Bad(reason, at) => {
                    return Err(self.corrupt(pos + at as u64, walk.offset, reason))
                }
                Step::Done | Step::NeedMore(_) => {}
            }
            (Bytes::from_owner(MapOwner(map)), pos as usize)
        } else {
            // Active segment: one pread sized for the expected walk, grown only if a record is
            // larger than guessed.
            let guess = u64::from(interval) * 2
                + max_bytes
                    .min(1 << 20)
                    .min(u64::from(max_records).saturating_mul(512))
                + 4096;
            let mut buf = vec![0u8; (guess as usize).min(avail)];
            self.file
                .read_exact_at(&mut buf, pos)
                .ctx("read", &self.log_path)?;
            loop {
                match walk.run(&buf) {
                    Step::Done => break,
                    Step::Bad(reason, at) => {
                        return Err(self.corrupt(pos + at as u64, walk.offset, reason))
                    }
                    Step::NeedMore(n) => {
                        if n > avail || buf.len() == avail {
                            break;
                        }
                        let old = buf.len();
                        let new_len = n.max(old * 2).min(avail);
                        buf.resize(new_len, 0);
                        self.file
                            .read_exact_at(&mut buf[old..], pos + old as u64)
                            .ctx("read", &self.log_path)?;
                    }
                }
            }
            (Bytes::from(buf), 0)
        };
        if walk.count == 0 {
            if walk.offset < offset && sealed {
                // The segment ended before the wanted offset although a later segment exists.
                return Err(self.corrupt(size, walk.offset, "offset missing from its segment"));
            }
            return Ok(empty);
        }
        let (s, e) = (walk.start + view_start, walk.cursor + view_start);
        Ok(SegmentRead {
            bytes: owner_bytes.slice(s..e),
            count: walk.count,
            next_offset: walk.offset,
        })
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

enum Step {
    Done,
    /// The view must be at least this long to continue.
    NeedMore(usize),
    Bad(&'static str, usize),
}

/// Walks frames from an index position: skips (length and offset checked) up to the target,
/// then collects fully validated frames within the limits.
struct Walk {
    cursor: usize,
    offset: u64,
    target: u64,
    start: usize,
    count: u32,
    bytes: u64,
    max_records: u32,
    max_bytes: u64,
    partition: u32,
    first: bool,
}

impl Walk {
    fn new(offset: u64, target: u64, max_records: u32, max_bytes: u64, partition: u32) -> Walk {
        Walk {
            cursor: 0,
            offset,
            target,
            start: 0,
            count: 0,
            bytes: 0,
            max_records,
            max_bytes,
            partition,
            first: true,
        }
    }

    fn run(&mut self, view: &[u8]) -> Step {
        loop {
            if self.count >= self.max_records {
                return Step::Done;
            }
            let rest = view.get(self.cursor..).unwrap_or(&[]);
            if self.offset < self.target {
                if rest.len() < 12 {
                    return Step::NeedMore(self.cursor + 12);
                }
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let mut off = [0u8; 8];
                off.copy_from_slice(&rest[4..12]);
                if len < FRAME_FIXED_BYTES - 4 || len + 4 > MAX_MESSAGE_BYTES {
                    return Step::Bad("invalid record length", self.cursor);
                }
                if u64::from_le_bytes(off) != self.offset {
                    return Step::Bad("offset out of sequence", self.cursor);
                }
                self.cursor += 4 + len;
                self.offset += 1;
                continue;
            }
            match check_frame(rest, self.offset) {
                Frame::Ok { len, .. } => {
                    if frame_partition(rest) != self.partition {
                        return Step::Bad("record belongs to another partition", self.cursor);
                    }
                    if (self.count > 0 || !self.first) && self.bytes + len as u64 > self.max_bytes {
                        return Step::Done;
                    }
                    if self.count == 0 {
                        self.start = self.cursor;
                    }
                    self.cursor += len;
                    self.count += 1;
                    self.bytes += len as u64;
                    self.offset += 1;
                }
                Frame::Incomplete { need } => return Step::NeedMore(self.cursor + need),
                Frame::Bad(reason) => return Step::Bad(reason, self.cursor),
            }
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
