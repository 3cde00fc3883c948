//! Topics: the cache of partition logs the produce and fetch paths use, and the
//! CREATE_TOPIC / DELETE_TOPIC / METADATA / LIST_TOPICS requests (and growing a topic, which
//! only Kafka's CreatePartitions asks for).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use stream_log::PartitionLog;
use stream_proto::{partition_for_key, ErrorCode, Response, Status, TopicInfo};

use super::errors::{fail, Failure};
use super::{Broker, MAX_PARTITIONS};

/// A topic's partition logs, cached so that the produce path does no store lookups.
pub struct TopicHandle {
    /// Partition logs, by partition id.
    pub partitions: Vec<Arc<PartitionLog>>,
    /// Round-robin counter for empty keys.
    rr: AtomicU32,
}

impl TopicHandle {
    /// The partition a message with `key` goes to: murmur3 of a non-empty key (where the C++
    /// server put it), round robin for an empty one. The one partitioner of PRODUCE and
    /// BATCH_PRODUCE. `None` for a topic without partitions.
    pub fn partition_for(&self, key: &[u8]) -> Option<u32> {
        let n = self.partitions.len() as u32;
        if n == 0 {
            return None;
        }
        Some(if key.is_empty() {
            self.rr.fetch_add(1, Ordering::Relaxed) % n
        } else {
            partition_for_key(key, n)
        })
    }
}

/// Topic name → cached handle, and a generation that every create, grow and delete moves on, so
/// that a connection may keep the handle it used last while the generation stands.
#[derive(Default)]
pub(super) struct TopicCache(RwLock<HashMap<String, Arc<TopicHandle>>>, AtomicU64);

/// The topic a connection used last, with the cache generation it was looked up in. Weak: a
/// deleted topic's logs (and their mapped segments) go when the shared cache lets them go, not
/// when an idle producer's connection closes.
#[derive(Debug, Default)]
pub struct LastTopic(Option<(String, u64, Weak<TopicHandle>)>);

impl Broker {
    /// [`Broker::topic`] through the connection's last topic: a producer sending to one topic
    /// skips the shared cache's lock and hash on every request.
    pub(super) fn topic_for(
        &self,
        name: &str,
        last: &mut LastTopic,
    ) -> Result<Arc<TopicHandle>, Failure> {
        let generation = self.topics.1.load(Ordering::Acquire);
        if let Some((n, g, handle)) = &last.0 {
            if *g == generation && n == name {
                if let Some(handle) = handle.upgrade() {
                    return Ok(handle);
                }
            }
        }
        let handle = self.topic(name)?;
        last.0 = Some((name.to_string(), generation, Arc::downgrade(&handle)));
        Ok(handle)
    }

    /// The cached handle of `name`, loading it from the store on first use.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<TopicHandle>, Failure> {
        let cache = &self.topics.0;
        if let Some(t) = cache.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(t.clone());
        }
        // Read before the store: a grow (or delete) that lands while the handle is built moves
        // the generation on, and the handle, stale then, must not be cached past it.
        let generation = self.topics.1.load(Ordering::Acquire);
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
        let mut topics = cache.write().unwrap_or_else(|e| e.into_inner());
        // `forget_topic` moves the generation under this lock, so the comparison is exact.
        if self.topics.1.load(Ordering::Acquire) != generation {
            return Ok(handle);
        }
        Ok(topics.entry(name.to_string()).or_insert(handle).clone())
    }

    /// One partition's log.
    pub(crate) fn partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<PartitionLog>, Failure> {
        let t = self.topic(topic)?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| no_partition(topic, t.partitions.len(), partition))
    }

    fn forget_topic(&self, name: &str) {
        let mut topics = self.topics.0.write().unwrap_or_else(|e| e.into_inner());
        topics.remove(name);
        // Under the lock: a connection that reads the new generation finds the new state.
        self.topics.1.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn metadata(&self) -> Response {
        Response::Metadata {
            error: ErrorCode::None,
            topics: self
                .store
                .topics()
                .into_iter()
                .map(|(name, partitions)| TopicInfo { name, partitions })
                .collect(),
        }
    }

    pub(super) fn list_topics(&self) -> Response {
        Response::ListTopics {
            error: ErrorCode::None,
            topics: self.store.topics().into_iter().map(|(n, _)| n).collect(),
        }
    }

    pub(crate) async fn create_topic(
        self: &Arc<Self>,
        name: String,
        partitions: u32,
    ) -> Result<Response, Failure> {
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
        Ok(Response::CreateTopic(Status::ok()))
    }

    /// Grows topic `name` to `total` partitions (the store's `add_partitions` checks the
    /// count and the limits), or with `validate_only` only checks that it could. Afterwards
    /// every path sees the new count: the cached handle is replaced (so produce, fetch,
    /// metadata and the partitioner's round robin cover the new partitions; connections'
    /// last-topic handles go stale with the generation), and the groups consuming the topic
    /// rebalance.
    pub(crate) async fn add_partitions(
        self: &Arc<Self>,
        name: String,
        total: u32,
        validate_only: bool,
    ) -> Result<(), Failure> {
        if validate_only {
            return self.store.check_add_partitions(&name, total).map_err(fail);
        }
        let n = name.clone();
        self.blocking(move |b| b.store.add_partitions(&n, total))
            .await?;
        self.forget_topic(&name);
        self.groups.topic_grown(&name, total);
        Ok(())
    }

    pub(crate) async fn delete_topic(self: &Arc<Self>, name: String) -> Result<Response, Failure> {
        let n = name.clone();
        self.forget_topic(&name);
        self.blocking(move |b| {
            b.store.delete_topic(&n)?;
            b.offsets.remove_topic(&n)
        })
        .await?;
        self.forget_topic(&name);
        self.groups.topic_deleted(&name);
        Ok(Response::DeleteTopic(Status::ok()))
    }
}

/// The failure for a partition the topic does not have.
pub(super) fn no_partition(topic: &str, count: usize, partition: u32) -> Failure {
    (
        ErrorCode::PartitionNotFound,
        format!("topic {topic:?} has {count} partitions, no partition {partition}"),
    )
}
