//! Typed responses and their payload codecs. Every response starts with `i16 err`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, ErrorCode};
use crate::header::{begin_frame, finish_frame};
use crate::message::{decode_records, validate_records, Message};
use crate::types::RequestType;
use crate::wire::{put_str, Reader};

/// `i16 err, str msg`: the answer of CREATE_TOPIC, DELETE_TOPIC, LEAVE_GROUP, COMMIT_OFFSET,
/// GROUP_COMMIT, HEARTBEAT, DISCONNECT, and of unknown request types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Outcome.
    pub error: ErrorCode,
    /// Human-readable detail (empty on success).
    pub message: String,
}

impl Status {
    /// Success with an empty message.
    pub fn ok() -> Status {
        Status {
            error: ErrorCode::None,
            message: String::new(),
        }
    }

    /// A failure.
    pub fn err(error: ErrorCode, message: impl Into<String>) -> Status {
        Status {
            error,
            message: message.into(),
        }
    }
}

/// One entry of API_VERSIONS: `u32 type_id, u32 version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    /// Request type id.
    pub type_id: u32,
    /// Highest supported version of that type's layout (all are 1 today).
    pub version: u32,
}

/// One entry of METADATA: `str name, u32 partition_count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// Where one BATCH_PRODUCE message landed: `u32 partition, u64 offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedOffset {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// FETCH answer: `i16 err, str msg, u64 high_watermark, u32 n, n × (u32 len, Message)`.
/// The records stay in wire form (the server passes log bytes through untouched); use
/// [`FetchResponse::messages`] to decode them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// Detail.
    pub message: String,
    /// Next offset to be written in the partition.
    pub high_watermark: u64,
    /// Number of records in `records`.
    pub count: u32,
    /// `count × (u32 len, Message)`, validated by the decoder.
    pub records: Bytes,
}

impl FetchResponse {
    /// An empty answer carrying an error.
    pub fn error(error: ErrorCode, message: impl Into<String>) -> FetchResponse {
        FetchResponse {
            error,
            message: message.into(),
            high_watermark: 0,
            count: 0,
            records: Bytes::new(),
        }
    }

    /// The messages (zero-copy slices of the response).
    pub fn messages(&self) -> Result<Vec<Message>, DecodeError> {
        decode_records(&self.records, self.count)
    }

    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i16_le(self.error.as_i16());
        put_str(buf, &self.message);
        buf.put_u64_le(self.high_watermark);
        buf.put_u32_le(self.count);
        buf.put_slice(&self.records);
    }
}

/// A response. Comments give the payload layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 0: `i16 err, u32 n, n × (u32 type_id, u32 version)`.
    ApiVersions {
        /// Outcome.
        error: ErrorCode,
        /// Supported types.
        versions: Vec<ApiVersion>,
    },
    /// 1: `i16 err, u32 n, n × (str name, u32 partition_count)`.
    Metadata {
        /// Outcome.
        error: ErrorCode,
        /// Topics, sorted by name.
        topics: Vec<TopicInfo>,
    },
    /// 10: `i16 err, str msg`.
    CreateTopic(Status),
    /// 11: `i16 err, str msg`.
    DeleteTopic(Status),
    /// 12: `i16 err, u32 n, n × str`.
    ListTopics {
        /// Outcome.
        error: ErrorCode,
        /// Names, sorted.
        topics: Vec<String>,
    },
    /// 20: `i16 err, str msg, u32 partition, u64 offset`.
    Produce {
        /// Outcome.
        error: ErrorCode,
        /// Detail.
        message: String,
        /// Partition written.
        partition: u32,
        /// Offset assigned.
        offset: u64,
    },
    /// 21: see [`FetchResponse`].
    Fetch(FetchResponse),
    /// 22 (ours): `i16 err, str msg, u32 n, n × (u32 partition, u64 offset)`, in request
    /// order.
    BatchProduce {
        /// Outcome: all or nothing for an explicit partition; with `PARTITION_ANY` a failure
        /// on one partition may follow appends to others (the message says so).
        error: ErrorCode,
        /// Detail.
        message: String,
        /// Where each message landed.
        offsets: Vec<ProducedOffset>,
    },
    /// 23 (ours): `i16 err, str msg, u64 high_watermark, u64 log_start_offset, u32 n,
    /// n × (u32 len, Message)`.
    FetchWait {
        /// Oldest offset still in the partition (for recovering from INVALID_OFFSET).
        log_start_offset: u64,
        /// The rest, as in FETCH.
        fetch: FetchResponse,
    },
    /// 30: `i16 err, str msg, str consumer_id, u32 n, n × u32 partition`.
    JoinGroup {
        /// Outcome.
        error: ErrorCode,
        /// Detail.
        message: String,
        /// Member id assigned.
        consumer_id: String,
        /// Partitions assigned.
        partitions: Vec<u32>,
    },
    /// 31: `i16 err, str msg`.
    LeaveGroup(Status),
    /// 32: `i16 err, str msg`.
    CommitOffset(Status),
    /// 33: `i16 err, u64 offset`.
    FetchOffset {
        /// Outcome (INVALID_OFFSET when nothing is committed).
        error: ErrorCode,
        /// Committed offset (next to consume).
        offset: u64,
    },
    /// 34 (ours): `i16 err, str msg, str consumer_id, u32 generation, u32 n, n × u32
    /// partition`.
    JoinGroupV2 {
        /// Outcome.
        error: ErrorCode,
        /// Detail.
        message: String,
        /// Member id (keep it for rejoins, heartbeats and commits).
        consumer_id: String,
        /// Group generation this assignment belongs to.
        generation: u32,
        /// Partitions assigned.
        partitions: Vec<u32>,
    },
    /// 35 (ours): `i16 err, str msg`.
    GroupCommit(Status),
    /// 40: `i16 err, str msg`.
    Heartbeat(Status),
    /// 41: `i16 err, str msg`.
    Disconnect(Status),
    /// Answer to an unknown type id: `i16 err, str msg`, echoing the id.
    Unknown {
        /// The type id that was not understood.
        type_id: u32,
        /// Status (INVALID_REQUEST or PROTOCOL_ERROR).
        status: Status,
    },
}

