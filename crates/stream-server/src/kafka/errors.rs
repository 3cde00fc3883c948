//! What the broker's and the record codec's failures are called in Kafka.

use kafka_protocol::ResponseError;
use stream_proto::ErrorCode;

use super::records::RecordsError;

/// The Kafka error code for a broker failure.
pub fn kafka_code(code: ErrorCode) -> i16 {
    let e = match code {
        ErrorCode::None => return 0,
        ErrorCode::TopicNotFound | ErrorCode::PartitionNotFound => {
            ResponseError::UnknownTopicOrPartition
        }
        ErrorCode::InvalidOffset => ResponseError::OffsetOutOfRange,
        ErrorCode::TopicAlreadyExists => ResponseError::TopicAlreadyExists,
        ErrorCode::RequestTooLarge => ResponseError::MessageTooLarge,
        ErrorCode::StorageError => ResponseError::KafkaStorageError,
        ErrorCode::InvalidRequest => ResponseError::InvalidRequest,
        ErrorCode::Timeout => ResponseError::RequestTimedOut,
        ErrorCode::BrokerNotAvailable => ResponseError::BrokerNotAvailable,
        ErrorCode::Unauthorized => ResponseError::ClusterAuthorizationFailed,
        _ => ResponseError::UnknownServerError,
    };
    e.code()
}

/// The Kafka error code for records a Produce could not store.
pub fn records_code(e: &RecordsError) -> i16 {
    let e = match e {
        RecordsError::Crc { .. } | RecordsError::Truncated(_) => ResponseError::CorruptMessage,
        RecordsError::Magic(_) => ResponseError::UnsupportedForMessageFormat,
        RecordsError::Compressed(_) => ResponseError::UnsupportedCompressionType,
        RecordsError::Transactional => ResponseError::TransactionalIdAuthorizationFailed,
        RecordsError::Headers | RecordsError::Invalid(_) => ResponseError::InvalidRecord,
    };
    e.code()
}
