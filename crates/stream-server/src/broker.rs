//! Request handling: turns a decoded request into a response (or a response that still
//! waits for durability / data), against the storage engine and the group coordinator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use stream_log::{Durability, LogError, OffsetStore, PartitionLog, Record, TopicStore};
use stream_proto::{
    partition_for_key, supported_versions, ErrorCode, FetchResponse, ProduceRecord, ProducedOffset,
    Request, Response, Status, TopicInfo, MAX_PAYLOAD, PARTITION_ANY,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::groups::Coordinator;
use crate::metrics::RequestMetrics;

/// Most partitions a topic may be created with: the storage's limit, which owns it.
pub const MAX_PARTITIONS: u32 = stream_log::MAX_PARTITIONS;
/// Most record bytes one fetch returns: the response must stay under the 16 MiB frame limit.
pub const FETCH_MAX_BYTES: u32 = MAX_PAYLOAD - 64 * 1024;
/// Most messages in one BATCH_PRODUCE: its answer (12 bytes each) must fit a 16 MiB frame.
pub const MAX_BATCH_RECORDS: usize = (MAX_PAYLOAD as usize - 64 * 1024) / 12;
/// Longest long-poll wait a FETCH_WAIT may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A response, possibly not final yet. The connection's writer resolves these in request
/// order, so later requests are processed while earlier ones wait (e.g. for an fsync).
pub enum Pending {
    /// Final.
    Ready(Response),
    /// Final once every `(log, offset)` is durable; a durability failure replaces it with a
    /// STORAGE_ERROR answer.
    Durable {
        /// Logs and the last offset appended to each.
        waits: Vec<(Arc<PartitionLog>, u64)>,
        /// The answer to send when durable.
        response: Response,
    },
    /// Computed by a task (long-poll fetch).
    Task(JoinHandle<Response>),
}

/// Per-connection state the broker needs.
#[derive(Debug)]
pub struct ConnState {
    /// Connection id (unique in this process).
    pub id: u64,
    /// The connection joined a group with the original JOIN_GROUP: its traffic keeps those
    /// members alive.
    pub has_legacy_members: bool,
}

/// A topic's partition logs, cached so that the produce path does no store lookups.
pub struct TopicHandle {
    /// Partition logs, by partition id.
    pub partitions: Vec<Arc<PartitionLog>>,
    /// Round-robin counter for empty keys.
    rr: AtomicU32,
}

type Failure = (ErrorCode, String);

/// Maps a storage error to the protocol's code.
pub fn log_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::TopicNotFound { .. } | LogError::Closed { .. } => ErrorCode::TopicNotFound,
        LogError::TopicAlreadyExists { .. } => ErrorCode::TopicAlreadyExists,
        LogError::PartitionNotFound { .. } => ErrorCode::PartitionNotFound,
        LogError::OffsetOutOfRange { .. } => ErrorCode::InvalidOffset,
        LogError::RecordTooLarge { .. } => ErrorCode::RequestTooLarge,
        LogError::InvalidTopicName { .. } | LogError::InvalidConfig(_) => ErrorCode::InvalidRequest,
        _ => ErrorCode::StorageError,
    }
}