impl Response {
    /// The type id this response carries in its header.
    pub fn type_id(&self) -> u32 {
        let t = match self {
            Response::ApiVersions { .. } => RequestType::ApiVersions,
            Response::Metadata { .. } => RequestType::Metadata,
            Response::CreateTopic(_) => RequestType::CreateTopic,
            Response::DeleteTopic(_) => RequestType::DeleteTopic,
            Response::ListTopics { .. } => RequestType::ListTopics,
            Response::Produce { .. } => RequestType::Produce,
            Response::Fetch(_) => RequestType::Fetch,
            Response::BatchProduce { .. } => RequestType::BatchProduce,
            Response::FetchWait { .. } => RequestType::FetchWait,
            Response::JoinGroup { .. } => RequestType::JoinGroup,
            Response::LeaveGroup(_) => RequestType::LeaveGroup,
            Response::CommitOffset(_) => RequestType::CommitOffset,
            Response::FetchOffset { .. } => RequestType::FetchOffset,
            Response::JoinGroupV2 { .. } => RequestType::JoinGroupV2,
            Response::GroupCommit(_) => RequestType::GroupCommit,
            Response::Heartbeat(_) => RequestType::Heartbeat,
            Response::Disconnect(_) => RequestType::Disconnect,
            Response::Unknown { type_id, .. } => return *type_id,
        };
        t.id()
    }

