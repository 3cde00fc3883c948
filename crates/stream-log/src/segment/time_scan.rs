//! Finding, in one segment, the first record whose timestamp is at or after a target: the time
//! index narrows the search to one index interval, a walk over that interval's frames finds
//! the record.
//!
//! Why one interval is enough: a time-index entry `(ts, rel)` says that the records before
//! `rel` have timestamps of at most `ts`, and the builder adds an entry at every offset-index
//! point where that maximum grew (`index_builder.rs`). At the index points between two entries
//! the maximum so far is therefore the earlier entry's. For the first entry whose maximum
//! reaches the target, the record that made it reach the target lies between the last index
//! point before that entry and the entry itself, and no record before that point qualifies.
//! Past the last entry (the active segment gets its final entry only when it is sealed) the
//! same holds from the last index point. Before the first entry the maximum is only known to
//! be at least 0, so a target of 0 walks from the segment's start (its first record is the
//! answer).
//!
//! Sealed segments are walked in their mapping (only the pages walked are read); the active
//! one with `pread`s of [`CHUNK`] bytes, grown only for a larger record, since it is being
//! appended to and cannot be mapped.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use super::Segment;
use crate::error::{IoContext, Result};
use crate::index::{self, IndexEntry};
use crate::record::{check_frame, Frame};

/// Bytes of the active segment read at a time.
const CHUNK: usize = 64 << 10;

/// A record found by time: `(offset, timestamp_ms)`.
pub(crate) type TimeHit = (u64, u64);

/// How a walk over one view of the bytes ended.
enum Walked {
    Found(TimeHit),
    /// Reached `below`: no record before it qualifies.
    Capped,
    /// Out of bytes after `used` bytes of whole frames; the next frame needs `need` bytes.
    More {
        used: usize,
        need: usize,
    },
    Bad(&'static str, usize),
}

/// How the walk over the segment ended.
enum Outcome {
    Found(TimeHit),
    Capped,
    /// The segment's bytes ended without a record at or after the target.
    End,
}

impl Segment {
    /// The first record of this segment below offset `below` whose timestamp is at least
    /// `target`, if any. `below` must be a high watermark loaded before this call: every
    /// record below it is then published in this segment's size and time index.
    pub(crate) fn find_time(&self, target: u64, below: u64) -> Result<Option<TimeHit>> {
        // Loaded before the size: a segment sealed after this is walked as the active one,
        // which reads it correctly too.
        let sealed = self.sealed.load(Ordering::Acquire);
        let start = self.time_start(target, below);
        let size = self.size();
        match self.walk_from(start, size, sealed, target, below)? {
            Outcome::Found(hit) => Ok(Some(hit)),
            Outcome::End if sealed && start.pos > 0 && self.max_ts() >= target => {
                // The segment holds a qualifying record (its largest timestamp says so), but
                // not where its indexes put it: they disagree with the records, which the
                // append path and recovery never produce. Walk it all rather than answer wrong.
                tracing::warn!(
                    segment = %self.log_path.display(),
                    target,
                    "time index disagrees with the records; walking the whole segment"
                );
                let whole = IndexEntry { rel: 0, pos: 0 };
                match self.walk_from(whole, size, sealed, target, below)? {
                    Outcome::Found(hit) => Ok(Some(hit)),
                    Outcome::Capped | Outcome::End => Ok(None),
                }
            }
            Outcome::Capped | Outcome::End => Ok(None),
        }
    }

    /// Where to start walking for `target` (see the module doc). Crate-visible for the
    /// partition's test of the walk's bound.
    pub(crate) fn time_start(&self, target: u64, below: u64) -> IndexEntry {
        if target == 0 {
            return IndexEntry { rel: 0, pos: 0 };
        }
        let rel = {
            let time = self.time.lock().unwrap_or_else(PoisonError::into_inner);
            let i = time.partition_point(|e| e.ts < target);
            match time.get(i) {
                Some(e) => e.rel.saturating_sub(1),
                // Only index points below `below` are taken here: the entries seen were
                // published before that high watermark, so they cover those points, while a
                // point an append added since may carry an entry not seen.
                None => {
                    let last = below.saturating_sub(self.base).saturating_sub(1);
                    u32::try_from(last).unwrap_or(u32::MAX)
                }
            }
        };
        // Any snapshot of the offset index will do: one older than the time index only starts
        // the walk earlier.
        index::lookup(
            &self.index.read().unwrap_or_else(PoisonError::into_inner),
            rel,
        )
    }

    fn walk_from(
        &self,
        start: IndexEntry,
        size: u64,
        sealed: bool,
        target: u64,
        below: u64,
    ) -> Result<Outcome> {
        let mut pos = u64::from(start.pos);
        let mut offset = self.base + u64::from(start.rel);
        if pos >= size {
            return Ok(Outcome::End);
        }
        if sealed {
            let map = self.mapping(size)?;
            let view = map.get(pos as usize..size as usize).unwrap_or(&[]);
            return match self.walk_time(view, &mut offset, target, below) {
                Walked::Found(hit) => Ok(Outcome::Found(hit)),
                Walked::Capped => Ok(Outcome::Capped),
                // A sealed segment ends with a whole record; bytes after it are not served.
                Walked::More { .. } => Ok(Outcome::End),
                Walked::Bad(reason, at) => Err(self.corrupt(pos + at as u64, offset, reason)),
            };
        }
        let file = self.file()?;
        let mut buf = Vec::new();
        let mut want = CHUNK;
        while pos < size {
            buf.resize(want.min((size - pos) as usize), 0);
            file.read_exact_at(&mut buf, pos)
                .ctx("read", &self.log_path)?;
            match self.walk_time(&buf, &mut offset, target, below) {
                Walked::Found(hit) => return Ok(Outcome::Found(hit)),
                Walked::Capped => return Ok(Outcome::Capped),
                Walked::Bad(reason, at) => {
                    return Err(self.corrupt(pos + at as u64, offset, reason))
                }
                Walked::More { used, need } => {
                    pos += used as u64;
                    // The next read starts at that frame and holds it whole.
                    if need as u64 > size.saturating_sub(pos) {
                        // Published sizes end with whole records: nothing more to walk.
                        break;
                    }
                    want = need.max(CHUNK);
                }
            }
        }
        Ok(Outcome::End)
    }

    /// Walks the frames of `view`, which starts at the frame of `*offset`, validating each
    /// (length, offset, CRC, partition) as a read does before trusting its timestamp.
    fn walk_time(&self, view: &[u8], offset: &mut u64, target: u64, below: u64) -> Walked {
        let mut at = 0usize;
        loop {
            if *offset >= below {
                return Walked::Capped;
            }
            match check_frame(view.get(at..).unwrap_or(&[]), *offset) {
                Frame::Ok {
                    len,
                    timestamp_ms,
                    partition,
                } => {
                    if partition != self.partition {
                        return Walked::Bad("record belongs to another partition", at);
                    }
                    if timestamp_ms >= target {
                        return Walked::Found((*offset, timestamp_ms));
                    }
                    at += len;
                    *offset += 1;
                }
                Frame::Incomplete { need } => return Walked::More { used: at, need },
                Frame::Bad(reason) => return Walked::Bad(reason, at),
            }
        }
    }
}
