//! Typed requests and their payload codecs.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::BatchView;
use crate::error::DecodeError;
use crate::header::{begin_frame, finish_frame};
use crate::types::{Priority, RequestType};
use crate::wire::{put_bytes, put_str, Reader};

/// BATCH_PRODUCE partition value meaning "choose per message" (murmur3 of the key, round robin
/// for empty keys).
pub const PARTITION_ANY: u32 = u32::MAX;

/// One message of a BATCH_PRODUCE: `str key, str value, u8 priority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRecord {
    /// Key (empty = round robin).
    pub key: Bytes,
    /// Value.
    pub value: Bytes,
    /// 0..=3.
    pub priority: u8,
}

/// Group liveness payload of HEARTBEAT (ours): `str group_id, str consumer_id, u32 generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHeartbeat {
    /// Group.
    pub group_id: String,
    /// Member id from JOIN_GROUP / JOIN_GROUP_V2.
    pub consumer_id: String,
    /// Generation from JOIN_GROUP_V2 (members of the original JOIN_GROUP need no group
    /// heartbeat: any request on their connection keeps them alive).
    pub generation: u32,
}

/// A request. Layouts are in docs/protocol.md; comments give the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 0: empty.
    ApiVersions,
    /// 1: empty.
    Metadata,
    /// 10: `str name, u32 partitions`.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Partition count (> 0).
        partitions: u32,
    },
    /// 11: `str name`.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// 12: empty.
    ListTopics,
    /// 20: `str topic, str key, str value, u8 priority`.
    Produce {
        /// Topic.
        topic: String,
        /// Key (empty = round robin).
        key: Bytes,
        /// Value.
        value: Bytes,
        /// 0..=3.
        priority: u8,
    },
    /// 21: `str topic, u32 partition, u64 offset, u32 max_messages`.
    Fetch {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// Most messages to return.
        max_messages: u32,
    },
    /// 22 (ours): `str topic, u32 partition (0xFFFFFFFF = by key), u32 n, n × (str key,
    /// str value, u8 priority)`.
    BatchProduce {
        /// Topic.
        topic: String,
        /// Explicit partition or [`PARTITION_ANY`].
        partition: u32,
        /// Messages, answered in this order.
        records: Vec<ProduceRecord>,
    },
    /// 23 (ours): `str topic, u32 partition, u64 offset, u32 max_messages, u32 max_bytes,
    /// u32 max_wait_ms`.
    FetchWait {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// Most messages to return.
        max_messages: u32,
        /// Most record bytes to return (at least one message is returned if any).
        max_bytes: u32,
        /// How long to wait for data when none is there yet.
        max_wait_ms: u32,
    },
    /// 30: `str group_id, str topic`.
    JoinGroup {
        /// Group.
        group_id: String,
        /// Topic the group consumes.
        topic: String,
    },
    /// 31: `str group_id, str consumer_id`.
    LeaveGroup {
        /// Group.
        group_id: String,
        /// Member.
        consumer_id: String,
    },
    /// 32: `str group_id, str topic, u32 partition, u64 offset`.
    CommitOffset {
        /// Group.
        group_id: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Next offset to consume.
        offset: u64,
    },
    /// 33: `str group_id, str topic, u32 partition`.
    FetchOffset {
        /// Group.
        group_id: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// 34 (ours): `str group_id, str topic, str consumer_id (empty = new member),
    /// u32 session_timeout_ms (0 = server default)`.
    JoinGroupV2 {
        /// Group.
        group_id: String,
        /// Topic the group consumes.
        topic: String,
        /// Own member id when rejoining, empty when new.
        consumer_id: String,
        /// Session timeout wanted.
        session_timeout_ms: u32,
    },
    /// 35 (ours): `str group_id, str consumer_id, u32 generation, str topic, u32 partition,
    /// u64 offset`.
    GroupCommit {
        /// Group.
        group_id: String,
        /// Member.
        consumer_id: String,
        /// Generation the member believes current.
        generation: u32,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Next offset to consume.
        offset: u64,
    },
    /// 40: empty (keep-alive) or [`GroupHeartbeat`].
    Heartbeat(Option<GroupHeartbeat>),
    /// 41: empty.
    Disconnect,
}

fn check_priority(p: u8, field: &'static str) -> Result<u8, DecodeError> {
    match Priority::from_u8(p) {
        Some(_) => Ok(p),
        None => Err(DecodeError::Invalid {
            field,
            reason: format!("{p} is not 0..=3 (CRITICAL, HIGH, NORMAL, LOW)"),
        }),
    }
}

