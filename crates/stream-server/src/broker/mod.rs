//! Request handling: turns a request frame into an answer (or an answer that still waits for
//! durability / data), against the storage engine and the group coordinator.
//!
//! By job: [`topics`] (the topic cache, create/delete/metadata), [`produce`] (PRODUCE,
//! BATCH_PRODUCE, the partitioner), [`staged`] (a burst's single PRODUCEs appended together), [`fetch`] (FETCH, FETCH_WAIT's long poll),
//! [`group_requests`] (the consumer-group requests over [`crate::groups`]), [`errors`] (storage
//! errors as STRP codes), [`memory`] (what a request costs against the memory budget),
//! [`gauges`] (the periodic metrics). The connection layer sees only [`Pending`] answers.

pub mod errors;
mod fetch;
mod gauges;
mod group_requests;
pub mod memory;
mod produce;
mod staged;
mod topics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use stream_log::{Durability, LogError, OffsetStore, PartitionLog, TopicStore};
use stream_proto::{
    supported_versions, DecodeError, ErrorCode, Frame, Request, RequestType, Response, Status,
    MAX_PAYLOAD,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::budget::{Charge, ConnBudget, MemoryBudget};
use crate::groups::Coordinator;
use crate::metrics::RequestMetrics;

pub use errors::{log_error_code, Failure};
pub(crate) use produce::now_ms;
pub use staged::StagedProduces;
pub use topics::TopicHandle;

/// Most partitions a topic may be created with: the storage's limit, which owns it.
pub const MAX_PARTITIONS: u32 = stream_log::MAX_PARTITIONS;
/// Most record bytes one fetch returns: the response must stay under the 16 MiB frame limit.
pub const FETCH_MAX_BYTES: u32 = MAX_PAYLOAD - 64 * 1024;
/// Most messages in one BATCH_PRODUCE: its answer (12 bytes each) must fit a 16 MiB frame.
pub const MAX_BATCH_RECORDS: usize = (MAX_PAYLOAD as usize - 64 * 1024) / 12;
/// Longest long-poll wait a FETCH_WAIT may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// An answer, possibly not final yet. The connection's writer resolves these in request
/// order, so later requests are processed while earlier ones wait (e.g. for an fsync).
pub enum Pending {
    /// Final.
    Ready(Response),
    /// Final once [`Waiting::resolve`] returns.
    Waiting(Waiting),
    /// A PRODUCE staged on its connection: [`Broker::append_staged`] replaces it with its
    /// answer, before the burst it belongs to reaches the writer.
    Staged {
        /// The request's payload length (its charge holds the payload until the append).
        payload_len: usize,
    },
}

/// An answer that waits for durability or for data.
pub struct Waiting(WaitingFor);

enum WaitingFor {
    /// Final once every `(log, offset)` is durable; a durability failure replaces it with a
    /// STORAGE_ERROR answer.
    Durable { waits: Waits, response: Response },
    /// A long-poll fetch, with the budget its records took.
    Task(JoinHandle<(Response, Charge)>),
}

/// The `(log, offset)` pairs an answer waits for: a PRODUCE's one needs no allocation.
enum Waits {
    One((Arc<PartitionLog>, u64)),
    Many(Vec<(Arc<PartitionLog>, u64)>),
}

impl Waits {
    fn as_slice(&self) -> &[(Arc<PartitionLog>, u64)] {
        match self {
            Waits::One(wait) => std::slice::from_ref(wait),
            Waits::Many(waits) => waits,
        }
    }
}

impl Waiting {
    /// The `(log, offset)` pairs this answer waits to be durable (none for a long poll).
    pub fn durable_waits(&self) -> &[(Arc<PartitionLog>, u64)] {
        match &self.0 {
            WaitingFor::Durable { waits, .. } => waits.as_slice(),
            WaitingFor::Task(_) => &[],
        }
    }

    /// The final answer, and the memory charge it brings (records a long poll found).
    pub async fn resolve(self) -> (Response, Charge) {
        match self.0 {
            WaitingFor::Durable { waits, response } => {
                for (log, offset) in waits.as_slice() {
                    if let Err(e) = log.wait_durable(*offset).await {
                        let (code, msg) = errors::not_durable(e);
                        return (
                            Response::error(response.type_id(), code, msg),
                            Charge::none(),
                        );
                    }
                }
                (response, Charge::none())
            }
            WaitingFor::Task(handle) => handle.await.unwrap_or_else(|e| {
                let resp = Response::error(
                    RequestType::FetchWait.id(),
                    ErrorCode::Unknown,
                    format!("internal task failed: {e}"),
                );
                (resp, Charge::none())
            }),
        }
    }
}

/// Per-connection state the broker needs.
#[derive(Debug)]
pub struct ConnState {
    /// Connection id (unique in this process).
    pub id: u64,
    /// The connection joined a group with the original JOIN_GROUP: its traffic keeps those
    /// members alive.
    pub has_legacy_members: bool,
    /// The connection's memory budget (long polls charge their records to it).
    pub budget: ConnBudget,
    /// PRODUCEs served but not yet appended (see [`staged`]).
    pub staged: StagedProduces,
    /// The topic its PRODUCEs went to last.
    last_topic: topics::LastTopic,
}

impl ConnState {
    /// State of a new connection.
    pub fn new(id: u64, budget: ConnBudget) -> ConnState {
        ConnState {
            id,
            has_legacy_members: false,
            budget,
            staged: StagedProduces::default(),
            last_topic: topics::LastTopic::default(),
        }
    }
}

/// The broker: storage, groups, metrics, the memory budget.
pub struct Broker {
    store: TopicStore,
    offsets: OffsetStore,
    /// Consumer groups.
    pub groups: Coordinator,
    topics: topics::TopicCache,
    /// Request metrics handles.
    pub metrics: RequestMetrics,
    /// Memory of requests in flight and unsent answers, over all connections.
    pub memory: MemoryBudget,
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
        memory: MemoryBudget,
        shutdown: watch::Receiver<bool>,
    ) -> Broker {
        Broker {
            store,
            offsets,
            groups,
            topics: topics::TopicCache::default(),
            metrics: RequestMetrics::new(),
            memory,
            durability,
            shutdown,
        }
    }

    /// The topic store (for shutdown flushes and retention).
    pub fn store(&self) -> &TopicStore {
        &self.store
    }

    /// Committed consumer-group offsets (shared by STRP and Kafka groups).
    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// The durability policy appends are made under.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Changes to true when the server starts shutting down (long polls end early).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Handles one request frame: the answer, possibly still waiting for durability or data.
    /// Payloads that do not parse and failures become the request type's error answer.
    pub async fn handle(self: &Arc<Self>, frame: Frame, conn: &mut ConnState) -> Pending {
        if conn.has_legacy_members {
            self.groups.touch_connection(conn.id, Instant::now());
        }
        let type_id = frame.header.type_id;
        let result = if type_id == RequestType::BatchProduce.id() {
            // Not through `Request::decode`: its records stay slices of the payload instead
            // of a vector of owned records (72 bytes each, 8 times a minimal record).
            match stream_proto::BatchView::parse(&frame.payload) {
                Ok(batch) => self.batch_produce(&batch),
                Err(e) => return malformed(type_id, &e),
            }
        } else if type_id == RequestType::Produce.id() {
            let payload_len = frame.payload.len();
            match Request::decode(type_id, frame.payload) {
                Ok(Request::Produce {
                    topic,
                    key,
                    value,
                    priority,
                }) => self.stage_produce(&topic, key, value, priority, payload_len, conn),
                Ok(_) => Err(wrong_handler(type_id)),
                Err(e) => return malformed(type_id, &e),
            }
        } else {
            match Request::decode(type_id, frame.payload) {
                Ok(req) => self.dispatch(req, conn).await,
                Err(DecodeError::UnknownType(t)) => Err((
                    ErrorCode::InvalidRequest,
                    format!("unknown request type {t}"),
                )),
                Err(e) => return malformed(type_id, &e),
            }
        };
        match result {
            Ok(p) => p,
            Err((code, msg)) => Pending::Ready(Response::error(type_id, code, msg)),
        }
    }

    /// Runs storage work that blocks (creating files, fsyncing offsets) on the blocking pool.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Broker) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, Failure> {
        let b = self.clone();
        match tokio::task::spawn_blocking(move || f(&b)).await {
            Ok(r) => r.map_err(errors::fail),
            Err(e) => Err((ErrorCode::Unknown, format!("internal task failed: {e}"))),
        }
    }

    /// An answer to send once `waits` are durable (only group commit waits: every-write
    /// fsynced in the append, interval and never promise nothing more).
    fn durable(&self, waits: Vec<(Arc<PartitionLog>, u64)>, response: Response) -> Pending {
        if self.durability == Durability::GroupCommit && !waits.is_empty() {
            let waits = Waits::Many(waits);
            Pending::Waiting(Waiting(WaitingFor::Durable { waits, response }))
        } else {
            Pending::Ready(response)
        }
    }

    /// [`Broker::durable`] for one offset of one log.
    fn durable_one(&self, log: &Arc<PartitionLog>, offset: u64, response: Response) -> Pending {
        if self.durability == Durability::GroupCommit {
            let waits = Waits::One((log.clone(), offset));
            Pending::Waiting(Waiting(WaitingFor::Durable { waits, response }))
        } else {
            Pending::Ready(response)
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        req: Request,
        conn: &mut ConnState,
    ) -> Result<Pending, Failure> {
        let type_id = req.type_id();
        if let Some(group) = req.group_id() {
            if group.len() > stream_proto::MAX_GROUP_ID_LEN {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!(
                        "group id of {} bytes is longer than the {} allowed",
                        group.len(),
                        stream_proto::MAX_GROUP_ID_LEN
                    ),
                ));
            }
        }
        let ready = |r: Response| Ok(Pending::Ready(r));
        match req {
            Request::ApiVersions => ready(Response::ApiVersions {
                error: ErrorCode::None,
                versions: supported_versions(),
            }),
            Request::Metadata => ready(self.metadata()),
            Request::ListTopics => ready(self.list_topics()),
            Request::CreateTopic { name, partitions } => {
                ready(self.create_topic(name, partitions).await?)
            }
            Request::DeleteTopic { name } => ready(self.delete_topic(name).await?),
            // Served by `handle`: staged, and a batch read as a view (an owned batch only
            // comes from elsewhere).
            Request::Produce { .. } | Request::BatchProduce { .. } => Err(wrong_handler(type_id)),
            Request::Fetch {
                topic,
                partition,
                offset,
                max_messages,
            } => ready(self.fetch(&topic, partition, offset, max_messages)?),
            Request::FetchWait {
                topic,
                partition,
                offset,
                max_messages,
                max_bytes,
                max_wait_ms,
            } => self.fetch_wait(
                fetch::FetchWait {
                    topic,
                    partition,
                    offset,
                    max_messages,
                    max_bytes,
                    max_wait_ms,
                },
                conn,
            ),
            Request::Disconnect => ready(Response::Disconnect(Status::ok())),
            req => ready(self.group_request(req, conn).await?),
        }
    }
}

/// A request type that `handle` serves itself got into `dispatch` (a bug, not the client's).
fn wrong_handler(type_id: u32) -> Failure {
    (
        ErrorCode::Unknown,
        format!("type {type_id} reached the wrong handler"),
    )
}

/// The answer to a payload that does not parse: the connection stays open.
fn malformed(type_id: u32, e: &DecodeError) -> Pending {
    let name = RequestType::from_id(type_id).map_or("unknown", |t| t.name());
    Pending::Ready(Response::error(
        type_id,
        ErrorCode::InvalidRequest,
        format!("malformed {name} payload: {e}"),
    ))
}
