//! Topic metadata and the partition logs of every topic under a data directory.
//!
//! Layout: `<data_dir>/topics/<name>/topic.meta` (text: `partitions=<n>`) and one directory
//! per partition, `<data_dir>/topics/<name>/<partition>/`. A topic is created complete (metadata
//! and every partition's files) in a dot-named staging directory and renamed into place, and
//! deleted by renaming it to a dot-named directory before removing it, so neither a crash nor a
//! failed create ever leaves a half-made topic visible; dot-named leftovers are removed on open.
//! A topic grows ([`TopicStore::add_partitions`]) by laying out the new partition directories
//! first and then rewriting `topic.meta` atomically (the commit point); partition directories
//! beyond the count in `topic.meta` are an uncommitted grow, never opened, and removed by the
//! next grow.
//! The store holds the data directory's [`DataDirLock`] while it is open, and owns what its
//! partition logs share: the fsync worker pool and the open-file cache (see
//! [`StoreOptions`]); creates and grows are checked against its [`crate::StoreLimits`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::config::{Durability, LogConfig, StoreLimits, StoreOptions};
use crate::error::{IoContext, LogError, Result};
use crate::files::default_max_open_files;
use crate::lock::DataDirLock;
use crate::partition::PartitionLog;
use crate::resources::Resources;
use crate::sync::{SyncPool, DEFAULT_SYNC_THREADS};

const META: &str = "topic.meta";
/// Where `topic.meta` is written before it is renamed over the old one.
const META_TMP: &str = "topic.meta.tmp";
/// Most partitions a topic may have (the store-wide total is [`StoreLimits`]'s).
pub const MAX_PARTITIONS: u32 = 1024;
/// Longest topic name.
pub const MAX_TOPIC_NAME: usize = 200;

