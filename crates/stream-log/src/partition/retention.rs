//! Retention: deleting the oldest whole segments by total size or by age. The active segment is
//! never deleted, so the high watermark and appends are unaffected.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use super::{now_ms, PartitionLog};
use crate::error::Result;

impl PartitionLog {
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
}
