//! The clean-shutdown marker written by `PartitionLog::flush` after the active segment and its
//! indexes are on disk. If the active segment still has exactly `size` bytes on the next open,
//! its indexes are loaded instead of rescanning the whole segment. Text, one `key=value` a line.

use super::{IndexBuilder, Segment};

/// The writer state of the active segment at a clean shutdown.
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
    /// The marker's file name inside a partition directory.
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

    /// The index builder state the writer continues from.
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
