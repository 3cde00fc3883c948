//! Command-line flags and environment variables (flags win over the environment).
//!
//! The first group is exactly the deployment guide's; the rest are ours.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use stream_log::{Durability, LogConfig, StoreLimits, StoreOptions};

/// `stream-server` configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "stream-server",
    version,
    about = "STRP stream server (Kafka-like broker)"
)]
pub struct Config {
    /// Data persistence directory (topics, segments, committed offsets).
    #[arg(long, env = "STREAM_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,
    /// Listen port (0 picks a free port; the startup log says which).
    #[arg(long, env = "STREAM_PORT", default_value_t = 9092)]
    pub port: u16,
    /// Bind address.
    #[arg(long, env = "STREAM_BIND", default_value = "0.0.0.0")]
    pub bind: String,
    /// Threads running the network and request handling (tokio worker threads).
    #[arg(long, env = "STREAM_IO_THREADS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub io_threads: u16,
    /// Threads for blocking work: topic creation/deletion, offset commits, flushes (tokio's
    /// blocking pool size).
    #[arg(long, env = "STREAM_WORKER_THREADS", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: u16,
    /// Maximum concurrent client connections; further connections are refused (and logged).
    #[arg(long, env = "STREAM_MAX_CONNECTIONS", default_value_t = 10000)]
    pub max_connections: usize,

    /// Durability policy: group-commit (default: a produce is answered after an fsync shared
    /// with concurrent produces), every-write, interval:<n>ms, never (page cache only).
    #[arg(long, env = "STREAM_DURABILITY", default_value = "group-commit")]
    pub durability: Durability,
    /// Segment size in bytes before rolling to a new segment file.
    #[arg(long, env = "STREAM_SEGMENT_BYTES", default_value_t = 256 << 20)]
    pub segment_bytes: u64,
    /// Delete the oldest segments of a partition while it is larger than this (bytes).
    #[arg(long, env = "STREAM_RETENTION_BYTES")]
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest message is older than this (milliseconds).
    #[arg(long, env = "STREAM_RETENTION_MS")]
    pub retention_ms: Option<u64>,
    /// Close connections that send nothing for this long (milliseconds; 0 = never).
    #[arg(long, env = "STREAM_IDLE_TIMEOUT_MS", default_value_t = 600_000)]
    pub idle_timeout_ms: u64,
    /// A request must arrive whole within this long of its first byte (milliseconds): a
    /// client that trickles bytes (slowloris) is closed instead of holding a connection slot,
    /// which every byte would otherwise keep from idling out.
    #[arg(long, env = "STREAM_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
    /// Default consumer-group session timeout (milliseconds): a member that sends no
    /// heartbeat for this long is evicted and its partitions reassigned.
    #[arg(long, env = "STREAM_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// Prometheus `/metrics` HTTP port: a number (0 picks a free port, logged) or `off`.
    #[arg(long, env = "STREAM_METRICS_PORT", default_value = "9100", value_parser = parse_metrics_port)]
    pub metrics_port: MetricsPort,
    /// Pipelined requests one connection may have in flight before the server stops reading
    /// from it (back-pressure).
    #[arg(long, env = "STREAM_MAX_IN_FLIGHT", default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Close a connection whose client has not taken a write of its answers (everything
    /// coalesced, or one large answer) within this long (milliseconds): a stuck or too slow
    /// reader must not pin server memory or delay shutdown.
    #[arg(long, env = "STREAM_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// How long SIGTERM waits for in-flight requests before giving up on them (milliseconds).
    #[arg(long, env = "STREAM_SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,
    /// Threads running the fsyncs of every partition (shared by all of them; one more drives
    /// the interval policy).
    #[arg(long, env = "STREAM_SYNC_THREADS", default_value_t = stream_log::DEFAULT_SYNC_THREADS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub sync_threads: usize,
    /// Segment files kept open at once (least recently used ones are closed and reopened on
    /// demand). Default: a quarter of the open-files soft limit, between 64 and 4096.
    #[arg(long, env = "STREAM_MAX_OPEN_FILES",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_open_files: Option<usize>,
    /// Most topics the broker holds; CREATE_TOPIC beyond it is refused.
    #[arg(long, env = "STREAM_MAX_TOPICS", default_value_t = stream_log::DEFAULT_MAX_TOPICS)]
    pub max_topics: u64,
    /// Most partitions over all topics; CREATE_TOPIC (or a CreatePartitions) beyond it is
    /// refused.
    #[arg(long, env = "STREAM_MAX_PARTITIONS",
          default_value_t = stream_log::DEFAULT_MAX_TOTAL_PARTITIONS)]
    pub max_partitions: u64,
    /// Memory (bytes) that requests in flight and unsent answers may take together, over all
    /// connections: new requests wait (their connections are not read) while it is spent, and
    /// a request that needs more than all of it is refused. See docs/operations.md for the
    /// resulting bound on the server's memory.
    #[arg(long, env = "STREAM_MEMORY_BUDGET_BYTES",
          default_value_t = crate::budget::DEFAULT_MEMORY_BUDGET,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1 << 20..))]
    pub memory_budget_bytes: usize,
    /// A port of its own for the Kafka protocol, besides --port (which serves both STRP and
    /// Kafka, told apart by a connection's first bytes). Unset: no second listener.
    #[arg(long, env = "STREAM_KAFKA_PORT")]
    pub kafka_port: Option<u16>,
    /// Host name Kafka clients are told to connect to (Metadata): what clients outside a
    /// container or another machine can reach. Default: --bind, or this machine's host name
    /// when --bind is a wildcard address.
    #[arg(long, env = "STREAM_ADVERTISED_HOST")]
    pub advertised_host: Option<String>,
    /// Port Kafka clients are told to connect to (Metadata, FindCoordinator): the one they
    /// reach this server on, when a port mapping (`docker run -p 19092:9092`) changes it.
    /// Default: the port each client connected to.
    #[arg(long, env = "STREAM_ADVERTISED_PORT")]
    pub advertised_port: Option<u16>,
    /// Whether a Kafka Metadata or Produce naming a topic that does not exist creates it
    /// (with --kafka-auto-create-partitions partitions), as Kafka's
    /// `auto.create.topics.enable` does.
    #[arg(long, env = "STREAM_KAFKA_AUTO_CREATE_TOPICS", value_parser = cli_support::bool_value(),
          action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "true")]
    pub kafka_auto_create_topics: bool,
    /// Partitions of a topic created by Kafka auto-creation, or by CreateTopics without a
    /// partition count.
    #[arg(long, env = "STREAM_KAFKA_AUTO_CREATE_PARTITIONS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(stream_log::MAX_PARTITIONS)))]
    pub kafka_auto_create_partitions: u32,
}

