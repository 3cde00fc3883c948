//! The one mapping from storage errors to STRP error codes.

use stream_log::LogError;
use stream_proto::ErrorCode;

/// A failed request: the code and message its answer carries.
pub type Failure = (ErrorCode, String);

/// Maps a storage error to the protocol's code.
pub fn log_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::TopicNotFound { .. } | LogError::Closed { .. } => ErrorCode::TopicNotFound,
        LogError::TopicAlreadyExists { .. } => ErrorCode::TopicAlreadyExists,
        LogError::PartitionNotFound { .. } => ErrorCode::PartitionNotFound,
        LogError::OffsetOutOfRange { .. } => ErrorCode::InvalidOffset,
        LogError::RecordTooLarge { .. } => ErrorCode::RequestTooLarge,
        // A configured limit (its message names the flag): the request cannot be served as
        // asked, and retrying it unchanged will not help.
        LogError::InvalidTopicName { .. }
        | LogError::InvalidConfig(_)
        | LogError::LimitReached { .. } => ErrorCode::InvalidRequest,
        // Listed, not caught by `_`: a new storage error must be given its code here.
        LogError::Io { .. }
        | LogError::Corrupt { .. }
        | LogError::Failed { .. }
        | LogError::DirInUse { .. } => ErrorCode::StorageError,
    }
}

/// A storage error as the failure a client is answered with.
pub fn fail(e: LogError) -> Failure {
    (log_error_code(&e), e.to_string())
}

/// A failed durability wait: the request was applied but cannot be promised durable.
pub fn not_durable(e: LogError) -> Failure {
    tracing::error!(error = %e, "durability wait failed");
    (ErrorCode::StorageError, format!("not durable: {e}"))
}
