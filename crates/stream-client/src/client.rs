//! [`StreamClient`]: one connection, one async method per request type, plus pipelining.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use stream_proto::{
    ApiVersion, ErrorCode, FetchResponse, GroupHeartbeat, Message, Priority, ProduceRecord,
    Request, Response, Status, PARTITION_ANY,
};

use crate::conn::{self, FrameReader, FrameWriter};
use crate::error::ClientError;

/// Default time allowed for an answer (a FETCH_WAIT gets its wait on top).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most requests [`StreamClient::pipeline`] keeps in flight.
pub const PIPELINE_WINDOW: usize = 1024;

/// Where a produced message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Produced {
    /// Partition written.
    pub partition: u32,
    /// Offset assigned in that partition.
    pub offset: u64,
}

/// A FETCH (or FETCH_WAIT) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Next offset to be written in the partition (consumer lag = this - position).
    pub high_watermark: u64,
    /// Messages in offset order; their CRCs have been verified.
    pub messages: Vec<Message>,
    /// Oldest offset still stored (FETCH_WAIT answers only; `None` from FETCH).
    pub log_start_offset: Option<u64>,
}

/// A consumer-group assignment (JOIN_GROUP / JOIN_GROUP_V2 answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// This member's id: keep it for heartbeats, commits and rejoins.
    pub consumer_id: String,
    /// Group generation the assignment belongs to (0 from the original JOIN_GROUP).
    pub generation: u32,
    /// Partitions this member owns.
    pub partitions: Vec<u32>,
}

/// A connection to a stream server (mirrors the C++ `StreamClient`).
///
/// Methods take `&mut self` and wait for their answer; [`StreamClient::pipeline`] (or
/// [`StreamClient::send`] + [`StreamClient::recv`]) keeps many requests in flight on the one
/// connection: the server answers in request order.
///
/// After an I/O error, a timeout or a malformed answer the connection is unusable (answers
/// could no longer be matched to requests): every later call fails; connect again.
pub struct StreamClient {
    addr: String,
    reader: FrameReader,
    writer: FrameWriter,
    in_flight: VecDeque<u32>,
    timeout: Option<Duration>,
    broken: Option<String>,
    /// True while a write or read is in progress: still true on entry means the future
    /// doing it was dropped (e.g. by a caller's timeout) mid-way.
    busy: bool,
}

fn server_err(code: ErrorCode, message: String) -> ClientError {
    ClientError::Server { code, message }
}

fn check(code: ErrorCode, message: &str) -> Result<(), ClientError> {
    if code.is_ok() {
        Ok(())
    } else {
        Err(server_err(code, message.to_string()))
    }
}

fn check_status(s: Status) -> Result<String, ClientError> {
    check(s.error, &s.message)?;
    Ok(s.message)
}

fn unexpected(what: &str, got: &Response) -> ClientError {
    ClientError::Protocol(format!(
        "expected a {what} answer, got type {}",
        got.type_id()
    ))
}

/// Decodes the messages of a fetch answer and verifies every CRC.
fn fetched(f: FetchResponse, log_start_offset: Option<u64>) -> Result<Fetched, ClientError> {
    check(f.error, &f.message)?;
    let messages = f.messages()?;
    if let Some(bad) = messages.iter().find(|m| !m.verify()) {
        return Err(ClientError::Protocol(format!(
            "CRC mismatch in message at offset {} of partition {}",
            bad.offset, bad.partition
        )));
    }
    Ok(Fetched {
        high_watermark: f.high_watermark,
        messages,
        log_start_offset,
    })
}

impl StreamClient {
    /// Connects to `addr` ("host:port").
    pub async fn connect(addr: &str) -> Result<StreamClient, ClientError> {
        let stream = conn::open(addr).await?;
        let (r, w) = stream.into_split();
        Ok(StreamClient {
            addr: addr.to_string(),
            reader: FrameReader::new(r),
            writer: FrameWriter::new(w),
            in_flight: VecDeque::new(),
            timeout: Some(DEFAULT_TIMEOUT),
            broken: None,
            busy: false,
        })
    }

    /// The connection's halves (for the producer's writer and reader tasks). Only valid with
    /// nothing in flight.
    pub(crate) fn into_parts(self) -> (FrameReader, FrameWriter) {
        (self.reader, self.writer)
    }

