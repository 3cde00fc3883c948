//! Error codes carried in responses (`i16` on the wire) and the decoder's error type.

use std::fmt;

/// Error code of a response. Codes 0..=-12 are the original protocol's; -13 and below are our
/// additions (documented in docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    /// Success.
    None = 0,
    /// An unexpected server-side failure (also what unknown codes decode to).
    Unknown = -1,
    /// Unknown request type, or a payload that does not parse.
    InvalidRequest = -2,
    /// The topic does not exist.
    TopicNotFound = -3,
    /// The partition does not exist in the topic.
    PartitionNotFound = -4,
    /// The offset is outside the partition's log (below its start or past its end).
    InvalidOffset = -5,
    /// CREATE_TOPIC for a name that exists.
    TopicAlreadyExists = -6,
    /// The consumer group does not exist.
    GroupNotFound = -7,
    /// The consumer is not (or no longer) a member of the group: rejoin with an empty id.
    ConsumerNotFound = -8,
    /// The operation timed out.
    Timeout = -9,
    /// A network failure.
    NetworkError = -10,
    /// Bad header (magic, version, oversized length): the connection is closed after it.
    ProtocolError = -11,
    /// The broker cannot serve the request (e.g. it is shutting down).
    BrokerNotAvailable = -12,
    /// Ours: the group is rebalancing; the member must rejoin (JOIN_GROUP_V2) to learn its
    /// new assignment and generation.
    RebalanceInProgress = -13,
    /// Ours: a message or batch exceeds a configured size limit.
    RequestTooLarge = -14,
    /// Ours: the request carried a generation that is not the group's current one (a stale
    /// member's commit is refused with this).
    IllegalGeneration = -15,
    /// Ours: reserved for client authentication.
    Unauthorized = -16,
    /// Ours: the storage engine failed (disk error); the request was not applied.
    StorageError = -17,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::None,
        ErrorCode::Unknown,
        ErrorCode::InvalidRequest,
        ErrorCode::TopicNotFound,
        ErrorCode::PartitionNotFound,
        ErrorCode::InvalidOffset,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::GroupNotFound,
        ErrorCode::ConsumerNotFound,
        ErrorCode::Timeout,
        ErrorCode::NetworkError,
        ErrorCode::ProtocolError,
        ErrorCode::BrokerNotAvailable,
        ErrorCode::RebalanceInProgress,
        ErrorCode::RequestTooLarge,
        ErrorCode::IllegalGeneration,
        ErrorCode::Unauthorized,
        ErrorCode::StorageError,
    ];

    /// The wire value.
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    /// The code for a wire value, `None` (the Option) for a value we do not know.
    pub fn from_i16(v: i16) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_i16() == v)
    }

    /// The code for a wire value; unknown values map to [`ErrorCode::Unknown`] so that a newer
    /// server's codes never make an older client's decoder fail.
    pub fn from_i16_lossy(v: i16) -> ErrorCode {
        Self::from_i16(v).unwrap_or(ErrorCode::Unknown)
    }

    /// The protocol's upper-case name, e.g. `TOPIC_NOT_FOUND`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "NONE",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::TopicNotFound => "TOPIC_NOT_FOUND",
            ErrorCode::PartitionNotFound => "PARTITION_NOT_FOUND",
            ErrorCode::InvalidOffset => "INVALID_OFFSET",
            ErrorCode::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorCode::GroupNotFound => "GROUP_NOT_FOUND",
            ErrorCode::ConsumerNotFound => "CONSUMER_NOT_FOUND",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::NetworkError => "NETWORK_ERROR",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::BrokerNotAvailable => "BROKER_NOT_AVAILABLE",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::RequestTooLarge => "REQUEST_TOO_LARGE",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::StorageError => "STORAGE_ERROR",
        }
    }

    /// True for [`ErrorCode::None`].
    pub fn is_ok(self) -> bool {
        self == ErrorCode::None
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_i16())
    }
}

/// Why a payload, message or frame could not be decoded. Every variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ended inside a field.
    #[error("truncated {field}: need {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A string field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A field has a value outside its domain.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes are left after the last field.
    #[error("{count} unexpected trailing bytes after the last field")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The type id is not one we know.
    #[error("unknown request type {0}")]
    UnknownType(u32),
}
