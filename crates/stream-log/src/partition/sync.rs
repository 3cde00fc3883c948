//! Durability: waiting for an offset to be durable, the fsync step the store's workers run for
//! this log, and `flush`.
//!
//! Group commit is demand-driven. An append only records how far the page cache has got
//! (`written`); a wait records how far somebody needs durability (`demand`) and, unless an fsync
//! is already queued or running for this log, queues one on the shared pool. The worker's
//! fsync covers everything written when it started, so a burst of pipelined appends followed
//! by their waits costs one fsync; if waits for later data arrived meanwhile, the worker queues
//! the log again. Every wait registers demand, so none waits for an fsync nobody queued.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::{DurableView, PartitionLog, Shared, SyncState};
use crate::config::Durability;
use crate::error::{LogError, Result};
use crate::lock;
use crate::segment::CleanMarker;
use crate::sync::SyncJob;

fn view(s: &SyncState) -> DurableView {
    DurableView {
        durable: s.durable,
        error: s.error.clone().map(Arc::from),
        failures: s.failures,
        last_failure: s.last_failure.clone().map(Arc::from),
    }
}

impl Shared {
    /// Registers a wait for `offset` and makes sure an fsync covering it is queued. Returns the
    /// failure count the waiter starts from (a later transient failure is reported to it).
    fn demand(self: &Arc<Self>, offset: u64) -> u64 {
        let mut s = lock(&self.sync);
        let failures = s.failures;
        if s.durable > offset || s.error.is_some() {
            return failures;
        }
        s.demand = s.demand.max(offset + 1);
        if s.queued {
            return failures;
        }
        s.queued = true;
        drop(s);
        self.queue();
        failures
    }

    fn queue(self: &Arc<Self>) {
        if !self.res.sync.submit(self.clone()) {
            // The store (and its workers) is gone while this log is still in use: run the
            // fsync here rather than leave the waiter waiting.
            while self.sync_step() {}
        }
    }

    fn publish(&self, s: std::sync::MutexGuard<'_, SyncState>) {
        let v = view(&s);
        drop(s);
        self.sync_cv.notify_all();
        self.durable_tx.send_replace(v);
    }

    /// Fsyncs what was appended and not yet made durable (any policy but `never`) and tells
    /// the waiters. Before a deleted topic's files go, so that a produce served before the
    /// delete is answered as durable rather than failing on a file that is gone; and on drop
    /// of the log, as the per-log syncer thread used to on its way out.
    pub(super) fn sync_unsynced(&self, when: &str) {
        if self.config.durability == Durability::Never {
            return;
        }
        let (written, seg) = {
            let s = lock(&self.sync);
            if s.written <= s.durable || s.error.is_some() {
                return;
            }
            (s.written, s.active.clone())
        };
        match seg.sync_data() {
            Ok(()) => {
                let mut s = lock(&self.sync);
                s.durable = s.durable.max(written);
                self.publish(s);
            }
            // A waiter's own fsync reports the failure.
            Err(e) => tracing::warn!("fsync {when}: {e}"),
        }
    }
}

impl SyncJob for Shared {
    fn sync_step(&self) -> bool {
        let (target, seg) = {
            let mut s = lock(&self.sync);
            if s.error.is_some() || s.written <= s.durable {
                s.queued = false;
                return false;
            }
            (s.written, s.active.clone())
        };
        let file = match seg.file() {
            Ok(f) => f,
            Err(e) => {
                // Nothing was fsynced and nothing is lost: tell the current waiters and let
                // the next wait try again.
                tracing::error!("fsync not run: {e}");
                let mut s = lock(&self.sync);
                s.failures += 1;
                s.last_failure = Some(e.to_string());
                s.queued = false;
                self.publish(s);
                return false;
            }
        };
        let started = Instant::now();
        let r = file.sync_data();
        let took = started.elapsed().as_nanos();
        drop(file);
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.res.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.res
            .fsync_nanos
            .fetch_add(u64::try_from(took).unwrap_or(u64::MAX), Ordering::Relaxed);
        let mut s = lock(&self.sync);
        match r {
            Ok(()) => s.durable = s.durable.max(target),
            Err(e) => {
                // After a failed fsync the page cache may have dropped the dirty pages:
                // nothing after `durable` can be promised, so fail loudly and stay failed.
                tracing::error!(segment = %seg.log_path.display(), "fsync failed: {e}");
                s.error = Some(format!("fsync {}: {e}", seg.log_path.display()));
            }
        }
        let again = s.error.is_none() && s.demand > s.durable;
        if !again {
            s.queued = false;
        }
        self.publish(s);
        again
    }

