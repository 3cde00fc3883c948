//! [`BatchProducer`]: accumulates messages per partition and sends them with BATCH_PRODUCE.
//!
//! Two tasks share one connection: the writer task owns the batches and the socket's write
//! half, the reader task owns the read half and resolves acknowledgements in request order
//! (the server answers in order). A semaphore bounds the batches in flight, which is also the
//! producer's back-pressure together with the bounded command queue.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use stream_proto::{partition_for_key, Priority, ProduceRecord, Request};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{batch_produced, Produced, StreamClient};
use crate::conn::{FrameReader, FrameWriter};
use crate::error::ClientError;

/// Tuning of a [`BatchProducer`].
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// A partition's batch is sent once it holds this many messages.
    pub max_batch_messages: usize,
    /// ... or this many key + value bytes (keep well below the 16 MiB frame limit).
    pub max_batch_bytes: usize,
    /// ... or once its first message has waited this long.
    pub linger: Duration,
    /// Batches sent but not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Messages queued towards the writer task before `send` waits.
    pub queue_capacity: usize,
    /// Priority of every message.
    pub priority: Priority,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            max_batch_messages: 8192,
            max_batch_bytes: 1 << 20,
            linger: Duration::from_millis(1),
            max_in_flight: 8,
            queue_capacity: 65536,
            priority: Priority::Normal,
        }
    }
}

type AckTx = oneshot::Sender<Result<Produced, ClientError>>;

enum Cmd {
    Send {
        key: Bytes,
        value: Bytes,
        ack: AckTx,
    },
    Flush(oneshot::Sender<()>),
}

/// What the reader task must resolve for each request, in order.
enum Pending {
    Batch(Vec<AckTx>, OwnedSemaphorePermit),
    Barrier(oneshot::Sender<()>),
}

/// The acknowledgement of one message: resolves to where it landed, or why it failed.
#[must_use = "an unawaited ack hides produce failures"]
pub struct ProduceAck {
    rx: oneshot::Receiver<Result<Produced, ClientError>>,
}

impl Future for ProduceAck {
    type Output = Result<Produced, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(res) => res,
            Err(_) => Err(stopped("the producer stopped before acknowledging")),
        })
    }
}

fn stopped(why: &str) -> ClientError {
    ClientError::Io(io::Error::new(io::ErrorKind::BrokenPipe, why.to_string()))
}

/// A producer for one topic that batches messages per partition.
///
/// Keyed messages go to `murmur3(key) % partitions` (the server's rule, so the same key
/// lands on the same partition as with single PRODUCEs); messages with an empty key stick to
/// one partition per batch, rotating between batches (fewer, fuller batches than per-message
/// round robin).
pub struct BatchProducer {
    tx: mpsc::Sender<Cmd>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
    topic: String,
    partitions: u32,
}

struct Batch {
    records: Vec<ProduceRecord>,
    acks: Vec<AckTx>,
    bytes: usize,
    started: Instant,
}