/// The bind address, or this machine's host name for a wildcard one (what Kafka's own broker
/// advertises by default).
fn default_advertised_host(bind: &str) -> String {
    let wildcard = bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if !wildcard {
        return bind.to_string();
    }
    let mut name = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let r = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    let len = name.iter().position(|&b| b == 0).unwrap_or(0);
    match std::str::from_utf8(&name[..len]) {
        Ok(host) if r == 0 && !host.is_empty() => host.to_string(),
        _ => "localhost".to_string(),
    }
}

/// Where (whether) to serve `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsPort {
    /// No metrics endpoint.
    Off,
    /// Serve on this port (0 = any free port).
    Port(u16),
}

fn parse_metrics_port(s: &str) -> Result<MetricsPort, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "disabled" | "false" => Ok(MetricsPort::Off),
        t => t
            .parse::<u16>()
            .map(MetricsPort::Port)
            .map_err(|e| format!("metrics port {s:?}: expected a port number or `off` ({e})")),
    }
}

impl Config {
    /// The Kafka listener's settings.
    pub fn kafka_config(&self) -> crate::kafka::KafkaConfig {
        crate::kafka::KafkaConfig {
            advertised_host: self
                .advertised_host
                .clone()
                .unwrap_or_else(|| default_advertised_host(&self.bind)),
            advertised_port: self.advertised_port,
            auto_create_topics: self.kafka_auto_create_topics,
            auto_create_partitions: self.kafka_auto_create_partitions,
            topic_configs: self.topic_configs(),
        }
    }

    /// The topic settings in Kafka's names (every topic has the server's).
    fn topic_configs(&self) -> Vec<(String, String)> {
        let or_unlimited = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        [
            ("cleanup.policy", "delete".to_string()),
            ("compression.type", "producer".to_string()),
            (
                "max.message.bytes",
                stream_proto::record::MAX_RECORD_LEN.to_string(),
            ),
            ("message.timestamp.type", "CreateTime".to_string()),
            ("retention.bytes", or_unlimited(self.retention_bytes)),
            ("retention.ms", or_unlimited(self.retention_ms)),
            ("segment.bytes", self.segment_bytes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The storage engine's configuration.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            retention_bytes: self.retention_bytes,
            retention_ms: self.retention_ms,
            durability: self.durability,
            ..LogConfig::default()
        }
    }

    /// The storage engine's store-wide limits and resources.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            limits: StoreLimits {
                max_topics: self.max_topics,
                max_total_partitions: self.max_partitions,
            },
            sync_threads: Some(self.sync_threads),
            max_open_files: self.max_open_files,
        }
    }

    /// Longest a request may take to arrive, from its first byte to its last.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Write timeout (at least 1 ms).
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }

    /// Idle timeout, `None` = never.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_flags_parse_in_equals_form() {
        let c = Config::try_parse_from([
            "stream-server",
            "--data-dir=/tmp/x",
            "--port=9093",
            "--bind=127.0.0.1",
            "--io-threads=2",
            "--max-connections=10",
            "--metrics-port=off",
            "--durability=never",
        ])
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.port, 9093);
        assert_eq!(c.bind, "127.0.0.1");
        assert_eq!(c.io_threads, 2);
        assert_eq!(c.max_connections, 10);
        assert_eq!(c.metrics_port, MetricsPort::Off);
        assert_eq!(c.durability, Durability::Never);
    }

    #[test]
    fn defaults_match_the_guide() {
        let c = Config::try_parse_from(["stream-server"]).unwrap();
        // Environment may set these in CI only if a test set them; this test sets none.
        if std::env::var_os("STREAM_PORT").is_none() {
            assert_eq!(c.port, 9092);
        }
        if std::env::var_os("STREAM_DATA_DIR").is_none() {
            assert_eq!(c.data_dir, PathBuf::from("/data"));
        }
        assert!(parse_metrics_port("x").is_err());
        assert_eq!(parse_metrics_port("0").unwrap(), MetricsPort::Port(0));
    }
}
