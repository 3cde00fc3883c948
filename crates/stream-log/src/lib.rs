//! The stream server's storage engine: one segmented, append-only log per partition, with
//! sparse offset and time indexes, crash recovery, retention, durable topic metadata and
//! durable committed consumer-group offsets. The on-disk format, recovery and durability
//! policies are written down in `docs/storage.md`.
//!
//! Records are stored in exactly the STRP FETCH wire form, so a fetch is a contiguous byte range
//! of a segment, served without re-encoding. The append and read paths (record codec, segment
//! walk, group commit) are hand-written rather than built on an embedded database: they are the
//! latency-critical core and need exact control over system calls and fsyncs.
//!
//! Beyond the API below (implemented as written; `LogConfig` and `Record` fields are
//! `pub`): `PartitionLog::open` / `recovery_report` / `roll` / `flush` / `close` /
//! `wait_durable_blocking` / `segment_count` / `syncer_fsyncs`, `TopicStore::partition_count`,
//! `RecoveryReport`, `Durability: Display + FromStr`, `LogError::is_disk_full`, and
//! `decode_batch` / `message_crc` for clients and tests; `TopicStore::open_with` with
//! `StoreOptions` (`StoreLimits` on topics and total partitions, the fsync worker count, the
//! open-file cache size) and `LogError::LimitReached`.
//!
//! A partition costs neither a thread nor, between uses, a file descriptor: fsyncs run on a
//! fixed pool of workers per store (`sync/`), segment files are opened through a bounded cache
//! (`files.rs`).
//!
//! The API `stream-server` uses, at a glance:
//!
//! ```text
//! // Durability policy.
//! pub enum Durability { EveryWrite, GroupCommit /* default */, Interval(Duration), Never }
//! pub struct LogConfig { segment_bytes: u64, segment_ms: u64, index_interval_bytes: u32,
//!                        retention_bytes: Option<u64>, retention_ms: Option<u64>,
//!                        durability: Durability }           // + Default
//! pub struct Record<'a> { timestamp_ms: u64, key: &'a [u8], value: &'a [u8], priority: u8, codec: u8 }
//!
//! /// One partition's log. Send + Sync; appends and reads may run concurrently.
//! pub struct PartitionLog;
//! impl PartitionLog {
//!     /// Writes the batch with one system call; returns once written to the page cache
//!     /// (and, under EveryWrite, fsynced). Offsets are assigned consecutively.
//!     pub fn append(&self, records: &[Record<'_>]) -> Result<Appended, LogError>;
//!     /// Resolves once everything up to and including `offset` is durable under the policy
//!     /// (immediately for Never/Interval, after the covering group fsync for GroupCommit).
//!     pub async fn wait_durable(&self, offset: u64) -> Result<(), LogError>;
//!     /// Reads up to `max_records` / `max_bytes` (at least one record if any) starting at
//!     /// `offset`. Bytes are exactly the STRP FETCH wire form: n × (u32 LE len, Message).
//!     /// Below the log start offset: Err(LogError::OffsetOutOfRange{..}).
//!     pub fn read(&self, offset: u64, max_records: u32, max_bytes: u32) -> Result<ReadBatch, LogError>;
//!     /// The earliest offset whose record's timestamp is >= `timestamp_ms`, as
//!     /// (offset, timestamp_ms); None if no record below the high watermark has one (Kafka's
//!     /// ListOffsets by time). Timestamps need not grow with offsets; the time index bounds
//!     /// the walk to about one index interval.
//!     pub fn offset_for_timestamp(&self, timestamp_ms: u64) -> Result<Option<(u64, u64)>, LogError>;
//!     /// The earliest record with the largest timestamp (Kafka's MAX_TIMESTAMP); None if empty.
//!     pub fn offset_of_max_timestamp(&self) -> Result<Option<(u64, u64)>, LogError>;
//!     pub fn high_watermark(&self) -> u64;      // next offset to be assigned
//!     pub fn log_start_offset(&self) -> u64;
//!     pub fn size_bytes(&self) -> u64;
//!     /// Wakes when the high watermark moves (for long-poll fetches), without spinning.
//!     pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
//! }
//! pub struct Appended { pub base_offset: u64, pub last_offset: u64 }
//! pub struct ReadBatch { pub bytes: bytes::Bytes, pub count: u32, pub high_watermark: u64 }
//!
//! /// All topics under a data directory: metadata survives restart.
//! pub struct TopicStore;
//! impl TopicStore {
//!     /// Takes the data directory's lock (DataDirLock; DirInUse if another process has it).
//!     pub fn open(data_dir: &Path, config: LogConfig) -> Result<TopicStore, LogError>;
//!     pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), LogError>; // AlreadyExists
//!     pub fn delete_topic(&self, name: &str) -> Result<(), LogError>;                  // NotFound; removes files
//!     pub fn topics(&self) -> Vec<(String, u32)>;                                      // sorted by name
//!     pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>, LogError>;
//!     pub fn enforce_retention(&self) -> Result<(), LogError>;                         // server calls periodically
//!     pub fn flush_all(&self) -> Result<(), LogError>;                                 // on shutdown
//! }
//! /// Committed consumer-group offsets, durable across restart.
//! pub struct OffsetStore;
//! impl OffsetStore {
//!     pub fn open(data_dir: &Path) -> Result<OffsetStore, LogError>;
//!     pub fn commit(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<(), LogError>;
//!     pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<u64>;
//!     pub fn remove_topic(&self, topic: &str) -> Result<(), LogError>;
//! }
//! ```

#![warn(missing_docs)]

mod config;
mod error;
mod files;
mod index;
mod lock;
mod offsets;
mod partition;
mod record;
mod resources;
mod segment;
mod sync;
mod topics;

/// Locks `m`, also when a thread panicked while holding it: a panic elsewhere must not turn
/// every later call into a panic, and each critical section keeps its state consistent.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use config::{
    Durability, LogConfig, StoreLimits, StoreOptions, DEFAULT_MAX_TOPICS,
    DEFAULT_MAX_TOTAL_PARTITIONS, MAX_SEGMENT_BYTES,
};
pub use error::{LogError, Result};
pub use files::{default_max_open_files, MAX_DEFAULT_OPEN_FILES, MIN_DEFAULT_OPEN_FILES};
pub use lock::{DataDirLock, LOCK_FILE};
pub use offsets::OffsetStore;
pub use partition::{Appended, PartitionLog, ReadBatch, RecoveryReport, MAX_PREALLOCATION};
pub use record::{
    decode_batch, message_crc, DecodedRecord, Record, FRAME_FIXED_BYTES, MAX_MESSAGE_BYTES,
    MESSAGE_FIXED_BYTES,
};
pub use sync::{SyncPool, DEFAULT_SYNC_THREADS};
pub use topics::{validate_topic_name, TopicStore, MAX_PARTITIONS, MAX_TOPIC_NAME};
