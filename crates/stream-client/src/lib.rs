//! Async client for the STRP stream server.
//!
//! The core API at a glance (`coinbase-bridge` publishes through it):
//!
//! ```text
//! pub struct StreamClient;                       // one TCP connection, pipelining-capable
//! impl StreamClient {
//!     pub async fn connect(addr: &str) -> Result<StreamClient, ClientError>;   // "host:port"
//!     pub async fn create_topic(&mut self, name: &str, partitions: u32) -> Result<(), ClientError>;
//!     pub async fn produce(&mut self, topic: &str, key: &[u8], value: &[u8]) -> Result<Produced, ClientError>;
//!     pub async fn fetch(&mut self, topic: &str, partition: u32, offset: u64, max_messages: u32)
//!         -> Result<Fetched, ClientError>;
//!     pub async fn list_topics(&mut self) -> Result<Vec<String>, ClientError>;
//!     pub async fn metadata(&mut self) -> Result<Vec<(String, u32)>, ClientError>;
//! }
//! pub struct Produced { pub partition: u32, pub offset: u64 }
//! pub struct Fetched { pub high_watermark: u64, pub messages: Vec<stream_proto::Message> }
//! #[derive(thiserror::Error)]
//! pub enum ClientError {
//!     Io(std::io::Error),                                   // connection problems: retry
//!     Server { code: stream_proto::ErrorCode, message: String }, // e.g. TopicAlreadyExists
//!     Protocol(String),                                     // malformed response
//! }
//! impl ClientError { pub fn code(&self) -> Option<stream_proto::ErrorCode>; }
//! ```
//!
//! Beyond the contract (see docs/clients.md):
//! - [`StreamClient`] has a method per request type (topics, produce, batch produce, fetch,
//!   long-poll fetch, groups, offsets, heartbeats) and pipelining ([`StreamClient::pipeline`],
//!   [`StreamClient::send`] / [`StreamClient::recv`]). `Fetched` also carries
//!   `log_start_offset` (from long-poll answers).
//! - [`BatchProducer`]: accumulates messages per partition up to a size or a linger time,
//!   sends them with BATCH_PRODUCE (several batches in flight), and acknowledges each
//!   message with its offset.
//! - [`GroupConsumer`]: a consumer-group member that heartbeats on a timer, learns of
//!   rebalances from the heartbeat answer, rejoins, fetches its partitions from the committed
//!   offsets and commits (at-least-once).

#![deny(missing_docs)]

mod client;
mod conn;
mod consumer;
mod error;
mod producer;

pub use client::{Assignment, Fetched, Produced, StreamClient, DEFAULT_TIMEOUT, PIPELINE_WINDOW};
pub use consumer::{ConsumerConfig, GroupConsumer, StartFrom};
pub use error::ClientError;
pub use producer::{BatchProducer, ProduceAck, ProducerConfig};
pub use stream_proto::{ErrorCode, Message, Priority, ProduceRecord};
