//! The store-wide cache of open segment files: every segment (active or sealed) names its file
//! through a [`FileSlot`], and at most [`FileCache::capacity`] slots hold an open descriptor at
//! a time, so the number of partitions no longer decides the number of open files.
//!
//! A slot opens its file on first use and keeps it until the cache evicts it to make room for
//! another one (CLOCK: a used slot gets a second chance before it is closed) or the segment is
//! deleted or dropped. Callers get an `Arc<File>` that stays valid while they use it even if the
//! slot is evicted meanwhile, so the descriptor count may exceed the capacity by the number of
//! system calls running at that moment (bounded by the threads doing I/O).
//!
//! Closing and reopening a file loses nothing: dirty pages belong to the inode, so an
//! `fdatasync` on a new descriptor flushes what an older one wrote. A write-back error that
//! happened while no descriptor was open is still reported (once) to the next `fdatasync` on
//! kernels since 4.16.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError, Weak};

use crate::error::{IoContext, Result};
use crate::lock;

/// Smallest cache the defaults pick: an active segment per partition of a small store.
pub const MIN_DEFAULT_OPEN_FILES: usize = 64;
/// Largest cache the defaults pick (more rarely helps: misses cost one `open`).
pub const MAX_DEFAULT_OPEN_FILES: usize = 4096;

/// The default capacity: a quarter of the process's soft `RLIMIT_NOFILE` (the rest stays for
/// connections, index writes and the runtime), clamped to
/// [[`MIN_DEFAULT_OPEN_FILES`], [`MAX_DEFAULT_OPEN_FILES`]].
pub fn default_max_open_files() -> usize {
    let soft = process_limits::open_files()
        .map_or(1024, |l| usize::try_from(l.soft).unwrap_or(usize::MAX));
    (soft / 4).clamp(MIN_DEFAULT_OPEN_FILES, MAX_DEFAULT_OPEN_FILES)
}

/// The bounded set of open segment files shared by the partition logs of a store.
#[derive(Debug)]
pub(crate) struct FileCache {
    capacity: usize,
    clock: Mutex<Clock>,
    opens: AtomicU64,
}

#[derive(Debug, Default)]
struct Clock {
    /// Slots that held a file when they were queued, oldest first (the clock hand is the
    /// front). A slot closed meanwhile is skipped when the hand reaches it.
    ring: VecDeque<Weak<FileSlot>>,
    /// Slots holding a descriptor now.
    open: usize,
}

impl FileCache {
    /// A cache keeping at most `capacity` (at least 1) files open.
    pub(crate) fn new(capacity: usize) -> Arc<FileCache> {
        Arc::new(FileCache {
            capacity: capacity.max(1),
            clock: Mutex::new(Clock::default()),
            opens: AtomicU64::new(0),
        })
    }

    /// Most files kept open.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files open now (not counting descriptors held only by running calls).
    pub(crate) fn open_count(&self) -> usize {
        lock(&self.clock).open
    }

    /// Files opened so far (first uses and reopens after eviction).
    pub(crate) fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// Closes least recently used files until one more fits. Files are closed after the
    /// cache's lock is released, and a slot busy installing its file is passed over (never
    /// waited for: slot locks are taken before the cache's lock elsewhere).
    fn make_room(&self) {
        let mut victims: Vec<Arc<File>> = Vec::new();
        // Upgraded slots are dropped after the lock too: dropping the last reference runs
        // `FileSlot::drop`, which takes the cache's lock.
        let mut held: Vec<Arc<FileSlot>> = Vec::new();
        {
            let mut c = lock(&self.clock);
            // Two passes over the ring at most: the first may only clear referenced bits.
            let mut budget = c.ring.len() * 2 + 1;
            while c.open >= self.capacity && budget > 0 {
                budget -= 1;
                let Some(weak) = c.ring.pop_front() else {
                    break;
                };
                let Some(slot) = weak.upgrade() else { continue };
                if slot.referenced.swap(false, Ordering::Relaxed) {
                    c.ring.push_back(weak);
                    held.push(slot);
                    continue;
                }
                let taken = match slot.file.try_lock() {
                    Ok(mut g) => Some(g.take()),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner().take()),
                    Err(TryLockError::WouldBlock) => None,
                };
                let Some(taken) = taken else {
                    c.ring.push_back(weak);
                    held.push(slot);
                    continue;
                };
                if let Some(f) = taken {
                    c.open -= 1;
                    victims.push(f);
                }
                held.push(slot);
            }
        }
        drop(victims);
        drop(held);
    }

    /// Counts a newly installed file (called with the slot's lock held).
    fn register(&self, slot: &Arc<FileSlot>) {
        let mut c = lock(&self.clock);
        c.open += 1;
        c.ring.push_back(Arc::downgrade(slot));
        if c.ring.len() > 2 * self.capacity + 64 {
            // Dropped slots leave dead entries behind until the hand reaches them.
            c.ring.retain(|w| w.strong_count() > 0);
        }
    }

    fn forget(&self) {
        let mut c = lock(&self.clock);
        c.open = c.open.saturating_sub(1);
    }
}