    fn interval_tick(self: Arc<Self>) {
        let mut s = lock(&self.sync);
        if s.queued || s.error.is_some() || s.written <= s.durable {
            return;
        }
        s.queued = true;
        drop(s);
        self.queue();
    }
}

impl PartitionLog {
    /// Resolves once everything up to and including `offset` is durable under the policy:
    /// immediately for `Never`/`Interval`, after the covering fsync for `GroupCommit` and
    /// `EveryWrite` (the wait itself queues that fsync if none is pending). An offset not yet
    /// appended is `OffsetOutOfRange`; an fsync failure is reported to every waiter.
    pub async fn wait_durable(&self, offset: u64) -> Result<()> {
        let sh = &self.shared;
        self.check_appended(offset)?;
        if !sh.config.durability.acks_after_fsync() {
            return Ok(());
        }
        if sh.durable_tx.borrow().durable > offset {
            // Already covered (the usual case for all but the first answer of a burst):
            // neither the sync lock nor a subscription is needed.
            return Ok(());
        }
        let mut rx = sh.durable_tx.subscribe();
        let since = sh.demand(offset);
        let view = rx
            .wait_for(|v| v.error.is_some() || v.durable > offset || v.failures > since)
            .await
            .map_err(|_| LogError::Closed {
                path: sh.dir.clone(),
            })?
            .clone();
        if view.durable > offset {
            return Ok(());
        }
        let reason = view
            .error
            .or(view.last_failure)
            .map(|r| r.to_string())
            .unwrap_or_default();
        Err(LogError::Failed {
            path: sh.dir.clone(),
            reason,
        })
    }

    /// Queues the fsync that will make `offset` durable (group commit and every-write),
    /// without waiting for it: a server that has appended a burst starts the burst's fsync at
    /// once instead of when its answers are first awaited. Offsets already durable, not yet
    /// appended or under other policies change nothing.
    pub fn request_durable(&self, offset: u64) {
        let sh = &self.shared;
        if offset < self.high_watermark() && sh.config.durability.acks_after_fsync() {
            sh.demand(offset);
        }
    }

    /// Blocking form of [`PartitionLog::wait_durable`] for threads outside an async runtime.
    pub fn wait_durable_blocking(&self, offset: u64) -> Result<()> {
        let sh = &self.shared;
        self.check_appended(offset)?;
        if !sh.config.durability.acks_after_fsync() {
            return Ok(());
        }
        let since = sh.demand(offset);
        let mut s = lock(&sh.sync);
        while s.durable <= offset && s.error.is_none() && s.failures <= since {
            s = sh.sync_cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.durable <= offset {
            let reason = s
                .error
                .clone()
                .or_else(|| s.last_failure.clone())
                .unwrap_or_default();
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

    /// Fsyncs the active segment, writes its indexes and a clean-shutdown marker (for
    /// shutdown: the next open then skips the scan of the active segment if it is unchanged).
    /// Afterwards everything appended so far is durable whatever the policy. A log unchanged
    /// since its marker was written (or validated at open) has nothing to do.
    pub fn flush(&self) -> Result<()> {
        let sh = &*self.shared;
        let mut w = lock(&sh.writer);
        if !w.marker_current {
            if w.allocated > w.active.size() {
                // The marker describes a file that holds exactly its records.
                let file = w.active.file()?;
                file.set_len(w.active.size())
                    .map_err(|e| LogError::io("truncate", &w.active.log_path, e))?;
                w.allocated = w.active.size();
            }
            w.active.sync_data()?;
            w.active.write_indexes(true)?;
            let marker = CleanMarker::new(&w.active, w.next_offset, &w.builder);
            crate::index::write_atomic(
                &sh.dir.join(CleanMarker::FILE),
                marker.encode().as_bytes(),
                true,
            )?;
            w.marker_current = true;
        }
        let hw = w.next_offset;
        drop(w);
        let mut s = lock(&sh.sync);
        s.durable = s.durable.max(hw);
        sh.publish(s);
        Ok(())
    }

    /// Number of fsyncs the shared workers have run for this log (group commit shares one
    /// among many appends; exported as a metric and checked by tests).
    pub fn syncer_fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }
}
