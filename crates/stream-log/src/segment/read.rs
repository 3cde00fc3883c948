//! Reading records from one segment: an index lookup, then a walk over the frames. Sealed
//! segments are served zero-copy from an mmap made on their first read (a mapping holds no
//! descriptor, so the file goes back to the cache right after); the active one with `pread`s.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use super::Segment;
use crate::error::{IoContext, Result};
use crate::index;
use crate::record::{check_frame, Frame, FRAME_FIXED_BYTES, MAX_MESSAGE_BYTES};

/// A slice of records read from one segment.
pub(crate) struct SegmentRead {
    pub bytes: Bytes,
    pub count: u32,
    pub next_offset: u64,
}

/// Owner that keeps a mapping alive for `Bytes::from_owner`.
struct MapOwner(Arc<Mmap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Segment {
    /// The segment's read-only mapping of `size` bytes, made on first use (sealed only).
    pub(super) fn mapping(&self, size: u64) -> Result<Arc<Mmap>> {
        let mut g = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = g.as_ref() {
            return Ok(m.clone());
        }
        let file = self.file()?;
        // SAFETY: a sealed segment is never written or truncated again by this crate (only the
        // active segment is, and only before it is sealed); deletion unlinks the file, which
        // keeps the mapped pages valid.
        let m = Arc::new(
            unsafe { MmapOptions::new().len(size as usize).map(&*file) }
                .ctx("mmap", &self.log_path)?,
        );
        *g = Some(m.clone());
        drop(g);
        drop(file);
        // Served from the mapping from now on: the descriptor is better spent on another file.
        self.release_file();
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
            let file = self.file()?;
            file.read_exact_at(&mut buf, pos)
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
                        file.read_exact_at(&mut buf[old..], pos + old as u64)
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
                Frame::Ok { len, partition, .. } => {
                    if partition != self.partition {
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
