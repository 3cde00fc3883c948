//! Publishing records to the stream server: a bounded buffer between the FIX sessions and a
//! single pump task that creates topics and produces, retrying with backoff while the server
//! is unreachable.
//!
//! The FIX sessions never wait for the stream server: they hand records to a bounded channel
//! ([`ChannelSink`]); when it is full, the record is dropped, counted and logged (never
//! silently). One pump task publishes in channel order, which keeps every topic in feed
//! order. Delivery is at-least-once: a produce whose answer was lost is retried.

use crate::backoff::Backoff;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use stream_proto::partition_for_key;
use tokio::sync::mpsc;

/// One message for the stream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic name, e.g. `coinbase.BTC_USD`.
    pub topic: String,
    /// Message key (order id or ClOrdID).
    pub key: String,
    /// Message value (`TYPE|PRICE|SIZE|TIMESTAMP` or the execution format).
    pub value: String,
}

/// Where the FIX side hands its records.
pub trait RecordSink {
    /// Accepts one record; must not block.
    fn publish(&mut self, record: Record);
}

impl RecordSink for Vec<Record> {
    fn publish(&mut self, record: Record) {
        self.push(record);
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The server is unreachable or temporarily failing: retry later.
    #[error("stream server unavailable: {0}")]
    Unavailable(String),
    /// The server refused this record for good (e.g. too large): retrying cannot help.
    #[error("stream server rejected the record: {0}")]
    Rejected(String),
}

/// The stream-server operations the bridge needs; one implementation over `stream-client`
/// ([`crate::stream::StreamPublisher`]), others in tests.
pub trait Publisher: Send {
    /// Creates `topic` with `partitions` partitions; a topic that already exists is success.
    fn create_topic(
        &mut self,
        topic: &str,
        partitions: u32,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Appends one message to `topic`.
    fn produce(
        &mut self,
        topic: &str,
        key: &[u8],
        value: &[u8],
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Appends `records` (all of `topic`), each partition's in order. On failure, says which
    /// of them were stored first. The default produces them one by one.
    fn produce_batch(
        &mut self,
        topic: &str,
        records: &[Record],
    ) -> impl Future<Output = Result<(), BatchError>> + Send {
        async move {
            for (i, r) in records.iter().enumerate() {
                self.produce(topic, r.key.as_bytes(), r.value.as_bytes())
                    .await
                    .map_err(|error| BatchError {
                        stored: (0..i).collect(),
                        error,
                    })?;
            }
            Ok(())
        }
    }
}

/// A batch failed after some of its records were stored.
#[derive(Debug)]
pub struct BatchError {
    /// Indices (ascending) of the batch's records that were stored before the failure: a
    /// prefix when records go one by one, whole partitions' shares when the batch is split by
    /// partition, none when a single all-or-nothing request failed.
    pub stored: Vec<usize>,
    /// Why the rest failed.
    pub error: PublishError,
}

/// Most records taken from the buffer and published per round trip.
pub const MAX_BATCH: usize = 512;

/// Counters shared by the sink and the pump.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records accepted into the buffer.
    pub enqueued: AtomicU64,
    /// Records the stream server acknowledged.
    pub published: AtomicU64,
    /// Records dropped because the buffer was full (or the pump had stopped).
    pub dropped: AtomicU64,
    /// Records the stream server refused for good.
    pub rejected: AtomicU64,
}

impl Stats {
    /// Records accepted but neither published nor rejected (still buffered, or lost at exit).
    pub fn outstanding(&self) -> u64 {
        self.enqueued.load(Ordering::Relaxed).saturating_sub(
            self.published.load(Ordering::Relaxed) + self.rejected.load(Ordering::Relaxed),
        )
    }
}

/// [`RecordSink`] over the bounded channel to the pump.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::Sender<Record>,
    stats: Arc<Stats>,
}

/// Creates the bounded buffer: the sink for the sessions and the receiver for [`run_pump`].
pub fn channel(capacity: usize, stats: Arc<Stats>) -> (ChannelSink, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChannelSink { tx, stats }, rx)
}

