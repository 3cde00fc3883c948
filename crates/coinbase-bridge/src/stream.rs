//! [`Publisher`] over the Rust stream client: one connection, reopened after I/O errors.

use crate::publish::{PublishError, Publisher};
use std::time::Duration;
use stream_client::{ClientError, StreamClient};
use stream_proto::ErrorCode;

/// Publishes through `stream_client::StreamClient`.
pub struct StreamPublisher {
    addr: String,
    client: Option<StreamClient>,
    timeout: Duration,
}

impl StreamPublisher {
    /// A publisher for the server at `addr` (`host:port`); connects lazily.
    pub fn new(addr: &str) -> Self {
        StreamPublisher {
            addr: addr.to_owned(),
            client: None,
            timeout: Duration::from_secs(10),
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
}
