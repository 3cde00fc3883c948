//! [`Publisher`] over the Rust stream client: one connection, reopened after I/O errors.

use crate::publish::{split_by_partition, BatchError, PublishError, Publisher, Record};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;
use stream_client::{ClientError, Priority, ProduceRecord, StreamClient};
use stream_proto::ErrorCode;

/// Publishes through `stream_client::StreamClient`.
pub struct StreamPublisher {
    addr: String,
    client: Option<StreamClient>,
    timeout: Duration,
    /// Cleared when the server does not know BATCH_PRODUCE (an original STRP server):
    /// batches are then produced one record at a time.
    batch_supported: bool,
    /// Partition count of each topic published to, for splitting batches by partition.
    partitions: HashMap<String, u32>,
}

impl StreamPublisher {
    /// A publisher for the server at `addr` (`host:port`); connects lazily.
    pub fn new(addr: &str) -> Self {
        StreamPublisher {
            addr: addr.to_owned(),
            client: None,
            timeout: Duration::from_secs(10),
            batch_supported: true,
            partitions: HashMap::new(),
        }
    }

    async fn client(&mut self) -> Result<&mut StreamClient, PublishError> {
        if self.client.is_none() {
            let c = tokio::time::timeout(self.timeout, StreamClient::connect(&self.addr))
                .await
                .map_err(|_| {
                    PublishError::Unavailable(format!("connect to {} timed out", self.addr))
                })?
                .map_err(|e| PublishError::Unavailable(format!("connect to {}: {e}", self.addr)))?;
            tracing::info!(addr = %self.addr, "connected to the stream server");
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| PublishError::Unavailable("no connection".into()))
    }

    /// Produces `records` one request each, counting what was stored before a failure.
    async fn produce_each(&mut self, topic: &str, records: &[Record]) -> Result<(), BatchError> {
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

    /// The topic's partition count, asked once and cached.
    async fn partition_count(&mut self, topic: &str) -> Result<u32, PublishError> {
        if let Some(&n) = self.partitions.get(topic) {
            return Ok(n);
        }
        let timeout = self.timeout;
        let client = self.client().await?;
        match tokio::time::timeout(timeout, client.partition_count(topic)).await {
            Err(_) => {
                self.client = None;
                Err(PublishError::Unavailable(format!(
                    "metadata of {topic} timed out"
                )))
            }
            Ok(Ok(n)) => {
                self.partitions.insert(topic.to_owned(), n);
                Ok(n)
            }
            Ok(Err(e)) => Err(self.classify(&format!("metadata of {topic}"), e)),
        }
    }

    /// Maps a client error; I/O and protocol errors also drop the connection so the next
    /// attempt reconnects.
    fn classify(&mut self, what: &str, e: ClientError) -> PublishError {
        match e.code() {
            Some(ErrorCode::RequestTooLarge) | Some(ErrorCode::InvalidRequest) => {
                PublishError::Rejected(format!("{what}: {e}"))
            }
            Some(_) => PublishError::Unavailable(format!("{what}: {e}")),
            None => {
                self.client = None;
                PublishError::Unavailable(format!("{what}: {e}"))
            }
        }
    }
}

impl Publisher for StreamPublisher {
    async fn create_topic(&mut self, topic: &str, partitions: u32) -> Result<(), PublishError> {
        let timeout = self.timeout;
        let client = self.client().await?;
        match tokio::time::timeout(timeout, client.create_topic(topic, partitions)).await {
            Err(_) => {
                self.client = None;
                Err(PublishError::Unavailable(format!(
                    "create_topic {topic} timed out"
                )))
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.code() == Some(ErrorCode::TopicAlreadyExists) => Ok(()),
            Ok(Err(e)) => Err(self.classify(&format!("create_topic {topic}"), e)),
        }
    }

    async fn produce(&mut self, topic: &str, key: &[u8], value: &[u8]) -> Result<(), PublishError> {
        let timeout = self.timeout;
        let client = self.client().await?;
        match tokio::time::timeout(timeout, client.produce(topic, key, value)).await {
            Err(_) => {
                self.client = None;
                Err(PublishError::Unavailable(format!(
                    "produce to {topic} timed out"
                )))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.classify(&format!("produce to {topic}"), e)),
        }
    }

    /// One BATCH_PRODUCE per partition the records map to, each to its explicit partition:
    /// such a request is all or nothing, so on a failure exactly the shares of the partitions
    /// already answered are stored, and the pump resends only the rest. (A `PARTITION_ANY`
    /// batch is not atomic across partitions and its error does not say what was stored.)
    async fn produce_batch(&mut self, topic: &str, records: &[Record]) -> Result<(), BatchError> {
        if !self.batch_supported || records.len() == 1 {
            return self.produce_each(topic, records).await;
        }
        let none_stored = |error| BatchError {
            stored: Vec::new(),
            error,
        };
        let partitions = self.partition_count(topic).await.map_err(none_stored)?;
        let shares = split_by_partition(records, partitions);
        let mut stored = Vec::with_capacity(records.len());
        for (partition, share) in shares {
            let batch: Vec<ProduceRecord> = share
                .iter()
                .map(|&i| ProduceRecord {
                    key: Bytes::copy_from_slice(records[i].key.as_bytes()),
                    value: Bytes::copy_from_slice(records[i].value.as_bytes()),
                    priority: Priority::Normal as u8,
                })
                .collect();
            let timeout = self.timeout;
            let failed = |error, mut stored: Vec<usize>| {
                stored.sort_unstable();
                BatchError { stored, error }
            };
            let client = match self.client().await {
                Ok(c) => c,
                Err(e) => return Err(failed(e, stored)),
            };
            let what = format!("batch produce to {topic} partition {partition}");
            match tokio::time::timeout(timeout, client.produce_batch(topic, Some(partition), batch))
                .await
            {
                Err(_) => {
                    self.client = None;
                    let e = PublishError::Unavailable(format!("{what} timed out"));
                    return Err(failed(e, stored));
                }
                Ok(Ok(_)) => stored.extend_from_slice(&share),
                Ok(Err(e)) if e.code() == Some(ErrorCode::InvalidRequest) && stored.is_empty() => {
                    tracing::warn!(
                        "stream server refused BATCH_PRODUCE ({e}); producing one record at a time"
                    );
                    self.batch_supported = false;
                    return self.produce_each(topic, records).await;
                }
                Ok(Err(e)) => {
                    if matches!(
                        e.code(),
                        Some(ErrorCode::TopicNotFound | ErrorCode::PartitionNotFound)
                    ) {
                        // Recreated with another partition count: ask again next time.
                        self.partitions.remove(topic);
                    }
                    let e = self.classify(&what, e);
                    return Err(failed(e, stored));
                }
            }
        }
        Ok(())
    }
}
