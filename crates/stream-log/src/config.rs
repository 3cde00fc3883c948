//! Configuration: the durability policy and per-log settings.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::LogError;

/// When appended bytes are forced to stable storage with `fdatasync`.
///
/// Text form (for flags and environment variables): `every-write`, `group-commit`,
/// `interval:<n>ms` / `interval:<n>s` (a bare number means milliseconds), `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `append` returns only after an fsync covering the batch (concurrent appenders share one).
    EveryWrite,
    /// `append` returns after the page-cache write; a `wait_durable` queues an fsync on the
    /// store's shared workers (unless one is pending), which covers every append made before it
    /// started, and resolves after it. Waits arriving during an fsync share the next. The
    /// default.
    #[default]
    GroupCommit,
    /// The store's timer queues an fsync of each partition with unsynced data at this period;
    /// nothing waits for it.
    Interval(Duration),
    /// Page cache only: survives a process crash, not a power loss.
    Never,
}

impl Durability {
    /// The policies under which a write is acknowledged only after an fsync covering it.
    pub fn acks_after_fsync(self) -> bool {
        matches!(self, Durability::GroupCommit | Durability::EveryWrite)
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::EveryWrite => f.write_str("every-write"),
            Durability::GroupCommit => f.write_str("group-commit"),
            Durability::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
            Durability::Never => f.write_str("never"),
        }
    }
}

impl FromStr for Durability {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "every-write" | "everywrite" | "always" => return Ok(Durability::EveryWrite),
            "group-commit" | "groupcommit" | "group" => return Ok(Durability::GroupCommit),
            "never" | "none" | "page-cache" => return Ok(Durability::Never),
            _ => {}
        }
        let bad = || {
            LogError::InvalidConfig(format!(
                "durability {s:?}: expected every-write, group-commit, interval:<n>ms, interval:<n>s or never"
            ))
        };
        let rest = t.strip_prefix("interval:").ok_or_else(bad)?;
        let (num, scale) = if let Some(n) = rest.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = rest.strip_suffix('s') {
            (n, 1000)
        } else {
            (rest, 1)
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        let ms = n.checked_mul(scale).filter(|&ms| ms > 0).ok_or_else(bad)?;
        Ok(Durability::Interval(Duration::from_millis(ms)))
    }
}

/// Settings of one partition log (shared by all partitions of a [`crate::TopicStore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before a write would take the active one past this many bytes.
    /// At most [`MAX_SEGMENT_BYTES`] (index positions are u32).
    pub segment_bytes: u64,
    /// Roll when the active segment is older than this (wall clock since it was created, or
    /// since its first record's timestamp after a restart).
    pub segment_ms: u64,
    /// One sparse index entry per this many bytes of records: bounds the forward walk of a read.
    pub index_interval_bytes: u32,
    /// Delete the oldest whole segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Delete whole segments whose newest record is older than this.
    pub retention_ms: Option<u64>,
    /// The fsync policy.
    pub durability: Durability,
}

/// Limits of a [`crate::TopicStore`], checked by `create_topic`: each partition costs
/// directories, memory and (while in use) a cached descriptor, so a broker refuses to grow past
/// what it was sized for instead of failing half-way. The server sets them with
/// `--max-topics` / `STREAM_MAX_TOPICS` and `--max-partitions` / `STREAM_MAX_PARTITIONS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most topics the store holds.
    pub max_topics: u64,
    /// Most partitions, summed over all topics.
    pub max_total_partitions: u64,
}

/// Default of [`StoreLimits::max_topics`].
pub const DEFAULT_MAX_TOPICS: u64 = 10_000;
/// Default of [`StoreLimits::max_total_partitions`].
pub const DEFAULT_MAX_TOTAL_PARTITIONS: u64 = 100_000;

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_topics: DEFAULT_MAX_TOPICS,
            max_total_partitions: DEFAULT_MAX_TOTAL_PARTITIONS,
        }
    }
}

/// Store-wide resources and limits of a [`crate::TopicStore`] (the per-log settings are in
/// [`LogConfig`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Limits on topics and partitions.
    pub limits: StoreLimits,
    /// Threads running the fsyncs of every partition (at least 1; default
    /// [`crate::DEFAULT_SYNC_THREADS`]); one more thread drives the interval policy.
    pub sync_threads: Option<usize>,
    /// Most segment files kept open at once (at least 1); default
    /// [`crate::default_max_open_files`], a quarter of the open-files soft limit.
    pub max_open_files: Option<usize>,
}

/// Upper bound of [`LogConfig::segment_bytes`]: positions in the index are u32.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            // 256 MiB bounds the recovery scan of the active segment after a crash (well under
            // a second) while keeping the number of files small.
            segment_bytes: 256 << 20,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention_ms: None,
            durability: Durability::GroupCommit,
        }
    }
}

impl LogConfig {
    /// Checks ranges; called by every `open`.
    pub fn validate(&self) -> Result<(), LogError> {
        if self.segment_bytes < 1024 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(LogError::InvalidConfig(format!(
                "segment_bytes {} not in [1024, {MAX_SEGMENT_BYTES}]",
                self.segment_bytes
            )));
        }
        if self.segment_ms == 0 {
            return Err(LogError::InvalidConfig("segment_ms must be > 0".into()));
        }
        if self.index_interval_bytes == 0 {
            return Err(LogError::InvalidConfig(
                "index_interval_bytes must be > 0".into(),
            ));
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return Err(LogError::InvalidConfig(
                    "durability interval must be > 0".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_round_trips() {
        for d in [
            Durability::EveryWrite,
            Durability::GroupCommit,
            Durability::Interval(Duration::from_millis(100)),
            Durability::Never,
        ] {
            assert_eq!(d.to_string().parse::<Durability>().unwrap(), d);
        }
        assert_eq!(
            "interval:2s".parse::<Durability>().unwrap(),
            Durability::Interval(Duration::from_secs(2))
        );
        assert_eq!(
            "interval:250".parse::<Durability>().unwrap(),
            Durability::Interval(Duration::from_millis(250))
        );
        for bad in ["", "sometimes", "interval:", "interval:0ms", "interval:xs"] {
            assert!(bad.parse::<Durability>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_config_is_valid() {
        LogConfig::default().validate().unwrap();
        assert_eq!(LogConfig::default().durability, Durability::GroupCommit);
    }
}