    /// The response's error code.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Response::ApiVersions { error, .. }
            | Response::Metadata { error, .. }
            | Response::ListTopics { error, .. }
            | Response::Produce { error, .. }
            | Response::BatchProduce { error, .. }
            | Response::JoinGroup { error, .. }
            | Response::FetchOffset { error, .. }
            | Response::JoinGroupV2 { error, .. } => *error,
            Response::Fetch(f) | Response::FetchWait { fetch: f, .. } => f.error,
            Response::CreateTopic(s)
            | Response::DeleteTopic(s)
            | Response::LeaveGroup(s)
            | Response::CommitOffset(s)
            | Response::GroupCommit(s)
            | Response::Heartbeat(s)
            | Response::Disconnect(s)
            | Response::Unknown { status: s, .. } => s.error,
        }
    }

    /// An error answer shaped as the response of `type_id` (empty lists, zero numbers), so
    /// that a client of that type can parse it. Unknown ids get `i16 err, str msg`.
    pub fn error(type_id: u32, error: ErrorCode, message: impl Into<String>) -> Response {
        let message = message.into();
        let status = Status {
            error,
            message: message.clone(),
        };
        let Some(t) = RequestType::from_id(type_id) else {
            return Response::Unknown { type_id, status };
        };
        match t {
            RequestType::ApiVersions => Response::ApiVersions {
                error,
                versions: vec![],
            },
            RequestType::Metadata => Response::Metadata {
                error,
                topics: vec![],
            },
            RequestType::CreateTopic => Response::CreateTopic(status),
            RequestType::DeleteTopic => Response::DeleteTopic(status),
            RequestType::ListTopics => Response::ListTopics {
                error,
                topics: vec![],
            },
            RequestType::Produce => Response::Produce {
                error,
                message,
                partition: 0,
                offset: 0,
            },
            RequestType::Fetch => Response::Fetch(FetchResponse::error(error, message)),
            RequestType::BatchProduce => Response::BatchProduce {
                error,
                message,
                offsets: vec![],
            },
            RequestType::FetchWait => Response::FetchWait {
                log_start_offset: 0,
                fetch: FetchResponse::error(error, message),
            },
            RequestType::JoinGroup => Response::JoinGroup {
                error,
                message,
                consumer_id: String::new(),
                partitions: vec![],
            },
            RequestType::LeaveGroup => Response::LeaveGroup(status),
            RequestType::CommitOffset => Response::CommitOffset(status),
            RequestType::FetchOffset => Response::FetchOffset { error, offset: 0 },
            RequestType::JoinGroupV2 => Response::JoinGroupV2 {
                error,
                message,
                consumer_id: String::new(),
                generation: 0,
                partitions: vec![],
            },
            RequestType::GroupCommit => Response::GroupCommit(status),
            RequestType::Heartbeat => Response::Heartbeat(status),
            RequestType::Disconnect => Response::Disconnect(status),
        }
    }

    /// Appends the payload (no header).
    pub fn encode_payload(&self, buf: &mut BytesMut) {
        match self {
            Response::ApiVersions { error, versions } => {
                buf.put_i16_le(error.as_i16());
                buf.put_u32_le(versions.len() as u32);
                for v in versions {
                    buf.put_u32_le(v.type_id);
                    buf.put_u32_le(v.version);
                }
            }
            Response::Metadata { error, topics } => {
                buf.put_i16_le(error.as_i16());
                buf.put_u32_le(topics.len() as u32);
                for t in topics {
                    put_str(buf, &t.name);
                    buf.put_u32_le(t.partitions);
                }
            }
            Response::ListTopics { error, topics } => {
                buf.put_i16_le(error.as_i16());
                buf.put_u32_le(topics.len() as u32);
                for t in topics {
                    put_str(buf, t);
                }
            }
            Response::Produce {
                error,
                message,
                partition,
                offset,
            } => {
                buf.put_i16_le(error.as_i16());
                put_str(buf, message);
                buf.put_u32_le(*partition);
                buf.put_u64_le(*offset);
            }
            Response::Fetch(f) => f.encode(buf),
            Response::BatchProduce {
                error,
                message,
                offsets,
            } => {
                buf.reserve(2 + 4 + message.len() + 4 + offsets.len() * 12);
                buf.put_i16_le(error.as_i16());
                put_str(buf, message);
                buf.put_u32_le(offsets.len() as u32);
                for o in offsets {
                    buf.put_u32_le(o.partition);
                    buf.put_u64_le(o.offset);
                }
            }
            Response::FetchWait {
                log_start_offset,
                fetch,
            } => {
                buf.put_i16_le(fetch.error.as_i16());
                put_str(buf, &fetch.message);
                buf.put_u64_le(fetch.high_watermark);
                buf.put_u64_le(*log_start_offset);
                buf.put_u32_le(fetch.count);
                buf.put_slice(&fetch.records);
            }
            Response::JoinGroup {
                error,
                message,
                consumer_id,
                partitions,
            } => {
                buf.put_i16_le(error.as_i16());
                put_str(buf, message);
                put_str(buf, consumer_id);
                buf.put_u32_le(partitions.len() as u32);
                for p in partitions {
                    buf.put_u32_le(*p);
                }
            }
            Response::JoinGroupV2 {
                error,
                message,
                consumer_id,
                generation,
                partitions,
            } => {
                buf.put_i16_le(error.as_i16());
                put_str(buf, message);
                put_str(buf, consumer_id);
                buf.put_u32_le(*generation);
                buf.put_u32_le(partitions.len() as u32);
                for p in partitions {
                    buf.put_u32_le(*p);
                }
            }
            Response::FetchOffset { error, offset } => {
                buf.put_i16_le(error.as_i16());
                buf.put_u64_le(*offset);
            }
            Response::CreateTopic(s)
            | Response::DeleteTopic(s)
            | Response::LeaveGroup(s)
            | Response::CommitOffset(s)
            | Response::GroupCommit(s)
            | Response::Heartbeat(s)
            | Response::Disconnect(s)
            | Response::Unknown { status: s, .. } => {
                buf.put_i16_le(s.error.as_i16());
                put_str(buf, &s.message);
            }
        }
    }

    /// Appends a whole frame: header (echoing the type id) + payload.
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

    /// Decodes the payload of a response whose header carried `type_id`. Never panics;
    /// unknown error codes decode as [`ErrorCode::Unknown`]; unknown type ids decode as
    /// [`Response::Unknown`].
    pub fn decode(type_id: u32, payload: Bytes) -> Result<Response, DecodeError> {
        let mut r = Reader::new(payload);
        let err = |r: &mut Reader| -> Result<ErrorCode, DecodeError> {
            Ok(ErrorCode::from_i16_lossy(r.i16("error code")?))
        };
        let status = |r: &mut Reader| -> Result<Status, DecodeError> {
            Ok(Status {
                error: err(r)?,
                message: r.string("message")?,
            })
        };
        let Some(t) = RequestType::from_id(type_id) else {
            let status = status(&mut r)?;
            r.finish()?;
            return Ok(Response::Unknown { type_id, status });
        };
        let resp = match t {
            RequestType::ApiVersions => {
                let error = err(&mut r)?;
                let (n, cap) = r.count("version count", 8)?;
                let mut versions = Vec::with_capacity(cap);
                for _ in 0..n {
                    versions.push(ApiVersion {
                        type_id: r.u32("type_id")?,
                        version: r.u32("version")?,
                    });
                }
                Response::ApiVersions { error, versions }
            }
            RequestType::Metadata => {
                let error = err(&mut r)?;
                let (n, cap) = r.count("topic count", 8)?;
                let mut topics = Vec::with_capacity(cap);
                for _ in 0..n {
                    topics.push(TopicInfo {
                        name: r.string("topic name")?,
                        partitions: r.u32("partition_count")?,
                    });
                }
                Response::Metadata { error, topics }
            }
            RequestType::CreateTopic => Response::CreateTopic(status(&mut r)?),
            RequestType::DeleteTopic => Response::DeleteTopic(status(&mut r)?),
            RequestType::ListTopics => {
                let error = err(&mut r)?;
                let (n, cap) = r.count("topic count", 4)?;
                let mut topics = Vec::with_capacity(cap);
                for _ in 0..n {
                    topics.push(r.string("topic name")?);
                }
                Response::ListTopics { error, topics }
            }
            RequestType::Produce => Response::Produce {
                error: err(&mut r)?,
                message: r.string("message")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
            },
            RequestType::Fetch => Response::Fetch(read_fetch(&mut r, None)?),
            RequestType::BatchProduce => {
                let error = err(&mut r)?;
                let message = r.string("message")?;
                let (n, cap) = r.count("offset count", 12)?;
                let mut offsets = Vec::with_capacity(cap);
                for _ in 0..n {
                    offsets.push(ProducedOffset {
                        partition: r.u32("partition")?,
                        offset: r.u64("offset")?,
                    });
                }
                Response::BatchProduce {
                    error,
                    message,
                    offsets,
                }
            }
            RequestType::FetchWait => {
                let mut start = 0;
                let fetch = read_fetch(&mut r, Some(&mut start))?;
                Response::FetchWait {
                    log_start_offset: start,
                    fetch,
                }
            }
            RequestType::JoinGroup => {
                let error = err(&mut r)?;
                let message = r.string("message")?;
                let consumer_id = r.string("consumer_id")?;
                let partitions = read_u32_list(&mut r)?;
                Response::JoinGroup {
                    error,
                    message,
                    consumer_id,
                    partitions,
                }
            }
            RequestType::LeaveGroup => Response::LeaveGroup(status(&mut r)?),
            RequestType::CommitOffset => Response::CommitOffset(status(&mut r)?),
            RequestType::FetchOffset => Response::FetchOffset {
                error: err(&mut r)?,
                offset: r.u64("offset")?,
            },
            RequestType::JoinGroupV2 => {
                let error = err(&mut r)?;
                let message = r.string("message")?;
                let consumer_id = r.string("consumer_id")?;
                let generation = r.u32("generation")?;
                let partitions = read_u32_list(&mut r)?;
                Response::JoinGroupV2 {
                    error,
                    message,
                    consumer_id,
                    generation,
                    partitions,
                }
            }
            RequestType::GroupCommit => Response::GroupCommit(status(&mut r)?),
            RequestType::Heartbeat => Response::Heartbeat(status(&mut r)?),
            RequestType::Disconnect => Response::Disconnect(status(&mut r)?),
        };
        r.finish()?;
        Ok(resp)
    }
}

fn read_u32_list(r: &mut Reader) -> Result<Vec<u32>, DecodeError> {
    let (n, cap) = r.count("partition count", 4)?;
    let mut v = Vec::with_capacity(cap);
    for _ in 0..n {
        v.push(r.u32("partition")?);
    }
    Ok(v)
}

fn read_fetch(r: &mut Reader, log_start: Option<&mut u64>) -> Result<FetchResponse, DecodeError> {
    let error = ErrorCode::from_i16_lossy(r.i16("error code")?);
    let message = r.string("message")?;
    let high_watermark = r.u64("high_watermark")?;
    if let Some(s) = log_start {
        *s = r.u64("log_start_offset")?;
    }
    let count = r.u32("message count")?;
    let records = r.raw(r.remaining(), "records")?;
    // Validate the record framing now so that a client holding a FetchResponse knows its
    // records are well-formed.
    validate_records(&records, count)?;
    Ok(FetchResponse {
        error,
        message,
        high_watermark,
        count,
        records,
    })
}