/// One segment file as the cache knows it: its path and, while cached, its open descriptor.
#[derive(Debug)]
pub(crate) struct FileSlot {
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
    /// Used since the clock hand last passed: spared once.
    referenced: AtomicBool,
    cache: Arc<FileCache>,
}

impl FileSlot {
    /// A slot for an existing file, not opened yet.
    pub(crate) fn new(cache: &Arc<FileCache>, path: PathBuf) -> Arc<FileSlot> {
        Arc::new(FileSlot {
            path,
            file: Mutex::new(None),
            referenced: AtomicBool::new(false),
            cache: cache.clone(),
        })
    }

    /// A slot whose file the caller has just opened (or created): it joins the cache at once.
    pub(crate) fn with_file(cache: &Arc<FileCache>, path: PathBuf, file: File) -> Arc<FileSlot> {
        let slot = FileSlot::new(cache, path);
        slot.adopt(file);
        slot
    }

    /// Puts a file the caller opened for this slot's path into the cache (recovery opens the
    /// active segment anyway; keeping it saves the first append an `open`).
    pub(crate) fn adopt(self: &Arc<Self>, file: File) {
        self.cache.make_room();
        self.install(Arc::new(file));
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opening it (read-write) on a miss. A process out of descriptors gets an
    /// `Io` error whose message says so and names the settings to change.
    pub(crate) fn get(self: &Arc<Self>) -> Result<Arc<File>> {
        if let Some(f) = lock(&self.file).as_ref() {
            self.referenced.store(true, Ordering::Relaxed);
            return Ok(f.clone());
        }
        self.cache.make_room();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .ctx("open segment", &self.path)?;
        self.cache.opens.fetch_add(1, Ordering::Relaxed);
        Ok(self.install(Arc::new(f)))
    }

    fn install(self: &Arc<Self>, f: Arc<File>) -> Arc<File> {
        let mut g = lock(&self.file);
        if let Some(existing) = g.as_ref() {
            // Another caller opened it meanwhile: use theirs, ours closes when dropped.
            return existing.clone();
        }
        *g = Some(f.clone());
        self.referenced.store(true, Ordering::Relaxed);
        self.cache.register(self);
        f
    }

    /// Closes the descriptor now (the segment is being deleted). Calls holding the file keep
    /// it until they finish.
    pub(crate) fn close(&self) {
        let taken = lock(&self.file).take();
        if taken.is_some() {
            self.cache.forget();
        }
    }
}

impl Drop for FileSlot {
    fn drop(&mut self) {
        let had = self
            .file
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some();
        if had {
            self.cache.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_capacity_files_stay_open_and_evicted_ones_reopen() {
        let d = tempfile::tempdir().unwrap();
        let cache = FileCache::new(4);
        let slots: Vec<_> = (0..10)
            .map(|i| {
                let p = d.path().join(format!("{i}.log"));
                std::fs::write(&p, [i as u8]).unwrap();
                FileSlot::new(&cache, p)
            })
            .collect();
        for round in 0..3 {
            for (i, s) in slots.iter().enumerate() {
                let f = s.get().unwrap();
                let mut b = [0u8; 1];
                std::os::unix::fs::FileExt::read_exact_at(&*f, &mut b, 0).unwrap();
                assert_eq!(b[0], i as u8, "round {round}");
                assert!(cache.open_count() <= 4);
            }
        }
        assert!(cache.opens() >= 10);
        slots[0].close();
        drop(slots);
        assert_eq!(cache.open_count(), 0);
    }

    #[test]
    fn default_capacity_is_clamped() {
        let n = default_max_open_files();
        assert!((MIN_DEFAULT_OPEN_FILES..=MAX_DEFAULT_OPEN_FILES).contains(&n));
    }
}