impl RecordSink for ChannelSink {
    fn publish(&mut self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {
                self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => {
                        "buffer full (stream server slow or down)"
                    }
                    mpsc::error::TrySendError::Closed(_) => "publisher stopped",
                };
                // Log the first drop, then at powers of two and every 10,000, so a long
                // outage is visible without flooding the log.
                if n.is_power_of_two() || n.is_multiple_of(10_000) {
                    let r = e.into_inner();
                    tracing::error!(
                        dropped_total = n,
                        topic = %r.topic,
                        key = %r.key,
                        "dropped record: {why}"
                    );
                }
            }
        }
    }
}

/// Publishes records from `rx` until every sender is gone and the buffer is drained.
/// Records waiting in the buffer are taken together (up to [`MAX_BATCH`]) and published as
/// one batch per topic, in order within each topic (the only order consumers can see).
/// Unavailable errors are retried with `backoff` (forever: the buffer bounds memory);
/// rejected records are counted, logged and skipped.
pub async fn run_pump<P: Publisher>(
    mut publisher: P,
    mut rx: mpsc::Receiver<Record>,
    stats: Arc<Stats>,
    partitions: u32,
    backoff: Backoff,
) {
    let mut pump = Pump {
        known_topics: HashSet::new(),
        failures: None,
        stats,
        partitions,
        backoff,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Group by topic, keeping each topic's order; topics are independent logs.
        let mut groups: Vec<(String, Vec<Record>)> = Vec::new();
        for r in batch.drain(..) {
            match groups.iter_mut().find(|(t, _)| *t == r.topic) {
                Some((_, g)) => g.push(r),
                None => groups.push((r.topic.clone(), vec![r])),
            }
        }
        for (topic, records) in &groups {
            pump.publish_group(&mut publisher, topic, records, &rx)
                .await;
        }
    }
}

struct Pump {
    known_topics: HashSet<String>,
    /// Consecutive failed attempts, while the server is unavailable.
    failures: Option<u64>,
    stats: Arc<Stats>,
    partitions: u32,
    backoff: Backoff,
}