/// Checks that `name` is usable as a topic (and directory) name: 1..=200 characters of
/// `[A-Za-z0-9._-]`, not starting with a dot.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(LogError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_TOPIC_NAME {
        return bad("longer than 200 characters");
    }
    if name.starts_with('.') {
        return bad("starts with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

struct Topic {
    partitions: Vec<Arc<PartitionLog>>,
}

/// All topics under a data directory; metadata survives restart.
pub struct TopicStore {
    dir: PathBuf,
    config: LogConfig,
    limits: StoreLimits,
    res: Resources,
    /// Threads `flush_all` uses (the fsync worker count).
    flush_threads: usize,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises create/delete/grow (directory renames, metadata rewrites), never held by
    /// appends or reads.
    admin: Mutex<()>,
    /// Declared after `topics`: the logs dropped with the store still get their final fsync
    /// from the workers' handle (inline once the pool is gone), then the threads stop.
    pool: SyncPool,
    /// Held for the store's life: no other process opens the same data directory meanwhile.
    _lock: DataDirLock,
}

impl std::fmt::Debug for TopicStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicStore")
            .field("dir", &self.dir)
            .finish()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Writes `dir/topic.meta` for `partitions` partitions crash-atomically: a temporary file,
/// fsynced, renamed over the old one, and the directory fsynced, so that after a crash the file
/// holds the old count or the new one, never a torn mix.
fn write_meta(dir: &Path, partitions: u32) -> Result<()> {
    let tmp = dir.join(META_TMP);
    {
        let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
        write!(f, "format=1\npartitions={partitions}\n").ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
    }
    let meta = dir.join(META);
    fs::rename(&tmp, &meta).ctx("rename", &meta)?;
    sync_dir(dir)
}

/// Removes the partition directories of `dir` numbered `from` or higher: what an uncommitted
/// (crashed or failed) grow left beyond the count in `topic.meta`.
fn remove_partitions_from(dir: &Path, from: u32) -> Result<()> {
    let mut removed = false;
    for entry in fs::read_dir(dir).ctx("list directory", dir)? {
        let entry = entry.ctx("list directory", dir)?;
        let numbered = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|p| p >= from);
        if numbered {
            let path = entry.path();
            fs::remove_dir_all(&path).ctx("remove directory", &path)?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Undoes a grow of the topic in `dir` back to `current` partitions: the metadata first
/// (which makes the new directories uncommitted leftovers), then the directories.
fn roll_back_grow(dir: &Path, current: u32) {
    let back = if read_meta(dir) == Some(current) {
        Ok(())
    } else {
        write_meta(dir, current)
    };
    if let Err(e) = back {
        tracing::error!(
            dir = %dir.display(),
            "cannot roll back a failed partition grow ({e}); the new partitions appear on restart"
        );
        return;
    }
    if let Err(e) = remove_partitions_from(dir, current) {
        // Harmless: beyond the count in the metadata, removed by the next grow.
        tracing::warn!(dir = %dir.display(), "rolling back a failed partition grow: {e}");
    }
}

fn read_meta(dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(dir.join(META)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("partitions="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0 && n <= MAX_PARTITIONS)
}

/// Opens every partition of the topics found, on `threads` threads (recovery after a crash
/// fsyncs each non-empty active segment once; thousands of partitions make that worth
/// sharing out). The first error wins; the logs opened so far are dropped.
fn open_all(
    found: &[(String, PathBuf, u32)],
    config: &LogConfig,
    res: &Resources,
    threads: usize,
) -> Result<BTreeMap<String, Arc<Topic>>> {
    let jobs: Vec<(usize, u32)> = found
        .iter()
        .enumerate()
        .flat_map(|(t, (_, _, n))| (0..*n).map(move |p| (t, p)))
        .collect();
    let slots: Vec<Mutex<Option<Arc<PartitionLog>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let first: Mutex<Option<LogError>> = Mutex::new(None);
    let run = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(t, p)) = jobs.get(i) else { break };
        let failed = first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if failed {
            break;
        }
        let dir = found[t].1.join(p.to_string());
        match PartitionLog::open_in(&dir, p, config.clone(), res) {
            Ok(log) => {
                *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(log))
            }
            Err(e) => {
                first
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        }
    };
    let helpers = threads.min(jobs.len()).saturating_sub(1);
    std::thread::scope(|s| {
        for i in 0..helpers {
            // Without the helper (no thread to be had) the calling thread does its share.
            let _ = std::thread::Builder::new()
                .name(format!("store-open-{i}"))
                .spawn_scoped(s, run);
        }
        run();
    });
    if let Some(e) = first.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let mut logs = slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner));
    let mut topics = BTreeMap::new();
    for (name, _, n) in found {
        let partitions: Option<Vec<_>> = (0..*n).map(|_| logs.next().flatten()).collect();
        let partitions = partitions.ok_or_else(|| {
            LogError::InvalidConfig(format!("topic {name:?}: a partition log was not opened"))
        })?;
        topics.insert(name.clone(), Arc::new(Topic { partitions }));
    }
    Ok(topics)
}

impl TopicStore {
    /// Opens the store under `data_dir` (created if missing), recovering every partition log.
    /// First takes the data directory's exclusive lock (`<data_dir>/.lock`, see
    /// [`DataDirLock`]), held until the store is dropped: `LogError::DirInUse` if another
    /// process has the directory open.
    pub fn open(data_dir: &Path, config: LogConfig) -> Result<TopicStore> {
        TopicStore::open_with(data_dir, config, StoreOptions::default())
    }

    /// [`TopicStore::open`] with explicit limits, fsync worker count and open-file cache size.
    /// Topics already on disk are opened even if they exceed the limits (a lowered limit must
    /// not keep a broker from restarting); only creates are refused.
    pub fn open_with(
        data_dir: &Path,
        config: LogConfig,
        options: StoreOptions,
    ) -> Result<TopicStore> {
        config.validate()?;
        let sync_threads = options.sync_threads.unwrap_or(DEFAULT_SYNC_THREADS);
        let max_open_files = options
            .max_open_files
            .unwrap_or_else(default_max_open_files);
        if sync_threads == 0 {
            return Err(LogError::InvalidConfig(
                "sync threads must be at least 1 (--sync-threads / STREAM_SYNC_THREADS)".into(),
            ));
        }
        if max_open_files == 0 {
            return Err(LogError::InvalidConfig(
                "max open files must be at least 1 (--max-open-files / STREAM_MAX_OPEN_FILES)"
                    .into(),
            ));
        }
        fs::create_dir_all(data_dir).ctx("create directory", data_dir)?;
        let lock = DataDirLock::acquire(data_dir)?;
        let (res, pool) = Resources::new(sync_threads, max_open_files, "store")?;
        let dir = data_dir.join("topics");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let mut found: Vec<(String, PathBuf, u32)> = Vec::new();
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .ctx("list directory", &dir)?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !path.is_dir() {
                continue;
            }
            if name.starts_with('.') {
                // Interrupted create or delete.
                tracing::warn!(dir = %path.display(), "removing leftover of an interrupted topic create/delete");
                fs::remove_dir_all(&path).ctx("remove directory", &path)?;
                continue;
            }
            let Some(n) = read_meta(&path).filter(|_| validate_topic_name(&name).is_ok()) else {
                tracing::warn!(dir = %path.display(), "ignoring directory without valid topic metadata");
                continue;
            };
            found.push((name, path, n));
        }
        let topics = open_all(&found, &config, &res, sync_threads)?;
        let total: u64 = topics.values().map(|t| t.partitions.len() as u64).sum();
        let limits = options.limits;
        if topics.len() as u64 > limits.max_topics || total > limits.max_total_partitions {
            tracing::warn!(
                topics = topics.len(),
                partitions = total,
                max_topics = limits.max_topics,
                max_partitions = limits.max_total_partitions,
                "the store holds more than its limits allow (--max-topics, --max-partitions); \
                 all are served, new topics are refused"
            );
        }
        tracing::info!(
            dir = %dir.display(),
            topics = topics.len(),
            partitions = total,
            durability = %config.durability,
            sync_threads,
            max_open_files,
            "topic store opened"
        );
        Ok(TopicStore {
            dir,
            config,
            limits,
            res,
            flush_threads: sync_threads,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            pool,
            _lock: lock,
        })
    }

    /// The limits `create_topic` and `add_partitions` enforce.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Segment files open now (at most [`TopicStore::max_open_files`], plus those held by
    /// calls running at this moment).
    pub fn open_files(&self) -> usize {
        self.res.files.open_count()
    }

    /// The open-file cache's capacity.
    pub fn max_open_files(&self) -> usize {
        self.res.files.capacity()
    }

    /// Segment files opened so far (first uses and reopens after eviction): with a cache too
    /// small for the working set this grows with every append.
    pub fn file_opens(&self) -> u64 {
        self.res.files.opens()
    }

    /// Fsyncs the durability workers have run for all partitions (group commit shares one
    /// among the produces waiting for it: compare with the number of produces).
    pub fn fsyncs(&self) -> u64 {
        self.res.fsyncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Time the durability workers' fsyncs took, all partitions together (divided by
    /// [`TopicStore::fsyncs`], the mean fsync time the group commit pays).
    pub fn fsync_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.res
                .fsync_nanos
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Threads the store runs for durability (fsync workers and the interval timer).
    pub fn sync_threads(&self) -> usize {
        self.pool.thread_count()
    }

    /// Total partitions over all topics.
    pub fn total_partitions(&self) -> u64 {
        self.read_topics()
            .values()
            .map(|t| t.partitions.len() as u64)
            .sum()
    }

    /// The configuration every partition log uses.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Creates a topic with `partitions` partitions (1..=[`MAX_PARTITIONS`]).
    /// `TopicAlreadyExists` if taken; `LimitReached` if the store's topic or total partition
    /// limit would be exceeded.
    ///
    /// All or nothing: the metadata and every partition's files are made in a staging
    /// directory, which is renamed into place (the commit point) and only then opened. If
    /// anything fails, the staging directory, or after the rename the topic directory, is
    /// removed again, so the error leaves no trace: a retry can succeed and a restart does not
    /// show the topic.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        validate_topic_name(name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(LogError::InvalidConfig(format!(
                "partition count {partitions} not in [1, {MAX_PARTITIONS}]"
            )));
        }
        let _admin = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let topics = self.read_topics();
            if topics.contains_key(name) {
                return Err(LogError::TopicAlreadyExists {
                    topic: name.to_string(),
                });
            }
            let count = topics.len() as u64;
            if count >= self.limits.max_topics {
                return Err(LogError::LimitReached {
                    action: "create topic",
                    topic: name.to_string(),
                    what: "topics",
                    current: count,
                    requested: 1,
                    max: self.limits.max_topics,
                    flag: "--max-topics",
                    env: "STREAM_MAX_TOPICS",
                });
            }
            let total: u64 = topics.values().map(|t| t.partitions.len() as u64).sum();
            self.check_partition_limit("create topic", name, total, u64::from(partitions))?;
        }
        let final_dir = self.dir.join(name);
        let staging = self.dir.join(format!(".creating-{name}"));
        if let Err(e) = self
            .build_staging(&staging, partitions)
            .and_then(|()| fs::rename(&staging, &final_dir).ctx("rename", &final_dir))
        {
            if staging.exists() {
                if let Err(e2) = fs::remove_dir_all(&staging) {
                    // Removed by the next create of this name or the next open.
                    tracing::warn!(dir = %staging.display(), "removing staging directory: {e2}");
                }
            }
            return Err(e);
        }
        let logs = match sync_dir(&self.dir)
            .and_then(|()| self.open_partitions(&final_dir, 0..partitions))
        {
            Ok(logs) => logs,
            Err(e) => {
                // Every log opened so far is dropped (its files closed) by now.
                self.roll_back_create(name, &final_dir);
                return Err(e);
            }
        };
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), Arc::new(Topic { partitions: logs }));
        tracing::info!(topic = name, partitions, "topic created");
        Ok(())
    }

    /// Makes a complete topic directory at `staging`: `topic.meta` and every partition's
    /// directory with its first (empty) segment, all closed again and, like the metadata,
    /// fsynced (for the fsync policies).
    fn build_staging(&self, staging: &Path, partitions: u32) -> Result<()> {
        if staging.exists() {
            fs::remove_dir_all(staging).ctx("remove directory", staging)?;
        }
        fs::create_dir(staging).ctx("create directory", staging)?;
        write_meta(staging, partitions)?;
        self.lay_out_partitions(staging, 0..partitions)?;
        sync_dir(staging)
    }

    /// Makes the directories of partitions `range` under the topic directory `dir`, each with
    /// its first (empty) segment, closed again and fsynced (for the fsync policies); the
    /// caller fsyncs `dir` itself.
    fn lay_out_partitions(&self, dir: &Path, range: Range<u32>) -> Result<()> {
        // Opened once to lay out its files, never appended to: nothing for the fsync workers,
        // and the directory fsyncs make the new files durable for the fsync policies.
        let layout = LogConfig {
            durability: Durability::Never,
            ..self.config.clone()
        };
        let sync = self.config.durability != Durability::Never;
        for p in range {
            let part = dir.join(p.to_string());
            drop(PartitionLog::open_in(&part, p, layout.clone(), &self.res)?);
            if sync {
                sync_dir(&part)?;
            }
        }
        Ok(())
    }

    /// Opens the partition logs `range` of a topic; on an error the ones opened so far are
    /// dropped.
    fn open_partitions(&self, dir: &Path, range: Range<u32>) -> Result<Vec<Arc<PartitionLog>>> {
        range
            .map(|p| {
                PartitionLog::open_in(&dir.join(p.to_string()), p, self.config.clone(), &self.res)
                    .map(Arc::new)
            })
            .collect()
    }

    /// Undoes a create after the rename: the topic directory becomes a dot-named leftover
    /// (which `open` removes, should the removal here fail or be cut short by a crash).
    fn roll_back_create(&self, name: &str, final_dir: &Path) {
        let doomed = self.doomed_dir(name);
        if let Err(e) = fs::rename(final_dir, &doomed) {
            tracing::error!(
                dir = %final_dir.display(),
                "cannot roll back a failed topic create ({e}); the topic reappears on restart"
            );
            return;
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!("rolling back a failed topic create: {e}");
        }
        if let Err(e) = fs::remove_dir_all(&doomed) {
            tracing::warn!(dir = %doomed.display(), "rolling back a failed topic create: {e}");
        }
    }

    /// A fresh dot-named directory name for a topic directory about to be removed.
    fn doomed_dir(&self, name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.dir.join(format!(".deleting-{name}-{nanos}"))
    }

    /// Whether [`TopicStore::add_partitions`] would accept growing `name` to `total`
    /// partitions, with the error it would return if not; nothing changes (Kafka's
    /// `validate_only`). A create, grow or delete in the meantime may still change the answer.
    pub fn check_add_partitions(&self, name: &str, total: u32) -> Result<()> {
        self.check_grow(name, total).map(drop)
    }

    /// The checks of a grow: the topic as it is now, or why it cannot grow to `total`.
    fn check_grow(&self, name: &str, total: u32) -> Result<Arc<Topic>> {
        let topics = self.read_topics();
        let topic = topics
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::TopicNotFound {
                topic: name.to_string(),
            })?;
        let current = topic.partitions.len() as u32;
        if total <= current {
            return Err(LogError::InvalidConfig(format!(
                "topic {name:?} has {current} partitions: the new count must be greater, not \
                 {total} (partitions cannot be removed)"
            )));
        }
        if total > MAX_PARTITIONS {
            return Err(LogError::InvalidConfig(format!(
                "topic {name:?} has {current} partitions: {total} is more than the \
                 {MAX_PARTITIONS} a topic may have"
            )));
        }
        let store_total: u64 = topics.values().map(|t| t.partitions.len() as u64).sum();
        let added = u64::from(total - current);
        self.check_partition_limit("add partitions to topic", name, store_total, added)?;
        Ok(topic)
    }

    /// `LimitReached` if `added` more partitions than the store's `total` would exceed its
    /// limit (`action` on `topic` is what gets refused).
    fn check_partition_limit(
        &self,
        action: &'static str,
        topic: &str,
        total: u64,
        added: u64,
    ) -> Result<()> {
        if total + added > self.limits.max_total_partitions {
            return Err(LogError::LimitReached {
                action,
                topic: topic.to_string(),
                what: "partitions",
                current: total,
                requested: added,
                max: self.limits.max_total_partitions,
                flag: "--max-partitions",
                env: "STREAM_MAX_PARTITIONS",
            });
        }
        Ok(())
    }

    /// Grows topic `name` to `total` partitions, numbered on from the current ones (which,
    /// and their data, are untouched). `TopicNotFound` if there is no such topic;
    /// `InvalidConfig` unless `total` is greater than the current count and at most
    /// [`MAX_PARTITIONS`] (partitions are never removed); `LimitReached` if the store's total
    /// partition limit would be exceeded.
    ///
    /// All or nothing: the new partition directories are laid out (after removing what an
    /// earlier uncommitted attempt left there) and only then is `topic.meta` rewritten
    /// atomically, the commit point; a crash before it leaves the old count (the extra
    /// directories are ignored on open and removed by the next grow). The new logs are opened
    /// after the commit; should that fail, the metadata is set back to the old count and the
    /// new directories removed before the error is returned. Handles of the topic's
    /// partitions taken before the grow stay valid.
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        let topic = self.check_grow(name, total)?;
        let current = topic.partitions.len() as u32;
        let dir = self.dir.join(name);
        let prepared = remove_partitions_from(&dir, current)
            .and_then(|()| self.lay_out_partitions(&dir, current..total))
            .and_then(|()| sync_dir(&dir))
            .and_then(|()| write_meta(&dir, total));
        if let Err(e) = prepared {
            // Not committed (if the rename of the metadata did happen, the error came from the
            // directory fsync after it and the old count is written back below). Whatever
            // stays behind is ignored on open and removed by the next grow.
            roll_back_grow(&dir, current);
            return Err(e);
        }
        let added = match self.open_partitions(&dir, current..total) {
            Ok(logs) => logs,
            Err(e) => {
                // Every log opened so far is dropped (its files closed) by now.
                roll_back_grow(&dir, current);
                return Err(e);
            }
        };
        let mut partitions = topic.partitions.clone();
        partitions.extend(added);
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), Arc::new(Topic { partitions }));
        tracing::info!(topic = name, from = current, to = total, "partitions added");
        Ok(())
    }

    /// Deletes a topic and its files. `TopicNotFound` if there is none. Partition logs still
    /// held by callers refuse further appends.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        let topic = self
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .ok_or_else(|| LogError::TopicNotFound {
                topic: name.to_string(),
            })?;
        for p in &topic.partitions {
            p.close();
        }
        let dir = self.dir.join(name);
        let doomed = self.doomed_dir(name);
        fs::rename(&dir, &doomed).ctx("rename", &dir)?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&doomed).ctx("remove directory", &doomed)?;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// All topics with their partition counts, sorted by name.
    pub fn topics(&self) -> Vec<(String, u32)> {
        self.read_topics()
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len() as u32))
            .collect()
    }

    /// The partition count of a topic, if it exists.
    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.read_topics()
            .get(topic)
            .map(|t| t.partitions.len() as u32)
    }

    /// One partition's log. `TopicNotFound` / `PartitionNotFound`.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>> {
        let topics = self.read_topics();
        let t = topics.get(topic).ok_or_else(|| LogError::TopicNotFound {
            topic: topic.to_string(),
        })?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| LogError::PartitionNotFound {
                topic: topic.to_string(),
                partition,
            })
    }

    fn all_partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.read_topics()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Applies retention to every partition (the server calls this periodically). Keeps going
    /// after a failure and returns the first error.
    pub fn enforce_retention(&self) -> Result<()> {
        let mut first = Ok(());
        for p in self.all_partitions() {
            if let Err(e) = p.enforce_retention() {
                tracing::warn!("retention: {e}");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Fsyncs every partition and writes its indexes and clean-shutdown marker (on shutdown).
    /// Runs on as many threads as the store has fsync workers, since a store of thousands of
    /// partitions needs several fsyncs for each that changed; partitions unchanged since
    /// their last flush cost nothing. Keeps going after a failure and returns the first error.
    pub fn flush_all(&self) -> Result<()> {
        let parts = self.all_partitions();
        let next = AtomicUsize::new(0);
        let first: Mutex<Option<LogError>> = Mutex::new(None);
        let run = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = parts.get(i) else { break };
            if let Err(e) = p.flush() {
                tracing::warn!("flush: {e}");
                first
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        };
        let helpers = self.flush_threads.min(parts.len()).saturating_sub(1);
        std::thread::scope(|s| {
            for i in 0..helpers {
                // Without the helper (no thread to be had) the calling thread does its share.
                let _ = std::thread::Builder::new()
                    .name(format!("store-flush-{i}"))
                    .spawn_scoped(s, run);
            }
            run();
        });
        match first.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_directory_names() {
        for ok in ["orders", "md.BTC-USD", "a_b", "x"] {
            validate_topic_name(ok).unwrap();
        }
        let long = "a".repeat(201);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "ü",
            "a\0",
            long.as_str(),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
}
