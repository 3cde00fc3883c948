//! The durability workers: a fixed pool of threads that run the fsyncs of every partition log
//! of a store, so the thread count does not grow with partitions.
//!
//! A partition that needs an fsync is queued once (the partition keeps the "queued" flag, see
//! `partition/sync.rs`); a worker takes it, runs one fsync covering everything written when it
//! started, publishes the new durable offset, and queues it again only if somebody waits for
//! more. The interval policy's periodic fsyncs come from one timer thread for all partitions
//! (`interval.rs`).

mod interval;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{LogError, Result};
use crate::lock;

pub(crate) use interval::Timer;

/// Default number of fsync worker threads of a store.
pub const DEFAULT_SYNC_THREADS: usize = 2;

/// Work the pool runs: one partition's fsync step.
pub(crate) trait SyncJob: Send + Sync {
    /// Runs one fsync (or nothing if there is nothing to make durable). Returns true when more
    /// demand arrived meanwhile and the job must run again.
    fn sync_step(&self) -> bool;
    /// The interval timer fired for this job: queue an fsync if anything is undurable.
    fn interval_tick(self: Arc<Self>);
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Arc<dyn SyncJob>>,
    shutdown: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    work: Condvar,
    timer: Timer,
}

/// A handle the partition logs use to queue work; cheap to clone. Work queued after the pool
/// shut down is refused ([`SyncHandle::submit`] returns false) and the caller runs it itself,
/// so a waiter never waits for a worker that is gone.
#[derive(Clone)]
pub(crate) struct SyncHandle(Arc<Inner>);

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle").finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// Queues a job; false if the pool is shut down.
    pub(crate) fn submit(&self, job: Arc<dyn SyncJob>) -> bool {
        let mut q = lock(&self.0.queue);
        if q.shutdown {
            return false;
        }
        q.jobs.push_back(job);
        drop(q);
        self.0.work.notify_one();
        true
    }

    /// Calls `job.interval_tick()` every `period` while the job lives.
    pub(crate) fn register_interval(&self, job: Weak<dyn SyncJob>, period: Duration) {
        self.0.timer.register(job, period);
    }
}

/// The owner of the durability threads: `threads` fsync workers plus one interval timer.
/// Dropping it finishes queued work, then stops and joins the threads.
pub struct SyncPool {
    handle: SyncHandle,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPool")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl SyncPool {
    /// Starts `threads` (at least 1) workers and the timer; `name` prefixes the thread names.
    pub fn new(threads: usize, name: &str) -> Result<SyncPool> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            timer: Timer::default(),
        });
        let mut pool = SyncPool {
            handle: SyncHandle(inner),
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let inner = pool.handle.0.clone();
            let h = std::thread::Builder::new()
                .name(format!("{name}-sync-{i}"))
                .spawn(move || worker(&inner))
                .map_err(|e| LogError::io("start thread", format!("{name}-sync-{i}"), e))?;
            // Pushed at once: an error below still stops and joins the ones started.
            pool.threads.push(h);
        }
        let inner = pool.handle.0.clone();
        let h = std::thread::Builder::new()
            .name(format!("{name}-timer"))
            .spawn(move || inner.timer.run())
            .map_err(|e| LogError::io("start thread", format!("{name}-timer"), e))?;
        pool.threads.push(h);
        Ok(pool)
    }

    /// A handle to queue work on this pool.
    pub(crate) fn handle(&self) -> SyncHandle {
        self.handle.clone()
    }

    /// Number of threads (workers and timer).
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for SyncPool {
    fn drop(&mut self) {
        lock(&self.handle.0.queue).shutdown = true;
        self.handle.0.work.notify_all();
        self.handle.0.timer.shutdown();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(inner: &Inner) {
    loop {
        let job = {
            let mut q = lock(&inner.queue);
            loop {
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                if q.shutdown {
                    return;
                }
                q = inner.work.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        if job.sync_step() {
            // Behind the others: a busy partition does not starve the rest. Pushed even
            // during shutdown, which drains the queue.
            lock(&inner.queue).jobs.push_back(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Needs `steps` runs before it is done.
    struct Countdown {
        left: AtomicU32,
        runs: AtomicU32,
    }

    impl SyncJob for Countdown {
        fn sync_step(&self) -> bool {
            self.runs.fetch_add(1, Ordering::Relaxed);
            self.left.fetch_sub(1, Ordering::Relaxed) > 1
        }
        fn interval_tick(self: Arc<Self>) {}
    }

    #[test]
    fn queued_work_is_finished_before_the_pool_stops_and_refused_after() {
        let pool = SyncPool::new(2, "t").unwrap();
        assert_eq!(pool.thread_count(), 3);
        let h = pool.handle();
        let jobs: Vec<Arc<Countdown>> = (0..50)
            .map(|_| {
                Arc::new(Countdown {
                    left: AtomicU32::new(3),
                    runs: AtomicU32::new(0),
                })
            })
            .collect();
        for j in &jobs {
            assert!(h.submit(j.clone()));
        }
        drop(pool);
        for j in &jobs {
            assert_eq!(j.runs.load(Ordering::Relaxed), 3, "re-queued until done");
        }
        assert!(!h.submit(jobs[0].clone()), "no workers any more");
    }
}