    /// The address this client connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets how long to wait for an answer (`None`: forever). Default [`DEFAULT_TIMEOUT`].
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Requests sent whose answers have not been read yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn usable(&self) -> Result<(), ClientError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(ClientError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("connection to {} is unusable: {why}", self.addr),
            ))),
        }
    }

    /// Starts a socket operation. A previous one that never finished was cancelled: a frame
    /// may be half written or an answer half read, so the connection cannot be trusted.
    fn enter(&mut self) -> Result<(), ClientError> {
        if self.busy && self.broken.is_none() {
            self.broken = Some(
                "an earlier request was cancelled mid-flight (e.g. by a timeout); reconnect".into(),
            );
        }
        self.usable()?;
        self.busy = true;
        Ok(())
    }

    fn poison<T>(&mut self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(e) = &r {
            if !matches!(e, ClientError::Server { .. }) {
                self.broken = Some(e.to_string());
            }
        }
        r
    }

    /// Queues a request without waiting for its answer (it is written on the next
    /// [`StreamClient::recv`] or [`StreamClient::flush`]).
    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.usable()?;
        self.writer.push(req);
        self.in_flight.push_back(req.type_id());
        Ok(())
    }

    /// Writes the queued requests.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.enter()?;
        let r = self.writer.flush().await;
        self.busy = false;
        self.poison(r)
    }

    /// Reads the answer of the oldest request in flight (flushing queued requests first).
    pub async fn recv(&mut self) -> Result<Response, ClientError> {
        self.recv_with_extra(Duration::ZERO).await
    }

    pub(crate) async fn recv_with_extra(
        &mut self,
        extra: Duration,
    ) -> Result<Response, ClientError> {
        self.flush().await?;
        let Some(&expected) = self.in_flight.front() else {
            return Err(ClientError::Protocol(
                "recv() with no request in flight".into(),
            ));
        };
        self.enter()?;
        let r = match self.timeout {
            None => self.reader.read_response(expected).await,
            Some(t) => {
                match tokio::time::timeout(t + extra, self.reader.read_response(expected)).await {
                    Ok(r) => r,
                    Err(_) => Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from {} within {:?}", self.addr, t + extra),
                    ))),
                }
            }
        };
        self.busy = false;
        let r = self.poison(r);
        self.in_flight.pop_front();
        r
    }

    /// Sends one request and returns its answer (raw; the error code is not checked).
    pub async fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.send(req)?;
        self.recv().await
    }

    /// Sends `reqs` pipelined and returns their answers (in order).
    ///
    /// At most [`PIPELINE_WINDOW`] requests are in flight, refilled in bursts of half a
    /// window: sending everything before reading anything could deadlock on a long list (the
    /// server stops reading while its answers back up in our unread receive buffer).
    pub async fn pipeline(&mut self, reqs: &[Request]) -> Result<Vec<Response>, ClientError> {
        self.windowed(reqs.len(), |i| reqs[i].clone()).await
    }

    async fn windowed(
        &mut self,
        n: usize,
        mut make: impl FnMut(usize) -> Request,
    ) -> Result<Vec<Response>, ClientError> {
        let mut out = Vec::with_capacity(n);
        let mut sent = 0;
        while out.len() < n {
            if sent - out.len() <= PIPELINE_WINDOW / 2 {
                while sent < n && sent - out.len() < PIPELINE_WINDOW {
                    self.send(&make(sent))?;
                    sent += 1;
                }
            }
            out.push(self.recv().await?);
        }
        Ok(out)
    }

    // ---- topics ---------------------------------------------------------------------------

    /// API_VERSIONS: the request types (and layout versions) the server supports.
    pub async fn api_versions(&mut self) -> Result<Vec<ApiVersion>, ClientError> {
        match self.call(&Request::ApiVersions).await? {
            Response::ApiVersions { error, versions } => {
                check(error, "")?;
                Ok(versions)
            }
            other => Err(unexpected("API_VERSIONS", &other)),
        }
    }

    /// METADATA: every topic with its partition count.
    pub async fn metadata(&mut self) -> Result<Vec<(String, u32)>, ClientError> {
        match self.call(&Request::Metadata).await? {
            Response::Metadata { error, topics } => {
                check(error, "")?;
                Ok(topics.into_iter().map(|t| (t.name, t.partitions)).collect())
            }
            other => Err(unexpected("METADATA", &other)),
        }
    }

    /// Partition count of one topic (`TopicNotFound` when it does not exist).
    pub async fn partition_count(&mut self, topic: &str) -> Result<u32, ClientError> {
        self.metadata()
            .await?
            .into_iter()
            .find(|(name, _)| name == topic)
            .map(|(_, n)| n)
            .ok_or_else(|| server_err(ErrorCode::TopicNotFound, format!("topic {topic}")))
    }

    /// LIST_TOPICS: topic names.
    pub async fn list_topics(&mut self) -> Result<Vec<String>, ClientError> {
        match self.call(&Request::ListTopics).await? {
            Response::ListTopics { error, topics } => {
                check(error, "")?;
                Ok(topics)
            }
            other => Err(unexpected("LIST_TOPICS", &other)),
        }
    }

    /// CREATE_TOPIC (`TopicAlreadyExists` when it exists).
    pub async fn create_topic(&mut self, name: &str, partitions: u32) -> Result<(), ClientError> {
        let req = Request::CreateTopic {
            name: name.to_string(),
            partitions,
        };
        match self.call(&req).await? {
            Response::CreateTopic(s) => check_status(s).map(drop),
            other => Err(unexpected("CREATE_TOPIC", &other)),
        }
    }

    /// DELETE_TOPIC (`TopicNotFound` when it does not exist).
    pub async fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let req = Request::DeleteTopic {
            name: name.to_string(),
        };
        match self.call(&req).await? {
            Response::DeleteTopic(s) => check_status(s).map(drop),
            other => Err(unexpected("DELETE_TOPIC", &other)),
        }
    }

    // ---- produce / fetch ------------------------------------------------------------------

    /// PRODUCE one message with NORMAL priority; an empty key goes round robin.
    pub async fn produce(
        &mut self,
        topic: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<Produced, ClientError> {
        self.produce_with_priority(topic, key, value, Priority::Normal)
            .await
    }

    /// PRODUCE one message with a priority.
    pub async fn produce_with_priority(
        &mut self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        priority: Priority,
    ) -> Result<Produced, ClientError> {
        let req = Request::Produce {
            topic: topic.to_string(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            priority: priority as u8,
        };
        produced(self.call(&req).await?)
    }

    /// Many PRODUCE requests pipelined on this connection (works with any STRP server; see
    /// [`StreamClient::produce_batch`] for the much cheaper batch request).
    pub async fn produce_pipelined(
        &mut self,
        topic: &str,
        records: &[(Bytes, Bytes)],
    ) -> Result<Vec<Produced>, ClientError> {
        let answers = self
            .windowed(records.len(), |i| Request::Produce {
                topic: topic.to_string(),
                key: records[i].0.clone(),
                value: records[i].1.clone(),
                priority: Priority::Normal as u8,
            })
            .await?;
        // Every answer was read even after a server error: the connection stays in step.
        answers.into_iter().map(produced).collect()
    }

    /// BATCH_PRODUCE: all `records` in one request, to `partition` or (with `None`) each by
    /// its key. Returns where each landed, in order. All or nothing.
    pub async fn produce_batch(
        &mut self,
        topic: &str,
        partition: Option<u32>,
        records: Vec<ProduceRecord>,
    ) -> Result<Vec<Produced>, ClientError> {
        let req = Request::BatchProduce {
            topic: topic.to_string(),
            partition: partition.unwrap_or(PARTITION_ANY),
            records,
        };
        batch_produced(self.call(&req).await?)
    }

    /// FETCH up to `max_messages` messages from `offset` (CRCs verified).
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: u32,
    ) -> Result<Fetched, ClientError> {
        let req = Request::Fetch {
            topic: topic.to_string(),
            partition,
            offset,
            max_messages,
        };
        match self.call(&req).await? {
            Response::Fetch(f) => fetched(f, None),
            other => Err(unexpected("FETCH", &other)),
        }
    }

    /// FETCH_WAIT (long poll): like fetch, but waits up to `max_wait` for data at `offset`,
    /// and returns at most `max_bytes` of records (always at least one message if any).
    pub async fn fetch_wait(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
        max_wait: Duration,
    ) -> Result<Fetched, ClientError> {
        let req = fetch_wait_request(topic, partition, offset, max_messages, max_bytes, max_wait);
        self.send(&req)?;
        fetch_wait_answer(self.recv_with_extra(max_wait).await?)
    }

    /// `(log_start_offset, high_watermark)` of a partition: its oldest stored offset and the
    /// next offset to be written.
    pub async fn partition_offsets(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<(u64, u64), ClientError> {
        let req = fetch_wait_request(topic, partition, 0, 0, 0, Duration::ZERO);
        match self.call(&req).await? {
            // INVALID_OFFSET (offset 0 is below the log start) still carries both numbers.
            Response::FetchWait {
                log_start_offset,
                fetch,
            } if fetch.error.is_ok() || fetch.error == ErrorCode::InvalidOffset => {
                Ok((log_start_offset, fetch.high_watermark))
            }
            Response::FetchWait { fetch, .. } => Err(server_err(fetch.error, fetch.message)),
            other => Err(unexpected("FETCH_WAIT", &other)),
        }
    }

    // ---- groups ---------------------------------------------------------------------------

    /// JOIN_GROUP (original layout): join `group` consuming `topic`.
    pub async fn join_group(
        &mut self,
        group: &str,
        topic: &str,
    ) -> Result<Assignment, ClientError> {
        let req = Request::JoinGroup {
            group_id: group.to_string(),
            topic: topic.to_string(),
        };
        match self.call(&req).await? {
            Response::JoinGroup {
                error,
                message,
                consumer_id,
                partitions,
            } => {
                check(error, &message)?;
                Ok(Assignment {
                    consumer_id,
                    generation: 0,
                    partitions,
                })
            }
            other => Err(unexpected("JOIN_GROUP", &other)),
        }
    }

    /// JOIN_GROUP_V2: join (empty `consumer_id`) or rejoin with our member id; the session
    /// timeout (`None`: server default) is how long the server waits for heartbeats.
    pub async fn join_group_v2(
        &mut self,
        group: &str,
        topic: &str,
        consumer_id: &str,
        session_timeout: Option<Duration>,
    ) -> Result<Assignment, ClientError> {
        let req = Request::JoinGroupV2 {
            group_id: group.to_string(),
            topic: topic.to_string(),
            consumer_id: consumer_id.to_string(),
            session_timeout_ms: session_timeout
                .map(|d| d.as_millis().clamp(1, u32::MAX as u128) as u32)
                .unwrap_or(0),
        };
        match self.call(&req).await? {
            Response::JoinGroupV2 {
                error,
                message,
                consumer_id,
                generation,
                partitions,
            } => {
                check(error, &message)?;
                Ok(Assignment {
                    consumer_id,
                    generation,
                    partitions,
                })
            }
            other => Err(unexpected("JOIN_GROUP_V2", &other)),
        }
    }

    /// LEAVE_GROUP: the member's partitions go to the others at once.
    pub async fn leave_group(&mut self, group: &str, consumer_id: &str) -> Result<(), ClientError> {
        let req = Request::LeaveGroup {
            group_id: group.to_string(),
            consumer_id: consumer_id.to_string(),
        };
        match self.call(&req).await? {
            Response::LeaveGroup(s) => check_status(s).map(drop),
            other => Err(unexpected("LEAVE_GROUP", &other)),
        }
    }

    /// COMMIT_OFFSET (original layout, no member check): `offset` is the next to consume.
    pub async fn commit_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ClientError> {
        let req = Request::CommitOffset {
            group_id: group.to_string(),
            topic: topic.to_string(),
            partition,
            offset,
        };
        match self.call(&req).await? {
            Response::CommitOffset(s) => check_status(s).map(drop),
            other => Err(unexpected("COMMIT_OFFSET", &other)),
        }
    }

    /// GROUP_COMMIT: commit as member `consumer_id` of `generation`; a stale member is
    /// refused (`IllegalGeneration`, `RebalanceInProgress` or `ConsumerNotFound`).
    pub async fn group_commit(
        &mut self,
        group: &str,
        consumer_id: &str,
        generation: u32,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ClientError> {
        let req = group_commit_request(group, consumer_id, generation, topic, partition, offset);
        match self.call(&req).await? {
            Response::GroupCommit(s) => check_status(s).map(drop),
            other => Err(unexpected("GROUP_COMMIT", &other)),
        }
    }

    /// FETCH_OFFSET: the group's committed offset (`None` when nothing is committed).
    pub async fn fetch_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ClientError> {
        let req = Request::FetchOffset {
            group_id: group.to_string(),
            topic: topic.to_string(),
            partition,
        };
        match self.call(&req).await? {
            Response::FetchOffset { error, offset } => match error {
                ErrorCode::None => Ok(Some(offset)),
                ErrorCode::InvalidOffset => Ok(None),
                code => Err(server_err(
                    code,
                    format!("fetch offset of {group}/{topic}/{partition}"),
                )),
            },
            other => Err(unexpected("FETCH_OFFSET", &other)),
        }
    }

    /// HEARTBEAT with an empty payload: connection keep-alive.
    pub async fn heartbeat(&mut self) -> Result<(), ClientError> {
        match self.call(&Request::Heartbeat(None)).await? {
            Response::Heartbeat(s) => check_status(s).map(drop),
            other => Err(unexpected("HEARTBEAT", &other)),
        }
    }

    /// HEARTBEAT for a group member: keeps it alive; `RebalanceInProgress` means "rejoin".
    pub async fn group_heartbeat(
        &mut self,
        group: &str,
        consumer_id: &str,
        generation: u32,
    ) -> Result<(), ClientError> {
        let req = Request::Heartbeat(Some(GroupHeartbeat {
            group_id: group.to_string(),
            consumer_id: consumer_id.to_string(),
            generation,
        }));
        match self.call(&req).await? {
            Response::Heartbeat(s) => check_status(s).map(drop),
            other => Err(unexpected("HEARTBEAT", &other)),
        }
    }

    /// DISCONNECT: the server answers and closes; so does this client.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        let r = match self.call(&Request::Disconnect).await? {
            Response::Disconnect(s) => check_status(s).map(drop),
            other => Err(unexpected("DISCONNECT", &other)),
        };
        self.writer.shutdown().await;
        r
    }
}

