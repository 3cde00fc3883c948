//! STRP, the stream server's wire protocol: header, request and response payloads, the
//! Message layout inside FETCH responses, error codes, murmur3 partitioning. No I/O: both the
//! server and the clients use it.
//!
//! Layout of every frame: a 16-byte little-endian header (`magic 0x53545250, version 1,
//! type, length`) then `length` payload bytes (at most 16 MiB). See docs/protocol.md for the
//! full protocol including our additions (BATCH_PRODUCE 22, FETCH_WAIT 23, JOIN_GROUP_V2 34,
//! GROUP_COMMIT 35, the group HEARTBEAT payload, error codes -13..-17).
//!
//! ```
//! use stream_proto::{FrameDecoder, Request, Response};
//! let mut wire = bytes::BytesMut::new();
//! Request::ListTopics.encode_frame(&mut wire);
//! let frame = FrameDecoder::new().decode(&mut wire).unwrap().unwrap();
//! assert_eq!(Request::decode(frame.header.type_id, frame.payload).unwrap(), Request::ListTopics);
//! ```

#![deny(missing_docs)]

mod batch;
mod error;
mod frame;
mod header;
mod message;
mod murmur3;
pub mod record;
mod request;
mod response;
mod types;
pub mod wire;

pub use batch::{BatchPrefix, BatchRecord, BatchView, MIN_BATCH_RECORD_LEN};
pub use error::{DecodeError, ErrorCode};
pub use frame::{Frame, FrameDecoder, FrameError};
pub use header::{
    begin_frame, finish_frame, Header, HeaderError, HEADER_LEN, MAGIC, MAX_PAYLOAD, VERSION,
};
pub use message::{decode_all_records, decode_records, encode_record, validate_records, Message};
pub use murmur3::{murmur3_x86_32, partition_for_key};
pub use record::{message_crc, MESSAGE_FIXED_LEN};
pub use request::{GroupHeartbeat, ProduceRecord, Request, MAX_GROUP_ID_LEN, PARTITION_ANY};
pub use response::{ApiVersion, FetchResponse, ProducedOffset, Response, Status, TopicInfo};
pub use types::{Priority, RequestType};

/// Protocol version of every request type's layout, as answered by API_VERSIONS.
pub fn supported_versions() -> Vec<ApiVersion> {
    RequestType::ALL
        .iter()
        .map(|t| ApiVersion {
            type_id: t.id(),
            version: 1,
        })
        .collect()
}
