//! Topic metadata and the partition logs of every topic under a data directory.
//!
//! Layout: `<data_dir>/topics/<name>/topic.meta` (text: `partitions=<n>`) and one directory
//! per partition, `<data_dir>/topics/<name>/<partition>/`. A topic is created complete (metadata
//! and every partition's files) in a dot-named staging directory and renamed into place, and
//! deleted by renaming it to a dot-named directory before removing it, so neither a crash nor a
//! failed create ever leaves a half-made topic visible; dot-named leftovers are removed on open.
//! The store holds the data directory's [`DataDirLock`] while it is open.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::config::{Durability, LogConfig};
use crate::error::{IoContext, LogError, Result};
use crate::lock::DataDirLock;
use crate::partition::PartitionLog;

const META: &str = "topic.meta";
/// Most partitions a topic may have (each is a directory and, for fsync policies, a thread).
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
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises create/delete (directory renames), never held by appends or reads.
    admin: Mutex<()>,
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

fn read_meta(dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(dir.join(META)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("partitions="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0 && n <= MAX_PARTITIONS)
}

impl TopicStore {
    /// Opens the store under `data_dir` (created if missing), recovering every partition log.
    /// First takes the data directory's exclusive lock (`<data_dir>/.lock`, see
    /// [`DataDirLock`]), held until the store is dropped: `LogError::DirInUse` if another
    /// process has the directory open.
    pub fn open(data_dir: &Path, config: LogConfig) -> Result<TopicStore> {
        config.validate()?;
        fs::create_dir_all(data_dir).ctx("create directory", data_dir)?;
        let lock = DataDirLock::acquire(data_dir)?;
        let dir = data_dir.join("topics");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let mut topics = BTreeMap::new();
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
            let mut partitions = Vec::with_capacity(n as usize);
            for p in 0..n {
                let log = PartitionLog::open(&path.join(p.to_string()), p, config.clone())?;
                partitions.push(Arc::new(log));
            }
            topics.insert(name, Arc::new(Topic { partitions }));
        }
        tracing::info!(
            dir = %dir.display(),
            topics = topics.len(),
            durability = %config.durability,
            "topic store opened"
        );
        Ok(TopicStore {
            dir,
            config,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            _lock: lock,
        })
    }

    /// The configuration every partition log uses.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Creates a topic with `partitions` partitions (1..=[`MAX_PARTITIONS`]).
    /// `TopicAlreadyExists` if taken.
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
        if self.read_topics().contains_key(name) {
            return Err(LogError::TopicAlreadyExists {
                topic: name.to_string(),
            });
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
        let logs =
            match sync_dir(&self.dir).and_then(|()| self.open_partitions(&final_dir, partitions)) {
                Ok(logs) => logs,
                Err(e) => {
                    // Every log opened so far is dropped (threads joined, files closed) by now.
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
        let meta = staging.join(META);
        {
            let mut f = fs::File::create(&meta).ctx("create", &meta)?;
            write!(f, "format=1\npartitions={partitions}\n").ctx("write", &meta)?;
            f.sync_all().ctx("fsync", &meta)?;
        }
        // Opened once to lay out its files, never appended to: no syncer thread needed, and
        // the directory fsync below makes the new files durable for the fsync policies.
        let layout = LogConfig {
            durability: Durability::Never,
            ..self.config.clone()
        };
        let sync = self.config.durability != Durability::Never;
        for p in 0..partitions {
            let dir = staging.join(p.to_string());
            drop(PartitionLog::open(&dir, p, layout.clone())?);
            if sync {
                sync_dir(&dir)?;
            }
        }
        sync_dir(staging)
    }

    /// Opens every partition log of a topic; on an error the ones opened so far are dropped.
    fn open_partitions(&self, dir: &Path, partitions: u32) -> Result<Vec<Arc<PartitionLog>>> {
        (0..partitions)
            .map(|p| {
                PartitionLog::open(&dir.join(p.to_string()), p, self.config.clone()).map(Arc::new)
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

    /// Fsyncs every partition and writes its indexes (on shutdown).
    pub fn flush_all(&self) -> Result<()> {
        let mut first = Ok(());
        for p in self.all_partitions() {
            if let Err(e) = p.flush() {
                tracing::warn!("flush: {e}");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
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