pub(crate) fn fetch_wait_request(
    topic: &str,
    partition: u32,
    offset: u64,
    max_messages: u32,
    max_bytes: u32,
    max_wait: Duration,
) -> Request {
    Request::FetchWait {
        topic: topic.to_string(),
        partition,
        offset,
        max_messages,
        max_bytes,
        max_wait_ms: max_wait.as_millis().min(u32::MAX as u128) as u32,
    }
}

pub(crate) fn fetch_wait_answer(resp: Response) -> Result<Fetched, ClientError> {
    match resp {
        Response::FetchWait {
            log_start_offset,
            fetch,
        } => fetched(fetch, Some(log_start_offset)),
        other => Err(unexpected("FETCH_WAIT", &other)),
    }
}

pub(crate) fn group_commit_request(
    group: &str,
    consumer_id: &str,
    generation: u32,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Request {
    Request::GroupCommit {
        group_id: group.to_string(),
        consumer_id: consumer_id.to_string(),
        generation,
        topic: topic.to_string(),
        partition,
        offset,
    }
}

pub(crate) fn produced(resp: Response) -> Result<Produced, ClientError> {
    match resp {
        Response::Produce {
            error,
            message,
            partition,
            offset,
        } => {
            check(error, &message)?;
            Ok(Produced { partition, offset })
        }
        other => Err(unexpected("PRODUCE", &other)),
    }
}

pub(crate) fn batch_produced(resp: Response) -> Result<Vec<Produced>, ClientError> {
    match resp {
        Response::BatchProduce {
            error,
            message,
            offsets,
        } => {
            check(error, &message)?;
            Ok(offsets
                .into_iter()
                .map(|o| Produced {
                    partition: o.partition,
                    offset: o.offset,
                })
                .collect())
        }
        other => Err(unexpected("BATCH_PRODUCE", &other)),
    }
}