impl Pump {
    /// Publishes `records` of `topic`, retrying until each is stored or rejected. Retries
    /// send only what was not stored, so a partly stored batch is not stored twice.
    async fn publish_group<P: Publisher>(
        &mut self,
        publisher: &mut P,
        topic: &str,
        records: &[Record],
        rx: &mpsc::Receiver<Record>,
    ) {
        let mut pending: Vec<Record> = records.to_vec();
        let mut attempt: u32 = 0;
        // After a batch is rejected, send one by one to isolate the record.
        let mut one_by_one = false;
        while !pending.is_empty() {
            let end = if one_by_one { 1 } else { pending.len() };
            let result = match self.ensure_topic(publisher, topic).await {
                Ok(()) => publisher.produce_batch(topic, &pending[..end]).await,
                Err(error) => Err(BatchError {
                    stored: Vec::new(),
                    error,
                }),
            };
            let (stored, error) = match result {
                Ok(()) => ((0..end).collect(), None),
                Err(BatchError { stored, error }) => (stored, Some(error)),
            };
            let stored = remove_stored(&mut pending, end, &stored);
            self.stats
                .published
                .fetch_add(stored as u64, Ordering::Relaxed);
            match error {
                None => {
                    if let Some(failures) = self.failures.take() {
                        tracing::info!(
                            failures,
                            buffered = rx.len() + pending.len(),
                            "stream server reachable again; publishing the buffer"
                        );
                    }
                    attempt = 0;
                }
                Some(PublishError::Rejected(reason)) => {
                    if end - stored > 1 && !one_by_one {
                        one_by_one = true;
                        continue;
                    }
                    let rec = pending.remove(0);
                    let n = self.stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(
                        rejected_total = n,
                        topic = %rec.topic,
                        key = %rec.key,
                        "stream server rejected a record; skipping it: {reason}"
                    );
                    one_by_one = false;
                }
                Some(PublishError::Unavailable(reason)) => {
                    self.known_topics.remove(topic);
                    let failures = self.failures.get_or_insert(0);
                    *failures += 1;
                    let delay = self.backoff.delay(attempt);
                    if *failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(
                            failures = *failures,
                            buffered = rx.len() + pending.len(),
                            retry_in_ms = delay.as_millis() as u64,
                            "cannot publish to the stream server: {reason}"
                        );
                    }
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn ensure_topic<P: Publisher>(
        &mut self,
        publisher: &mut P,
        topic: &str,
    ) -> Result<(), PublishError> {
        if !self.known_topics.contains(topic) {
            publisher.create_topic(topic, self.partitions).await?;
            tracing::info!(topic = %topic, "topic ready");
            self.known_topics.insert(topic.to_owned());
        }
        Ok(())
    }
}

/// Removes from `pending` the records at the `stored` indices (those below `sent`, the
/// number just sent; others are ignored), keeping the rest in order. Returns how many went.
fn remove_stored(pending: &mut Vec<Record>, sent: usize, stored: &[usize]) -> usize {
    let mut is_stored = vec![false; sent];
    for &i in stored {
        if let Some(flag) = is_stored.get_mut(i) {
            *flag = true;
        }
    }
    let removed = is_stored.iter().filter(|&&f| f).count();
    let mut i = 0;
    pending.retain(|_| {
        let keep = !is_stored.get(i).copied().unwrap_or(false);
        i += 1;
        keep
    });
    removed
}

/// Groups the indices of `records` by the partition the server's key rule puts them in
/// (`stream_proto::partition_for_key`), partitions in order of first appearance and each
/// share in record order. Every publisher splits with this one function, so a key lands in
/// the same partition whichever protocol carries it.
pub fn split_by_partition(records: &[Record], partitions: u32) -> Vec<(u32, Vec<usize>)> {
    let mut shares: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let p = partition_for_key(r.key.as_bytes(), partitions);
        match shares.iter_mut().find(|(q, _)| *q == p) {
            Some((_, share)) => share.push(i),
            None => shares.push((p, vec![i])),
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Fails `fail_first` calls with Unavailable, then records everything.
    #[derive(Default)]
    struct FakePublisher {
        fail_first: usize,
        calls: usize,
        topics: Vec<String>,
        produced: Arc<std::sync::Mutex<Vec<Record>>>,
        reject_key: Option<String>,
    }

    impl Publisher for FakePublisher {
        async fn create_topic(&mut self, topic: &str, _p: u32) -> Result<(), PublishError> {
            self.calls += 1;
            if self.calls <= self.fail_first {
                return Err(PublishError::Unavailable("down".into()));
            }
            self.topics.push(topic.to_owned());
            Ok(())
        }

        async fn produce(
            &mut self,
            topic: &str,
            key: &[u8],
            value: &[u8],
        ) -> Result<(), PublishError> {
            self.calls += 1;
            if self.calls <= self.fail_first {
                return Err(PublishError::Unavailable("down".into()));
            }
            let key = String::from_utf8(key.to_vec()).unwrap();
            if self.reject_key.as_deref() == Some(key.as_str()) {
                return Err(PublishError::Rejected("too large".into()));
            }
            self.produced.lock().unwrap().push(Record {
                topic: topic.into(),
                key,
                value: String::from_utf8(value.to_vec()).unwrap(),
            });
            Ok(())
        }
    }

    /// A publisher with all-or-nothing batches, like BATCH_PRODUCE to one partition.
    #[derive(Default)]
    struct AtomicBatches {
        produced: Vec<Record>,
        batches: usize,
        reject_key: String,
    }

    impl Publisher for AtomicBatches {
        async fn create_topic(&mut self, _t: &str, _p: u32) -> Result<(), PublishError> {
            Ok(())
        }

        async fn produce(&mut self, _t: &str, _k: &[u8], _v: &[u8]) -> Result<(), PublishError> {
            unreachable!("batches only")
        }

        async fn produce_batch(&mut self, _t: &str, records: &[Record]) -> Result<(), BatchError> {
            self.batches += 1;
            if records.iter().any(|r| r.key == self.reject_key) {
                return Err(BatchError {
                    stored: Vec::new(),
                    error: PublishError::Rejected("too large".into()),
                });
            }
            self.produced.extend_from_slice(records);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_rejected_batch_is_split_to_isolate_the_bad_record() {
        let stats = Arc::new(Stats::default());
        let (mut sink, rx) = channel(100, stats.clone());
        for i in 0..6 {
            sink.publish(Record {
                topic: "t".into(),
                key: format!("k{i}"),
                value: format!("v{i}"),
            });
        }
        drop(sink);
        let mut p = AtomicBatches {
            reject_key: "k2".into(),
            ..Default::default()
        };
        // Drive the pump by hand to keep the publisher for inspection.
        let mut pump = Pump {
            known_topics: HashSet::new(),
            failures: None,
            stats: stats.clone(),
            partitions: 1,
            backoff: fast(),
        };
        let mut rx = rx;
        let mut batch = Vec::new();
        rx.recv_many(&mut batch, MAX_BATCH).await;
        assert_eq!(batch.len(), 6);
        pump.publish_group(&mut p, "t", &batch, &rx).await;
        let keys: Vec<_> = p.produced.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, vec!["k0", "k1", "k3", "k4", "k5"]);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(stats.published.load(Ordering::Relaxed), 5);
        // Whole batch, then k0, k1, k2 alone, then the rest as one batch again.
        assert_eq!(p.batches, 5);
    }

    /// Splits each batch into two "partitions" by key parity, each share all or nothing, as
    /// the stream publisher does; the second share of the first batch fails.
    #[derive(Default)]
    struct PartitionedBatches {
        produced: Vec<Record>,
        calls: usize,
    }

    impl Publisher for PartitionedBatches {
        async fn create_topic(&mut self, _t: &str, _p: u32) -> Result<(), PublishError> {
            Ok(())
        }

        async fn produce(&mut self, _t: &str, _k: &[u8], _v: &[u8]) -> Result<(), PublishError> {
            unreachable!("batches only")
        }

        async fn produce_batch(&mut self, _t: &str, records: &[Record]) -> Result<(), BatchError> {
            self.calls += 1;
            let mut stored = Vec::new();
            for parity in [0, 1] {
                let share: Vec<usize> = (0..records.len())
                    .filter(|&i| records[i].key.len() % 2 == parity)
                    .collect();
                if self.calls == 1 && parity == 1 {
                    return Err(BatchError {
                        stored,
                        error: PublishError::Unavailable("partition leader gone".into()),
                    });
                }
                self.produced
                    .extend(share.iter().map(|&i| records[i].clone()));
                stored.extend(share);
            }
            stored.sort_unstable();
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_partly_stored_batch_is_retried_without_what_was_stored() {
        let stats = Arc::new(Stats::default());
        let (mut sink, rx) = channel(100, stats.clone());
        // Keys of length 2 and 3 land in different "partitions".
        let keys = ["aa", "bbb", "cc", "ddd", "ee"];
        for k in keys {
            sink.publish(Record {
                topic: "t".into(),
                key: k.into(),
                value: "v".into(),
            });
        }
        drop(sink);
        let mut pump = Pump {
            known_topics: HashSet::new(),
            failures: None,
            stats: stats.clone(),
            partitions: 2,
            backoff: fast(),
        };
        let mut rx = rx;
        let mut batch = Vec::new();
        rx.recv_many(&mut batch, MAX_BATCH).await;
        let mut p = PartitionedBatches::default();
        pump.publish_group(&mut p, "t", &batch, &rx).await;
        let mut got: Vec<_> = p.produced.iter().map(|r| r.key.as_str()).collect();
        // The even share went on the first call, the odd one on the retry: no duplicates.
        assert_eq!(got, vec!["aa", "cc", "ee", "bbb", "ddd"]);
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), keys.len());
        assert_eq!(p.calls, 2);
        assert_eq!(stats.published.load(Ordering::Relaxed), 5);
        assert_eq!(stats.outstanding(), 0);
    }

    #[test]
    fn remove_stored_keeps_the_rest_in_order() {
        let mut pending: Vec<Record> = (0..6).map(rec).collect();
        // Index 9 is past what was sent and is ignored.
        assert_eq!(remove_stored(&mut pending, 4, &[0, 2, 3, 9]), 3);
        let keys: Vec<_> = pending.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, vec!["k1", "k4", "k5"]);
    }

    fn rec(i: usize) -> Record {
        Record {
            topic: format!("t{}", i % 2),
            key: format!("k{i}"),
            value: format!("v{i}"),
        }
    }

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(5))
    }

    #[tokio::test]
    async fn retries_until_available_and_keeps_order() {
        let stats = Arc::new(Stats::default());
        let (mut sink, rx) = channel(100, stats.clone());
        for i in 0..10 {
            sink.publish(rec(i));
        }
        drop(sink);
        let produced = Arc::new(std::sync::Mutex::new(Vec::new()));
        let p = FakePublisher {
            fail_first: 5,
            produced: produced.clone(),
            ..Default::default()
        };
        run_pump(p, rx, stats.clone(), 1, fast()).await;
        let got = produced.lock().unwrap().clone();
        // Each topic keeps its order (topics are independent logs).
        for topic in ["t0", "t1"] {
            let want: Vec<_> = (0..10).map(rec).filter(|r| r.topic == topic).collect();
            let have: Vec<_> = got.iter().filter(|r| r.topic == topic).cloned().collect();
            assert_eq!(have, want);
        }
        assert_eq!(got.len(), 10);
        assert_eq!(stats.published.load(Ordering::Relaxed), 10);
        assert_eq!(stats.outstanding(), 0);
    }

    #[tokio::test]
    async fn full_buffer_drops_are_counted() {
        let stats = Arc::new(Stats::default());
        let (mut sink, rx) = channel(3, stats.clone());
        for i in 0..5 {
            sink.publish(rec(i));
        }
        assert_eq!(stats.enqueued.load(Ordering::Relaxed), 3);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
        drop(sink);
        let produced = Arc::new(std::sync::Mutex::new(Vec::new()));
        let p = FakePublisher {
            produced: produced.clone(),
            reject_key: Some("k1".into()),
            ..Default::default()
        };
        run_pump(p, rx, stats.clone(), 1, fast()).await;
        assert_eq!(produced.lock().unwrap().len(), 2);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(stats.outstanding(), 0);
    }

    #[test]
    fn shares_follow_the_servers_key_rule_and_keep_order() {
        let records: Vec<Record> = (0..50)
            .map(|i| Record {
                topic: "t".into(),
                key: format!("order-{}", i % 7),
                value: i.to_string(),
            })
            .collect();
        let shares = split_by_partition(&records, 4);
        let mut all: Vec<usize> = Vec::new();
        for (p, share) in &shares {
            assert!(share.windows(2).all(|w| w[0] < w[1]), "record order kept");
            for &i in share {
                assert_eq!(partition_for_key(records[i].key.as_bytes(), 4), *p);
            }
            all.extend(share);
        }
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(split_by_partition(&records, 1).len(), 1);
    }
}
