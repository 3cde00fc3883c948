//! [`Publisher`] over the Rust stream client: one connection, reopened after I/O errors.

use crate::publish::{BatchError, PublishError, Publisher, Record};
use bytes::Bytes;
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
}

impl StreamPublisher {
    /// A publisher for the server at `addr` (`host:port`); connects lazily.
    pub fn new(addr: &str) -> Self {
        StreamPublisher {
            addr: addr.to_owned(),
            client: None,
            timeout: Duration::from_secs(10),
            batch_supported: true,
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
                    published: i,
                    error,
                })?;
        }
        Ok(())
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

    async fn produce_batch(&mut self, topic: &str, records: &[Record]) -> Result<(), BatchError> {
        if !self.batch_supported || records.len() == 1 {
            return self.produce_each(topic, records).await;
        }
        let batch: Vec<ProduceRecord> = records
            .iter()
            .map(|r| ProduceRecord {
                key: Bytes::copy_from_slice(r.key.as_bytes()),
                value: Bytes::copy_from_slice(r.value.as_bytes()),
                priority: Priority::Normal as u8,
            })
            .collect();
        let timeout = self.timeout;
        let fail = |error| BatchError {
            published: 0,
            error,
        };
        let client = self.client().await.map_err(fail)?;
        // BATCH_PRODUCE is all or nothing, so a failure means none was stored.
        match tokio::time::timeout(timeout, client.produce_batch(topic, None, batch)).await {
            Err(_) => {
                self.client = None;
                Err(fail(PublishError::Unavailable(format!(
                    "batch produce to {topic} timed out"
                ))))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.code() == Some(ErrorCode::InvalidRequest) => {
                tracing::warn!(
                    "stream server refused BATCH_PRODUCE ({e}); producing one record at a time"
                );
                self.batch_supported = false;
                self.produce_each(topic, records).await
            }
            Ok(Err(e)) => Err(fail(self.classify(&format!("batch produce to {topic}"), e))),
        }
    }
}
