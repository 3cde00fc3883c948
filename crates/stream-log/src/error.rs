//! The crate's error type. Every variant that touches the disk names the file, so a caller's log
//! line says where the problem is without a backtrace.

use std::io;
use std::path::{Path, PathBuf};

/// Everything the storage engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file-system operation failed (the message carries the OS reason, e.g. "No space left
    /// on device" or "Read-only file system"). The OS error is part of the message rather than a
    /// separate `source()`, so that a printed error chain says it once.
    #[error("{op} {}: {error}{}", path.display(), fd_hint(error))]
    Io {
        /// What we were doing ("open", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The requested offset is below the log start offset (deleted by retention) or above the
    /// high watermark. The server answers `INVALID_OFFSET`.
    #[error("offset {offset} out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The first offset still stored.
        log_start: u64,
        /// The next offset to be assigned.
        high_watermark: u64,
    },
    /// Stored bytes failed validation (length or CRC) on a read; nothing corrupt is returned.
    #[error("corrupt record in {} at byte {position} (offset {offset}): {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad record inside the segment.
        position: u64,
        /// The offset that was expected at that position.
        offset: u64,
        /// What failed.
        reason: &'static str,
    },
    /// A record is larger than [`crate::MAX_MESSAGE_BYTES`].
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A previous fsync or write failure left the page cache in an unknown state; the log
    /// refuses further appends until it is reopened (and recovered).
    #[error("partition log {} is failed after an earlier I/O error: {reason}", path.display())]
    Failed {
        /// The partition directory.
        path: PathBuf,
        /// The original error, as text.
        reason: String,
    },
    /// The partition log was closed (its topic deleted, or the store shut down).
    #[error("partition log {} is closed", path.display())]
    Closed {
        /// The partition directory.
        path: PathBuf,
    },
    /// No topic of that name.
    #[error("topic {topic:?} not found")]
    TopicNotFound {
        /// The topic name.
        topic: String,
    },
    /// A topic of that name exists already.
    #[error("topic {topic:?} already exists")]
    TopicAlreadyExists {
        /// The topic name.
        topic: String,
    },
    /// The topic exists but has no such partition.
    #[error("topic {topic:?} has no partition {partition}")]
    PartitionNotFound {
        /// The topic name.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// The topic name is not usable (it must be safe as a directory name).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A configuration value is out of range or does not parse.
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(String),
    /// Creating (or growing) the topic would exceed a configured limit of the store
    /// ([`crate::StoreLimits`]); nothing was created.
    #[error(
        "cannot {action} {topic:?}: {what} limit reached ({current} {what} exist, {requested} more would exceed the maximum of {max}; raise {flag} / {env})"
    )]
    LimitReached {
        /// What was refused: "create topic" or "add partitions to topic".
        action: &'static str,
        /// The topic that was not created or grown.
        topic: String,
        /// What is limited: "topics" or "partitions".
        what: &'static str,
        /// How many exist now.
        current: u64,
        /// How many the create would add.
        requested: u64,
        /// The limit.
        max: u64,
        /// The stream-server flag that sets it.
        flag: &'static str,
        /// The environment variable that sets it.
        env: &'static str,
    },
    /// Another process holds the data directory's lock (see [`crate::DataDirLock`]).
    #[error(
        "data directory {} is in use by another stream-server (pid {}; lock file {})",
        dir.display(),
        pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
        lock_file.display()
    )]
    DirInUse {
        /// The data directory.
        dir: PathBuf,
        /// The owner's pid as its lock file says (None if unreadable, e.g. not written yet).
        pid: Option<u32>,
        /// The lock file.
        lock_file: PathBuf,
    },
}

/// Running out of descriptors deserves a hint: the open-file cache is bounded, so the usual
/// cause is a limit too low for the cache plus the connections.
fn fd_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => {
            " (out of file descriptors: lower --max-open-files / STREAM_MAX_OPEN_FILES or raise the open-files limit, ulimit -n)"
        }
        _ => "",
    }
}

impl LogError {
    /// Wraps an I/O error with the operation and path it came from.
    pub fn io(op: &'static str, path: impl AsRef<Path>, error: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// True when the underlying cause is a full disk or a file-size limit (ENOSPC, EDQUOT,
    /// EFBIG): the caller may retry after space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            LogError::Io { error, .. } => matches!(
                error.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
            ),
            _ => false,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Adds path context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| LogError::io(op, path, e))
    }
}
