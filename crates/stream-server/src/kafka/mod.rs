//! The Kafka protocol over the same logs, offsets and topics as STRP (`docs/kafka.md`):
//! framing ([`frame`]), the versions served ([`versions`]), the record-batch codec
//! ([`records`]) and the decompression of compressed batches ([`compression`]), idempotent
//! producers' sequence checks ([`idempotence`]), one connection ([`conn`]) and one file per
//! API (`api/`).

mod api;
pub mod compression;
pub mod conn;
mod errors;
pub mod frame;
pub mod group;
pub mod idempotence;
pub mod records;
pub mod versions;

pub use api::NODE_ID;
pub use conn::serve;

use std::sync::atomic::{AtomicU64, Ordering};

use group::Groups;
use idempotence::ProducerRegistry;

/// What every Kafka connection shares: the settings, the idempotent producers' state and the
/// consumer groups.
#[derive(Default)]
pub struct Kafka {
    /// Settings.
    pub config: KafkaConfig,
    /// Producer ids and their sequence numbers.
    pub producers: ProducerRegistry,
    /// Consumer groups.
    pub groups: Groups,
    next_member: AtomicU64,
}

impl Kafka {
    /// The shared state of a listener with these settings.
    pub fn new(config: KafkaConfig) -> Kafka {
        Kafka {
            config,
            ..Kafka::default()
        }
    }

    /// A member id for a new group member: the client's id and a number unique to this run
    /// (as Kafka's `client.id-uuid`).
    pub fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let client: String = client_id.chars().take(64).collect();
        format!("{client}-{:016x}-{n}", self.producers.run_id())
    }
}

/// Locks `m`, also after a panic elsewhere while it was held (each critical section leaves
/// its state consistent).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Settings of the Kafka listener.
#[derive(Debug, Clone, Default)]
pub struct KafkaConfig {
    /// Host name Metadata gives clients to connect to.
    pub advertised_host: String,
    /// Port Metadata gives clients to connect to; `None`: the one each client connected to.
    pub advertised_port: Option<u16>,
    /// Whether Metadata and Produce create a topic they name that does not exist.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of CreateTopics with `num_partitions = -1`.
    pub auto_create_partitions: u32,
    /// What DescribeConfigs reports for every topic: `(Kafka config name, value)`.
    pub topic_configs: Vec<(String, String)>,
}