/// Longest consumer-group id the server accepts, in bytes. Group ids name durable offset
/// records and label metrics, so an unbounded one would let a client grow both at will.
pub const MAX_GROUP_ID_LEN: usize = 255;

impl Request {
    /// The consumer group a group request names (None for the other requests).
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Request::JoinGroup { group_id, .. }
            | Request::LeaveGroup { group_id, .. }
            | Request::CommitOffset { group_id, .. }
            | Request::FetchOffset { group_id, .. }
            | Request::JoinGroupV2 { group_id, .. }
            | Request::GroupCommit { group_id, .. } => Some(group_id),
            Request::Heartbeat(Some(hb)) => Some(&hb.group_id),
            _ => None,
        }
    }

    /// The type of this request.
    pub fn request_type(&self) -> RequestType {
        match self {
            Request::ApiVersions => RequestType::ApiVersions,
            Request::Metadata => RequestType::Metadata,
            Request::CreateTopic { .. } => RequestType::CreateTopic,
            Request::DeleteTopic { .. } => RequestType::DeleteTopic,
            Request::ListTopics => RequestType::ListTopics,
            Request::Produce { .. } => RequestType::Produce,
            Request::Fetch { .. } => RequestType::Fetch,
            Request::BatchProduce { .. } => RequestType::BatchProduce,
            Request::FetchWait { .. } => RequestType::FetchWait,
            Request::JoinGroup { .. } => RequestType::JoinGroup,
            Request::LeaveGroup { .. } => RequestType::LeaveGroup,
            Request::CommitOffset { .. } => RequestType::CommitOffset,
            Request::FetchOffset { .. } => RequestType::FetchOffset,
            Request::JoinGroupV2 { .. } => RequestType::JoinGroupV2,
            Request::GroupCommit { .. } => RequestType::GroupCommit,
            Request::Heartbeat(_) => RequestType::Heartbeat,
            Request::Disconnect => RequestType::Disconnect,
        }
    }

    /// The wire type id.
    pub fn type_id(&self) -> u32 {
        self.request_type().id()
    }

    /// Appends the payload (no header).
    pub fn encode_payload(&self, buf: &mut BytesMut) {
        match self {
            Request::ApiVersions
            | Request::Metadata
            | Request::ListTopics
            | Request::Disconnect
            | Request::Heartbeat(None) => {}
            Request::CreateTopic { name, partitions } => {
                put_str(buf, name);
                buf.put_u32_le(*partitions);
            }
            Request::DeleteTopic { name } => put_str(buf, name),
            Request::Produce {
                topic,
                key,
                value,
                priority,
            } => {
                put_str(buf, topic);
                put_bytes(buf, key);
                put_bytes(buf, value);
                buf.put_u8(*priority);
            }
            Request::Fetch {
                topic,
                partition,
                offset,
                max_messages,
            } => {
                put_str(buf, topic);
                buf.put_u32_le(*partition);
                buf.put_u64_le(*offset);
                buf.put_u32_le(*max_messages);
            }
            Request::BatchProduce {
                topic,
                partition,
                records,
            } => {
                put_str(buf, topic);
                buf.put_u32_le(*partition);
                buf.put_u32_le(records.len() as u32);
                for r in records {
                    put_bytes(buf, &r.key);
                    put_bytes(buf, &r.value);
                    buf.put_u8(r.priority);
                }
            }
            Request::FetchWait {
                topic,
                partition,
                offset,
                max_messages,
                max_bytes,
                max_wait_ms,
            } => {
                put_str(buf, topic);
                buf.put_u32_le(*partition);
                buf.put_u64_le(*offset);
                buf.put_u32_le(*max_messages);
                buf.put_u32_le(*max_bytes);
                buf.put_u32_le(*max_wait_ms);
            }
            Request::JoinGroup { group_id, topic } => {
                put_str(buf, group_id);
                put_str(buf, topic);
            }
            Request::LeaveGroup {
                group_id,
                consumer_id,
            } => {
                put_str(buf, group_id);
                put_str(buf, consumer_id);
            }
            Request::CommitOffset {
                group_id,
                topic,
                partition,
                offset,
            } => {
                put_str(buf, group_id);
                put_str(buf, topic);
                buf.put_u32_le(*partition);
                buf.put_u64_le(*offset);
            }
            Request::FetchOffset {
                group_id,
                topic,
                partition,
            } => {
                put_str(buf, group_id);
                put_str(buf, topic);
                buf.put_u32_le(*partition);
            }
            Request::JoinGroupV2 {
                group_id,
                topic,
                consumer_id,
                session_timeout_ms,
            } => {
                put_str(buf, group_id);
                put_str(buf, topic);
                put_str(buf, consumer_id);
                buf.put_u32_le(*session_timeout_ms);
            }
            Request::GroupCommit {
                group_id,
                consumer_id,
                generation,
                topic,
                partition,
                offset,
            } => {
                put_str(buf, group_id);
                put_str(buf, consumer_id);
                buf.put_u32_le(*generation);
                put_str(buf, topic);
                buf.put_u32_le(*partition);
                buf.put_u64_le(*offset);
            }
            Request::Heartbeat(Some(hb)) => {
                put_str(buf, &hb.group_id);
                put_str(buf, &hb.consumer_id);
                buf.put_u32_le(hb.generation);
            }
        }
    }

    /// Appends a whole frame: header + payload.
    pub fn encode_frame(&self, buf: &mut BytesMut) {
        let start = begin_frame(buf, self.type_id());
        self.encode_payload(buf);
        finish_frame(buf, start);
    }

    /// A whole frame as bytes.
    pub fn to_frame(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode_frame(&mut b);
        b.freeze()
    }

    /// Decodes the payload of a request of type `type_id`. Never panics; the error names the
    /// field that was wrong. Keys and values are zero-copy slices of `payload`.
    pub fn decode(type_id: u32, payload: Bytes) -> Result<Request, DecodeError> {
        let t = RequestType::from_id(type_id).ok_or(DecodeError::UnknownType(type_id))?;
        let mut r = Reader::new(payload);
        let req = match t {
            RequestType::ApiVersions => Request::ApiVersions,
            RequestType::Metadata => Request::Metadata,
            RequestType::ListTopics => Request::ListTopics,
            RequestType::Disconnect => Request::Disconnect,
            RequestType::CreateTopic => Request::CreateTopic {
                name: r.string("name")?,
                partitions: r.u32("partitions")?,
            },
            RequestType::DeleteTopic => Request::DeleteTopic {
                name: r.string("name")?,
            },
            RequestType::Produce => Request::Produce {
                topic: r.string("topic")?,
                key: r.bytes("key")?,
                value: r.bytes("value")?,
                priority: check_priority(r.u8("priority")?, "priority")?,
            },
            RequestType::Fetch => Request::Fetch {
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
                max_messages: r.u32("max_messages")?,
            },
            RequestType::BatchProduce => {
                // The layout's one reader; the owned request's bytes are slices of `payload`.
                let payload = r.rest();
                let view = BatchView::parse(&payload)?;
                Request::BatchProduce {
                    topic: view.topic.to_owned(),
                    partition: view.partition,
                    records: view
                        .records()
                        .map(|rec| ProduceRecord {
                            key: payload.slice_ref(rec.key),
                            value: payload.slice_ref(rec.value),
                            priority: rec.priority,
                        })
                        .collect(),
                }
            }
            RequestType::FetchWait => Request::FetchWait {
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
                max_messages: r.u32("max_messages")?,
                max_bytes: r.u32("max_bytes")?,
                max_wait_ms: r.u32("max_wait_ms")?,
            },
            RequestType::JoinGroup => Request::JoinGroup {
                group_id: r.string("group_id")?,
                topic: r.string("topic")?,
            },
            RequestType::LeaveGroup => Request::LeaveGroup {
                group_id: r.string("group_id")?,
                consumer_id: r.string("consumer_id")?,
            },
            RequestType::CommitOffset => Request::CommitOffset {
                group_id: r.string("group_id")?,
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
            },
            RequestType::FetchOffset => Request::FetchOffset {
                group_id: r.string("group_id")?,
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
            },
            RequestType::JoinGroupV2 => Request::JoinGroupV2 {
                group_id: r.string("group_id")?,
                topic: r.string("topic")?,
                consumer_id: r.string("consumer_id")?,
                session_timeout_ms: r.u32("session_timeout_ms")?,
            },
            RequestType::GroupCommit => Request::GroupCommit {
                group_id: r.string("group_id")?,
                consumer_id: r.string("consumer_id")?,
                generation: r.u32("generation")?,
                topic: r.string("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
            },
            RequestType::Heartbeat => {
                if r.remaining() == 0 {
                    Request::Heartbeat(None)
                } else {
                    Request::Heartbeat(Some(GroupHeartbeat {
                        group_id: r.string("group_id")?,
                        consumer_id: r.string("consumer_id")?,
                        generation: r.u32("generation")?,
                    }))
                }
            }
        };
        r.finish()?;
        Ok(req)
    }
}
