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
        RecordsError::Crc { .. } | RecordsError::Truncated(_) | RecordsError::Corrupt { .. } => {
            ResponseError::CorruptMessage
        }
        RecordsError::Magic(_) => ResponseError::UnsupportedForMessageFormat,
        RecordsError::UnknownCodec(_) => ResponseError::UnsupportedCompressionType,
        // The batch as a whole is too large for this server, as past Kafka's max.message.bytes:
        // the Java producer splits it and sends the halves.
        RecordsError::TooLarge { .. } | RecordsError::OverBudget { .. } => {
            ResponseError::MessageTooLarge
        }
        // Retriable: nothing was stored, and the memory frees up as requests in flight finish.
        RecordsError::Busy { .. } => ResponseError::RequestTimedOut,
        RecordsError::Transactional => ResponseError::TransactionalIdAuthorizationFailed,
        RecordsError::Headers | RecordsError::Invalid(_) => ResponseError::InvalidRecord,
    };
    e.code()
}
