//! What the partition logs of one store share: the durability worker pool and the open-file
//! cache. A `TopicStore` makes its own; a log opened on its own (`PartitionLog::open`, used by
//! tests, benches and tools) uses one process-wide set, so no log ever starts a thread.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use crate::error::Result;
use crate::files::{default_max_open_files, FileCache};
use crate::sync::{SyncHandle, SyncPool, DEFAULT_SYNC_THREADS};

/// Handles to the shared resources, cloned into every partition log.
#[derive(Debug, Clone)]
pub(crate) struct Resources {
    pub sync: SyncHandle,
    pub files: Arc<FileCache>,
    /// Fsyncs the workers ran for all the logs (each log counts its own too).
    pub fsyncs: Arc<AtomicU64>,
    /// Time those fsyncs took, in nanoseconds.
    pub fsync_nanos: Arc<AtomicU64>,
}

impl Resources {
    /// A new pool of `sync_threads` workers and a cache of `max_open_files` files; the pool is
    /// returned to the caller, who owns (and on drop stops) its threads.
    pub(crate) fn new(
        sync_threads: usize,
        max_open_files: usize,
        name: &str,
    ) -> Result<(Resources, SyncPool)> {
        let pool = SyncPool::new(sync_threads, name)?;
        let r = Resources {
            sync: pool.handle(),
            files: FileCache::new(max_open_files),
            fsyncs: Arc::new(AtomicU64::new(0)),
            fsync_nanos: Arc::new(AtomicU64::new(0)),
        };
        Ok((r, pool))
    }

    /// The process-wide set for logs opened outside a store, started on first use and kept
    /// for the life of the process.
    pub(crate) fn process_wide() -> Result<Resources> {
        static SHARED: OnceLock<(Resources, SyncPool)> = OnceLock::new();
        if let Some((r, _)) = SHARED.get() {
            return Ok(r.clone());
        }
        let made = Resources::new(DEFAULT_SYNC_THREADS, default_max_open_files(), "log")?;
        // A racing caller may have won: its set is used and ours stops again.
        Ok(SHARED.get_or_init(|| made).0.clone())
    }
}
