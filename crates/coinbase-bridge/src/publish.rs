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
}

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
/// Unavailable errors are retried with `backoff` (forever: the buffer bounds memory);
/// rejected records are counted, logged and skipped.
pub async fn run_pump<P: Publisher>(
    mut publisher: P,
    mut rx: mpsc::Receiver<Record>,
    stats: Arc<Stats>,
    partitions: u32,
    backoff: Backoff,
) {
    let mut known_topics: HashSet<String> = HashSet::new();
    let mut failing_since: Option<u64> = None;
    while let Some(rec) = rx.recv().await {
        let mut attempt: u32 = 0;
        loop {
            let result = publish_one(&mut publisher, &mut known_topics, &rec, partitions).await;
            match result {
                Ok(()) => {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    if let Some(failures) = failing_since.take() {
                        tracing::info!(
                            failures,
                            buffered = rx.len(),
                            "stream server reachable again; publishing the buffer"
                        );
                    }
                    break;
                }
                Err(PublishError::Rejected(reason)) => {
                    let n = stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(
                        rejected_total = n,
                        topic = %rec.topic,
                        key = %rec.key,
                        "stream server rejected a record; skipping it: {reason}"
                    );
                    break;
                }
                Err(PublishError::Unavailable(reason)) => {
                    known_topics.remove(&rec.topic);
                    let failures = failing_since.get_or_insert(0);
                    *failures += 1;
                    let delay = backoff.delay(attempt);
                    if *failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(
                            failures = *failures,
                            buffered = rx.len() + 1,
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
}

async fn publish_one<P: Publisher>(
    publisher: &mut P,
    known_topics: &mut HashSet<String>,
    rec: &Record,
    partitions: u32,
) -> Result<(), PublishError> {
    if !known_topics.contains(&rec.topic) {
        publisher.create_topic(&rec.topic, partitions).await?;
        tracing::info!(topic = %rec.topic, "topic ready");
        known_topics.insert(rec.topic.clone());
    }
    publisher
        .produce(&rec.topic, rec.key.as_bytes(), rec.value.as_bytes())
        .await
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
        assert_eq!(got, (0..10).map(rec).collect::<Vec<_>>());
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
}