impl BatchProducer {
    /// Connects to `addr` and produces to `topic` (which must exist).
    pub async fn connect(
        addr: &str,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<BatchProducer, ClientError> {
        let mut client = StreamClient::connect(addr).await?;
        let partitions = client.partition_count(topic).await?;
        let (reader, writer) = client.into_parts();
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (pending_tx, pending_rx) = mpsc::unbounded_channel();
        let failure = Arc::new(Mutex::new(None));
        let reader = tokio::spawn(read_acks(reader, pending_rx, failure.clone()));
        let state = WriterState {
            topic: topic.to_string(),
            partitions,
            config: config.clone(),
            batches: (0..partitions).map(|_| None).collect(),
            sticky: 0,
            writer,
            pending: pending_tx,
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            failure,
        };
        let writer = tokio::spawn(state.run(rx));
        Ok(BatchProducer {
            tx,
            writer,
            reader,
            topic: topic.to_string(),
            partitions,
        })
    }

    /// The topic this producer writes to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's partition count (learnt at connect).
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Queues a message; waits only when the queue is full. Await the returned ack for its
    /// offset (dropping it is fine when offsets do not matter; failures are then unseen).
    pub async fn send(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<ProduceAck, ClientError> {
        let (ack, rx) = oneshot::channel();
        let cmd = Cmd::Send {
            key: key.into(),
            value: value.into(),
            ack,
        };
        self.tx
            .send(cmd)
            .await
            .map_err(|_| stopped("the producer has stopped"))?;
        Ok(ProduceAck { rx })
    }

    /// Sends every queued message now and waits until all of them are acknowledged.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .await
            .map_err(|_| stopped("the producer has stopped"))?;
        rx.await
            .map_err(|_| stopped("the producer stopped while flushing"))
    }

    /// Flushes, then closes the connection.
    pub async fn close(self) -> Result<(), ClientError> {
        let r = self.flush().await;
        drop(self.tx);
        let _ = self.writer.await;
        let _ = self.reader.await;
        r
    }
}

struct WriterState {
    topic: String,
    partitions: u32,
    config: ProducerConfig,
    batches: Vec<Option<Batch>>,
    sticky: u32,
    writer: FrameWriter,
    pending: mpsc::UnboundedSender<Pending>,
    permits: Arc<Semaphore>,
    failure: Arc<Mutex<Option<String>>>,
}

impl WriterState {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let oldest = self.batches.iter().flatten().map(|b| b.started).min();
            let cmd = tokio::select! {
                biased;
                cmd = rx.recv() => cmd,
                _ = tokio::time::sleep_until(oldest.unwrap_or_else(Instant::now) + self.config.linger),
                    if oldest.is_some() => {
                    self.ship_expired().await;
                    self.write().await;
                    continue;
                }
            };
            match cmd {
                Some(Cmd::Send { key, value, ack }) => {
                    self.add(key, value, ack).await;
                    // Keep taking what is already queued before writing (one syscall for
                    // many batches), but never hold a full batch back.
                    if rx.is_empty() {
                        self.write().await;
                    }
                }
                Some(Cmd::Flush(done)) => {
                    self.ship_all().await;
                    let _ = self.pending.send(Pending::Barrier(done));
                    self.write().await;
                }
                None => {
                    self.ship_all().await;
                    self.write().await;
                    return; // dropping `pending` ends the reader once it is done
                }
            }
        }
    }

    fn partition_of(&self, key: &[u8]) -> u32 {
        if key.is_empty() {
            self.sticky
        } else {
            partition_for_key(key, self.partitions)
        }
    }

    async fn add(&mut self, key: Bytes, value: Bytes, ack: AckTx) {
        if self.partitions == 0 {
            let _ = ack.send(Err(ClientError::Protocol(format!(
                "topic {} has no partitions",
                self.topic
            ))));
            return;
        }
        let p = self.partition_of(&key);
        let size = key.len() + value.len() + 9;
        let batch = self.batches[p as usize].get_or_insert_with(|| Batch {
            records: Vec::new(),
            acks: Vec::new(),
            bytes: 0,
            started: Instant::now(),
        });
        batch.records.push(ProduceRecord {
            key,
            value,
            priority: self.config.priority as u8,
        });
        batch.acks.push(ack);
        batch.bytes += size;
        if batch.records.len() >= self.config.max_batch_messages
            || batch.bytes >= self.config.max_batch_bytes
        {
            self.ship(p).await;
        }
    }

    async fn ship_expired(&mut self) {
        let now = Instant::now();
        for p in 0..self.partitions {
            let due = self.batches[p as usize]
                .as_ref()
                .is_some_and(|b| b.started + self.config.linger <= now);
            if due {
                self.ship(p).await;
            }
        }
    }

    async fn ship_all(&mut self) {
        for p in 0..self.partitions {
            self.ship(p).await;
        }
    }

    /// Moves partition `p`'s batch into the write buffer (written by [`Self::write`]).
    async fn ship(&mut self, p: u32) {
        let Some(batch) = self.batches[p as usize].take() else {
            return;
        };
        if p == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions;
        }
        if let Some(why) = self.failure() {
            fail_all(batch.acks, &stopped(&why));
            return;
        }
        // Waiting for a permit is the back-pressure: write what is buffered first so that
        // the batches holding the permits can complete.
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.write().await;
                match self.permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => {
                        fail_all(batch.acks, &stopped("the producer is closed"));
                        return;
                    }
                }
            }
        };
        self.writer.push(&Request::BatchProduce {
            topic: self.topic.clone(),
            partition: p,
            records: batch.records,
        });
        let sent = self.pending.send(Pending::Batch(batch.acks, permit));
        if let Err(mpsc::error::SendError(Pending::Batch(acks, _))) = sent {
            fail_all(acks, &stopped("the connection's reader has stopped"));
        }
    }

    async fn write(&mut self) {
        if let Err(e) = self.writer.flush().await {
            self.set_failure(format!("write failed: {e}"));
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn set_failure(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }
}

fn fail_all(acks: Vec<AckTx>, err: &ClientError) {
    for a in acks {
        let _ = a.send(Err(err.duplicate()));
    }
}

/// Resolves acknowledgements in request order.
async fn read_acks(
    mut reader: FrameReader,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    failure: Arc<Mutex<Option<String>>>,
) {
    let mut broken: Option<ClientError> = None;
    while let Some(p) = pending.recv().await {
        match p {
            Pending::Barrier(done) => {
                let _ = done.send(());
            }
            Pending::Batch(acks, _permit) => {
                if let Some(e) = &broken {
                    fail_all(acks, e);
                    continue;
                }
                let resp = reader
                    .read_response(stream_proto::RequestType::BatchProduce.id())
                    .await;
                match resp.and_then(batch_produced) {
                    Ok(offsets) if offsets.len() == acks.len() => {
                        for (a, o) in acks.into_iter().zip(offsets) {
                            let _ = a.send(Ok(o));
                        }
                    }
                    Ok(offsets) => {
                        let e = ClientError::Protocol(format!(
                            "{} offsets answered for a batch of {}",
                            offsets.len(),
                            acks.len()
                        ));
                        fail_all(acks, &e);
                        broken = Some(e);
                    }
                    Err(e) => {
                        fail_all(acks, &e);
                        if !matches!(e, ClientError::Server { .. }) {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e.to_string());
                            }
                            broken = Some(e);
                        }
                    }
                }
            }
        }
    }
}