fn fail(e: LogError) -> Failure {
    (log_error_code(&e), e.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The broker: storage, groups, metrics.
pub struct Broker {
    store: TopicStore,
    offsets: OffsetStore,
    /// Consumer groups.
    pub groups: Coordinator,
    topics: RwLock<HashMap<String, Arc<TopicHandle>>>,
    /// Request metrics handles.
    pub metrics: RequestMetrics,
    durability: Durability,
    shutdown: watch::Receiver<bool>,
}

impl Broker {
    /// A broker over opened stores.
    pub fn new(
        store: TopicStore,
        offsets: OffsetStore,
        groups: Coordinator,
        durability: Durability,
        shutdown: watch::Receiver<bool>,
    ) -> Broker {
        Broker {
            store,
            offsets,
            groups,
            topics: RwLock::new(HashMap::new()),
            metrics: RequestMetrics::new(),
            durability,
            shutdown,
        }
    }

    /// The topic store (for shutdown flushes and retention).
    pub fn store(&self) -> &TopicStore {
        &self.store
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicHandle>, Failure> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(t.clone());
        }
        let count = self
            .store
            .topics()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                (
                    ErrorCode::TopicNotFound,
                    format!("topic {name:?} not found"),
                )
            })?;
        let partitions = (0..count)
            .map(|p| self.store.partition(name, p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let handle = Arc::new(TopicHandle {
            partitions,
            rr: AtomicU32::new(0),
        });
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        Ok(topics.entry(name.to_string()).or_insert(handle).clone())
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>, Failure> {
        let t = self.topic(topic)?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| {
                (
                    ErrorCode::PartitionNotFound,
                    format!(
                        "topic {topic:?} has {} partitions, no partition {partition}",
                        t.partitions.len()
                    ),
                )
            })
    }

    fn forget_topic(&self, name: &str) {
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn append(
        &self,
        log: &PartitionLog,
        records: &[Record<'_>],
    ) -> Result<stream_log::Appended, LogError> {
        if self.durability == Durability::EveryWrite {
            // Under every-write the append itself fsyncs: keep it off the async workers' backs.
            tokio::task::block_in_place(|| log.append(records))
        } else {
            log.append(records)
        }
    }

    fn durable(&self, waits: Vec<(Arc<PartitionLog>, u64)>, response: Response) -> Pending {
        if self.durability == Durability::GroupCommit {
            Pending::Durable { waits, response }
        } else {
            // every-write: fsynced by append; interval/never: nothing to wait for.
            Pending::Ready(response)
        }
    }

    /// Handles one request: the answer, possibly still waiting for durability or data.
    /// Failures become the request type's error answer.
    pub async fn handle(self: &Arc<Self>, req: Request, conn: &mut ConnState) -> Pending {
        if conn.has_legacy_members {
            self.groups.touch_connection(conn.id, Instant::now());
        }
        let type_id = req.type_id();
        if let Some(group) = req.group_id() {
            if group.len() > stream_proto::MAX_GROUP_ID_LEN {
                return Pending::Ready(Response::error(
                    type_id,
                    ErrorCode::InvalidRequest,
                    format!(
                        "group id of {} bytes is longer than the {} allowed",
                        group.len(),
                        stream_proto::MAX_GROUP_ID_LEN
                    ),
                ));
            }
        }
        match self.dispatch(req, conn).await {
            Ok(p) => p,
            Err((code, msg)) => Pending::Ready(Response::error(type_id, code, msg)),
        }
    }

    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Broker) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, Failure> {
        let b = self.clone();
        match tokio::task::spawn_blocking(move || f(&b)).await {
            Ok(r) => r.map_err(fail),
            Err(e) => Err((ErrorCode::Unknown, format!("internal task failed: {e}"))),
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        req: Request,
        conn: &mut ConnState,
    ) -> Result<Pending, Failure> {
        let ok = |r: Response| Ok(Pending::Ready(r));
        match req {
            Request::ApiVersions => ok(Response::ApiVersions {
                error: ErrorCode::None,
                versions: supported_versions(),
            }),
            Request::Metadata => ok(Response::Metadata {
                error: ErrorCode::None,
                topics: self
                    .store
                    .topics()
                    .into_iter()
                    .map(|(name, partitions)| TopicInfo { name, partitions })
                    .collect(),
            }),
            Request::ListTopics => ok(Response::ListTopics {
                error: ErrorCode::None,
                topics: self.store.topics().into_iter().map(|(n, _)| n).collect(),
            }),
            Request::CreateTopic { name, partitions } => {
                if partitions == 0 || partitions > MAX_PARTITIONS {
                    return Err((
                        ErrorCode::InvalidRequest,
                        format!("partitions must be 1..={MAX_PARTITIONS}, got {partitions}"),
                    ));
                }
                let n = name.clone();
                self.blocking(move |b| b.store.create_topic(&n, partitions))
                    .await?;
                // The topic store logs the creation; one line per event.
                self.forget_topic(&name);
                ok(Response::CreateTopic(Status::ok()))
            }
            Request::DeleteTopic { name } => {
                let n = name.clone();
                self.forget_topic(&name);
                self.blocking(move |b| {
                    b.store.delete_topic(&n)?;
                    b.offsets.remove_topic(&n)
                })
                .await?;
                self.forget_topic(&name);
                self.groups.topic_deleted(&name);
                ok(Response::DeleteTopic(Status::ok()))
            }
            Request::Produce {
                topic,
                key,
                value,
                priority,
            } => {
                let t = self.topic(&topic)?;
                let n = t.partitions.len() as u32;
                let p = if key.is_empty() {
                    t.rr.fetch_add(1, Ordering::Relaxed) % n.max(1)
                } else {
                    partition_for_key(&key, n)
                };
                let log = t.partitions.get(p as usize).ok_or_else(|| {
                    (
                        ErrorCode::PartitionNotFound,
                        format!("topic {topic:?} has no partitions"),
                    )
                })?;
                let rec = Record {
                    timestamp_ms: now_ms(),
                    key: &key,
                    value: &value,
                    priority,
                    codec: 0,
                };
                let a = self.append(log, &[rec]).map_err(fail)?;
                self.metrics.messages_in.increment(1);
                let response = Response::Produce {
                    error: ErrorCode::None,
                    message: String::new(),
                    partition: p,
                    offset: a.base_offset,
                };
                Ok(self.durable(vec![(log.clone(), a.last_offset)], response))
            }
            Request::BatchProduce {
                topic,
                partition,
                records,
            } => self.batch_produce(&topic, partition, &records),
            Request::Fetch {
                topic,
                partition,
                offset,
                max_messages,
            } => {
                let log = self.partition(&topic, partition)?;
                let (f, _) = self.read(&log, offset, max_messages, FETCH_MAX_BYTES)?;
                ok(Response::Fetch(f))
            }
            Request::FetchWait {
                topic,
                partition,
                offset,
                max_messages,
                max_bytes,
                max_wait_ms,
            } => {
                let log = self.partition(&topic, partition)?;
                let max_bytes = if max_bytes == 0 {
                    FETCH_MAX_BYTES
                } else {
                    max_bytes.min(FETCH_MAX_BYTES)
                };
                let wait = Duration::from_millis(u64::from(max_wait_ms)).min(MAX_WAIT);
                if wait.is_zero() || max_messages == 0 || offset != log.high_watermark() {
                    let (fetch, start) = self.read(&log, offset, max_messages, max_bytes)?;
                    return ok(Response::FetchWait {
                        log_start_offset: start,
                        fetch,
                    });
                }
                let b = self.clone();
                Ok(Pending::Task(tokio::spawn(async move {
                    b.long_poll(log, offset, max_messages, max_bytes, wait)
                        .await
                })))
            }
            Request::JoinGroup { group_id, topic } => {
                let n = self.topic(&topic)?.partitions.len() as u32;
                let j = self.groups.join(
                    &group_id,
                    &topic,
                    n,
                    "",
                    None,
                    Some(conn.id),
                    Instant::now(),
                )?;
                conn.has_legacy_members = true;
                tracing::info!(group = %group_id, member = %j.consumer_id, generation = j.generation, "member joined (legacy JOIN_GROUP)");
                ok(Response::JoinGroup {
                    error: ErrorCode::None,
                    message: String::new(),
                    consumer_id: j.consumer_id,
                    partitions: j.partitions,
                })
            }
            Request::JoinGroupV2 {
                group_id,
                topic,
                consumer_id,
                session_timeout_ms,
            } => {
                let n = self.topic(&topic)?.partitions.len() as u32;
                let session = (session_timeout_ms > 0)
                    .then(|| Duration::from_millis(u64::from(session_timeout_ms)));
                let j = self.groups.join(
                    &group_id,
                    &topic,
                    n,
                    &consumer_id,
                    session,
                    None,
                    Instant::now(),
                )?;
                if consumer_id.is_empty() {
                    tracing::info!(group = %group_id, member = %j.consumer_id, generation = j.generation, "member joined");
                }
                ok(Response::JoinGroupV2 {
                    error: ErrorCode::None,
                    message: String::new(),
                    consumer_id: j.consumer_id,
                    generation: j.generation,
                    partitions: j.partitions,
                })
            }
            Request::LeaveGroup {
                group_id,
                consumer_id,
            } => {
                self.groups.leave(&group_id, &consumer_id)?;
                tracing::info!(group = %group_id, member = %consumer_id, "member left");
                ok(Response::LeaveGroup(Status::ok()))
            }
            Request::CommitOffset {
                group_id,
                topic,
                partition,
                offset,
            } => {
                self.commit(group_id, topic, partition, offset).await?;
                ok(Response::CommitOffset(Status::ok()))
            }
            Request::GroupCommit {
                group_id,
                consumer_id,
                generation,
                topic,
                partition,
                offset,
            } => {
                self.groups.check_commit(
                    &group_id,
                    &consumer_id,
                    generation,
                    &topic,
                    partition,
                    Instant::now(),
                )?;
                self.commit(group_id, topic, partition, offset).await?;
                ok(Response::GroupCommit(Status::ok()))
            }
            Request::FetchOffset {
                group_id,
                topic,
                partition,
            } => match self.offsets.fetch(&group_id, &topic, partition) {
                Some(offset) => ok(Response::FetchOffset {
                    error: ErrorCode::None,
                    offset,
                }),
                None => ok(Response::FetchOffset {
                    error: ErrorCode::InvalidOffset,
                    offset: 0,
                }),
            },
            Request::Heartbeat(None) => ok(Response::Heartbeat(Status::ok())),
            Request::Heartbeat(Some(hb)) => {
                self.groups.heartbeat(
                    &hb.group_id,
                    &hb.consumer_id,
                    hb.generation,
                    Instant::now(),
                )?;
                ok(Response::Heartbeat(Status::ok()))
            }
            Request::Disconnect => ok(Response::Disconnect(Status::ok())),
        }
    }

    async fn commit(
        self: &Arc<Self>,
        group: String,
        topic: String,
        partition: u32,
        offset: u64,
    ) -> Result<(), Failure> {
        let log = self.partition(&topic, partition)?;
        let hw = log.high_watermark();
        if offset > hw {
            return Err((
                ErrorCode::InvalidOffset,
                format!("offset {offset} is past the end of {topic}/{partition} ({hw})"),
            ));
        }
        let (g, t) = (group.clone(), topic.clone());
        self.blocking(move |b| b.offsets.commit(&g, &t, partition, offset))
            .await?;
        Ok(())
    }

    fn batch_produce(
        &self,
        topic: &str,
        partition: u32,
        records: &[ProduceRecord],
    ) -> Result<Pending, Failure> {
        if records.len() > MAX_BATCH_RECORDS {
            // The answer (12 bytes per message) must fit a 16 MiB frame.
            return Err((
                ErrorCode::RequestTooLarge,
                format!(
                    "{} messages in one batch; at most {MAX_BATCH_RECORDS}",
                    records.len()
                ),
            ));
        }
        let t = self.topic(topic)?;
        let n = t.partitions.len() as u32;
        if n == 0 {
            return Err((
                ErrorCode::PartitionNotFound,
                format!("topic {topic:?} has no partitions"),
            ));
        }
        let ts = now_ms();
        fn rec(r: &ProduceRecord, ts: u64) -> Record<'_> {
            Record {
                timestamp_ms: ts,
                key: &r.key,
                value: &r.value,
                priority: r.priority,
                codec: 0,
            }
        }
        let mut offsets = Vec::with_capacity(records.len());
        let mut waits = Vec::new();
        if records.is_empty() {
            // nothing to append
        } else if partition != PARTITION_ANY {
            let log = t.partitions.get(partition as usize).ok_or_else(|| {
                (
                    ErrorCode::PartitionNotFound,
                    format!("topic {topic:?} has {n} partitions, no partition {partition}"),
                )
            })?;
            let recs: Vec<Record<'_>> = records.iter().map(|r| rec(r, ts)).collect();
            let a = self.append(log, &recs).map_err(fail)?;
            offsets.extend((0..records.len() as u64).map(|i| ProducedOffset {
                partition,
                offset: a.base_offset + i,
            }));
            waits.push((log.clone(), a.last_offset));
        } else {
            // Group by partition (keys by murmur3, empty keys round robin), one append each,
            // then answer in request order.
            let mut parts = vec![0u32; records.len()];
            let mut by_part: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
            for (i, r) in records.iter().enumerate() {
                let p = if r.key.is_empty() {
                    t.rr.fetch_add(1, Ordering::Relaxed) % n
                } else {
                    partition_for_key(&r.key, n)
                };
                parts[i] = p;
                by_part[p as usize].push(i);
            }
            let mut base = vec![0u64; n as usize];
            for (p, idx) in by_part.iter().enumerate() {
                if idx.is_empty() {
                    continue;
                }
                let recs: Vec<Record<'_>> = idx.iter().map(|&i| rec(&records[i], ts)).collect();
                let log = &t.partitions[p];
                let a = self.append(log, &recs).map_err(|e| {
                    let (code, msg) = fail(e);
                    let done = waits.len();
                    (
                        code,
                        format!("{msg} (messages for {done} other partitions were appended)"),
                    )
                })?;
                base[p] = a.base_offset;
                waits.push((log.clone(), a.last_offset));
            }
            let mut next = base;
            for &p in &parts {
                offsets.push(ProducedOffset {
                    partition: p,
                    offset: next[p as usize],
                });
                next[p as usize] += 1;
            }
        }
        self.metrics.messages_in.increment(records.len() as u64);
        let response = Response::BatchProduce {
            error: ErrorCode::None,
            message: String::new(),
            offsets,
        };
        Ok(self.durable(waits, response))
    }

    /// Reads for FETCH / FETCH_WAIT. Returns the answer and the log start offset.
    fn read(
        &self,
        log: &PartitionLog,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
    ) -> Result<(FetchResponse, u64), Failure> {
        let hw = log.high_watermark();
        let start = log.log_start_offset();
        let empty = |error, message: String| FetchResponse {
            error,
            message,
            high_watermark: hw,
            count: 0,
            records: Bytes::new(),
        };
        if offset > hw || offset < start {
            let msg = format!("offset {offset} out of range [{start}, {hw}]");
            return Ok((empty(ErrorCode::InvalidOffset, msg), start));
        }
        if offset == hw || max_messages == 0 {
            return Ok((empty(ErrorCode::None, String::new()), start));
        }
        match log.read(offset, max_messages, max_bytes) {
            Ok(b) => {
                self.metrics.messages_out.increment(u64::from(b.count));
                Ok((
                    FetchResponse {
                        error: ErrorCode::None,
                        message: String::new(),
                        high_watermark: b.high_watermark,
                        count: b.count,
                        records: b.bytes,
                    },
                    start,
                ))
            }
            Err(e) => {
                let (code, msg) = fail(e);
                Ok((empty(code, msg), log.log_start_offset()))
            }
        }
    }

    async fn long_poll(
        self: Arc<Self>,
        log: Arc<PartitionLog>,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
        wait: Duration,
    ) -> Response {
        // Subscribe before checking, so that an append in between is not missed.
        let mut rx = log.subscribe();
        let mut shutdown = self.shutdown.clone();
        let deadline = tokio::time::Instant::now() + wait;
        while log.high_watermark() <= offset && !*shutdown.borrow() {
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
        }
        match self.read(&log, offset, max_messages, max_bytes) {
            Ok((fetch, start)) => Response::FetchWait {
                log_start_offset: start,
                fetch,
            },
            Err((code, msg)) => {
                Response::error(stream_proto::RequestType::FetchWait.id(), code, msg)
            }
        }
    }

    /// Updates partition-size and consumer-group gauges (called periodically).
    pub fn refresh_gauges(&self) {
        for (topic, count) in self.store.topics() {
            for p in 0..count {
                let Ok(log) = self.store.partition(&topic, p) else {
                    continue;
                };
                let labels = [("topic", topic.clone()), ("partition", p.to_string())];
                metrics::gauge!("strp_partition_size_bytes", &labels).set(log.size_bytes() as f64);
                metrics::gauge!("strp_partition_high_watermark", &labels)
                    .set(log.high_watermark() as f64);
                metrics::gauge!("strp_partition_log_start_offset", &labels)
                    .set(log.log_start_offset() as f64);
            }
        }
        // Every committed offset, so a group's lag shows (and grows) while none of its members
        // is connected, and across restarts: that is when lag matters most.
        let committed = self.offsets.all();
        for ((group, topic, p), off) in committed {
            let Ok(log) = self.store.partition(&topic, p) else {
                continue;
            };
            let lag = log.high_watermark().saturating_sub(off);
            metrics::gauge!("strp_consumer_group_lag", "group" => group.clone(), "topic" => topic.clone(), "partition" => p.to_string())
                .set(lag as f64);
        }
        for g in self.groups.summaries() {
            metrics::gauge!("strp_consumer_group_members", "group" => g.group.clone())
                .set(g.members.len() as f64);
            metrics::gauge!("strp_consumer_group_generation", "group" => g.group)
                .set(f64::from(g.generation));
        }
    }
}
