//! [`Publisher`] over the Kafka protocol (`kafka://host:port`), for a Kafka or Redpanda
//! cluster or stream-server's own Kafka side: ApiVersions on every connection, Metadata for
//! partition counts and leaders, CreateTopics to the controller, Produce with `acks=-1` to each
//! partition's leader. Connections are opened lazily and dropped after an I/O error, a timeout
//! or an answer that does not decode; the next attempt reconnects.
//!
//! Partitions are chosen by [`split_by_partition`], the rule the STRP publisher uses, so a key
//! lands in the same partition whichever protocol carries it. Records are sent as one
//! uncompressed RecordBatch v2 per partition, which a broker stores or refuses as a whole, so
//! a failed batch says exactly which partitions' shares were stored.

use crate::publish::{split_by_partition, BatchError, PublishError, Publisher, Record};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stream_proto::partition_for_key;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted, by its size prefix. This publisher's answers are a few bytes per
/// partition; a larger prefix means a broken or hostile peer and is refused before anything
/// is allocated for it.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// `client.id` of every request, as brokers log it.
const CLIENT_ID: &str = "coinbase-bridge";

/// The APIs this client sends, with the versions it can speak: the broker's range decides
/// within these. Produce stops at 11 because v13 names topics by id only; Metadata at 12, the
/// last before its answer changed shape again.
const APIS: [(&str, i16, i16, i16); 3] = [
    ("Produce", ProduceRequest::KEY, 3, 11),
    ("Metadata", MetadataRequest::KEY, 1, 12),
    ("CreateTopics", CreateTopicsRequest::KEY, 2, 7),
];

/// ApiVersions is asked at v3 (KIP-511: it names the client); a broker without v3 answers at
/// v0 with this error and its list.
const API_VERSIONS_VERSION: i16 = 3;

/// One broker connection, with the API versions agreed on it.
struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
    /// API key to the version used with this broker.
    versions: HashMap<i16, i16>,
}

impl Connection {
    /// Connects and agrees on versions (ApiVersions); the caller bounds the time.
    async fn open(addr: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        // Requests are single small writes answered before the next: Nagle would only delay.
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = Connection {
            stream,
            next_correlation_id: 0,
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut body = conn.exchange(&request, API_VERSIONS_VERSION).await?;
        // Every ApiVersions answer starts with its error code; UNSUPPORTED_VERSION comes in
        // the v0 layout.
        let version = match body.get(..2) {
            Some(&[a, b])
                if i16::from_be_bytes([a, b]) == ResponseError::UnsupportedVersion.code() =>
            {
                0
            }
            _ => API_VERSIONS_VERSION,
        };
        let answer = ApiVersionsResponse::decode(&mut body, version)
            .map_err(|e| format!("undecodable ApiVersions answer: {e}"))?;
        if let Some(e) = ResponseError::try_from_code(answer.error_code) {
            return Err(format!("ApiVersions refused: {e}"));
        }
        for (name, key, ours_min, ours_max) in APIS {
            let theirs = answer
                .api_keys
                .iter()
                .find(|a| a.api_key == key)
                .ok_or_else(|| format!("the broker does not offer {name}"))?;
            let version = ours_max.min(theirs.max_version);
            if version < ours_min.max(theirs.min_version) {
                return Err(format!(
                    "the broker offers {name} v{}-{}, this client speaks v{ours_min}-{ours_max}",
                    theirs.min_version, theirs.max_version
                ));
            }
            conn.versions.insert(key, version);
        }
        Ok(conn)
    }

    /// The agreed version of `R`'s API.
    fn version<R: Request>(&self) -> i16 {
        // `open` agreed on every API of `APIS`, the only ones sent; ApiVersions is the rest.
        self.versions
            .get(&R::KEY)
            .copied()
            .unwrap_or(API_VERSIONS_VERSION)
    }

    /// Sends `request` at the agreed version and decodes its answer.
    async fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, String> {
        let version = self.version::<R>();
        let mut body = self.exchange(request, version).await?;
        R::Response::decode(&mut body, version)
            .map_err(|e| format!("undecodable answer (v{version}): {e}"))
    }

    /// Sends `request` at `version`; returns the answer's body after its header.
    async fn exchange<R: Request>(&mut self, request: &R, version: i16) -> Result<Bytes, String> {
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut frame = BytesMut::new();
        frame.put_i32(0); // the size, set below
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| format!("cannot encode the request (v{version}): {e}"))?;
        let size = i32::try_from(frame.len() - 4)
            .map_err(|_| format!("request of {} bytes is too large", frame.len()))?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut body = read_frame(&mut self.stream, MAX_RESPONSE_BYTES).await?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| format!("undecodable answer header: {e}"))?;
        if header.correlation_id != id {
            return Err(format!(
                "answer to request {} where {id} was expected",
                header.correlation_id
            ));
        }
        Ok(body)
    }
}

/// Reads one size-prefixed frame of at most `limit` bytes. The buffer grows as bytes arrive,
/// so a size prefix costs memory only once the peer has sent that much.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, limit: usize) -> Result<Bytes, String> {
    let mut prefix = [0u8; 4];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    let size = i32::from_be_bytes(prefix);
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= limit)
        .ok_or_else(|| format!("answer size {size} is outside 0-{limit} bytes"))?;
    let mut body = Vec::new();
    let read = stream
        .take(size as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    if read < size {
        return Err(format!(
            "connection closed {read} bytes into a {size}-byte answer"
        ));
    }
    Ok(Bytes::from(body))
}

/// One partition's share of a batch, encoded.
struct Part {
    partition: u32,
    /// Indices of the records in the caller's batch.
    indices: Vec<usize>,
    batch: Bytes,
}

/// What Metadata said of a topic.
enum TopicState {
    /// The topic does not exist.
    Missing,
    /// Each partition's leader address (`host:port`), `None` while it has no leader.
    Present(Vec<Option<String>>),
}

/// Publishes through the Kafka protocol to the cluster behind one bootstrap address.
pub struct KafkaPublisher {
    bootstrap: String,
    timeout: Duration,
    /// Open connections by broker address; the bootstrap's under its own name.
    connections: HashMap<String, Connection>,
    /// Leaders of each topic published to, until an error suggests they moved.
    leaders: HashMap<String, Vec<Option<String>>>,
}

impl KafkaPublisher {
    /// A publisher for the cluster at `bootstrap` (`host:port`, without `kafka://`); connects
    /// lazily.
    pub fn new(bootstrap: &str) -> Self {
        KafkaPublisher {
            bootstrap: bootstrap.to_owned(),
            timeout: Duration::from_secs(10),
            connections: HashMap::new(),
            leaders: HashMap::new(),
        }
    }

    /// The connection to the broker at `addr`, opened (and versions agreed) if needed.
    async fn connection(&mut self, addr: &str) -> Result<&mut Connection, PublishError> {
        if !self.connections.contains_key(addr) {
            let timeout = self.timeout;
            let conn = tokio::time::timeout(timeout, Connection::open(addr))
                .await
                .map_err(|_| {
                    PublishError::Unavailable(format!(
                        "connect to {addr} timed out after {timeout:?}"
                    ))
                })?
                .map_err(|e| PublishError::Unavailable(format!("connect to {addr}: {e}")))?;
            tracing::info!(addr, versions = ?conn.versions, "connected to the Kafka broker");
            self.connections.insert(addr.to_owned(), conn);
        }
        self.connections
            .get_mut(addr)
            .ok_or_else(|| PublishError::Unavailable(format!("no connection to {addr}")))
    }

    /// Sends `request` to the broker at `addr`, connecting first if needed; `what` names the
    /// operation in errors. Any failure but a Kafka error code in the answer drops the
    /// connection: after a timeout or a broken answer the stream is out of step.
    async fn call<R: Request>(
        &mut self,
        addr: &str,
        what: &str,
        request: &R,
    ) -> Result<R::Response, PublishError> {
        let timeout = self.timeout;
        let conn = self.connection(addr).await?;
        let e = match tokio::time::timeout(timeout, conn.call(request)).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {timeout:?}"),
        };
        self.connections.remove(addr);
        Err(PublishError::Unavailable(format!("{what} ({addr}): {e}")))
    }

    /// Metadata of `topic` from the bootstrap broker, and the controller's address.
    async fn metadata(
        &mut self,
        topic: &str,
    ) -> Result<(TopicState, Option<String>), PublishError> {
        let what = format!("metadata of {topic}");
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            // The pump creates topics with the configured partition count; an auto-created
            // one would get the broker's default.
            .with_allow_auto_topic_creation(false);
        let bootstrap = self.bootstrap.clone();
        let answer: MetadataResponse = self.call(&bootstrap, &what, &request).await?;
        let brokers: HashMap<i32, String> = answer
            .brokers
            .iter()
            .map(|b| (b.node_id.0, broker_addr(&b.host, b.port)))
            .collect();
        let controller = brokers.get(&answer.controller_id.0).cloned();
        let Some(t) = answer
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        else {
            return Err(PublishError::Unavailable(format!(
                "{what}: topic missing from the answer"
            )));
        };
        match ResponseError::try_from_code(t.error_code) {
            None => {}
            Some(ResponseError::UnknownTopicOrPartition) => {
                return Ok((TopicState::Missing, controller))
            }
            Some(e) => return Err(classify(&what, e, None)),
        }
        let count = t
            .partitions
            .iter()
            .map(|p| p.partition_index.saturating_add(1))
            .max()
            .unwrap_or(0);
        let mut leaders = vec![None; usize::try_from(count).unwrap_or(0)];
        for p in &t.partitions {
            if let Some(slot) = usize::try_from(p.partition_index)
                .ok()
                .and_then(|i| leaders.get_mut(i))
            {
                *slot = brokers.get(&p.leader_id.0).cloned();
            }
        }
        if leaders.is_empty() {
            return Err(PublishError::Unavailable(format!("{what}: no partitions")));
        }
        Ok((TopicState::Present(leaders), controller))
    }

    /// The leaders of `topic`'s partitions, asked once and kept until an error.
    async fn leaders(&mut self, topic: &str) -> Result<Vec<Option<String>>, PublishError> {
        if let Some(l) = self.leaders.get(topic) {
            return Ok(l.clone());
        }
        match self.metadata(topic).await?.0 {
            TopicState::Missing => Err(PublishError::Unavailable(format!(
                "topic {topic} does not exist (yet)"
            ))),
            TopicState::Present(leaders) => {
                self.leaders.insert(topic.to_owned(), leaders.clone());
                Ok(leaders)
            }
        }
    }

    /// One Produce to the broker at `addr` of each [`Part`]. Returns the
    /// indices stored and the worst partition error.
    async fn produce_to(
        &mut self,
        addr: &str,
        topic: &str,
        parts: Vec<Part>,
    ) -> (Vec<usize>, Option<PublishError>) {
        let mut shares = Vec::with_capacity(parts.len());
        let mut partition_data = Vec::with_capacity(parts.len());
        for part in parts {
            partition_data.push(
                PartitionProduceData::default()
                    .with_index(part.partition as i32)
                    .with_records(Some(part.batch)),
            );
            shares.push((part.partition, part.indices));
        }
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(partition_data)]);
        let what = format!("produce to {topic}");
        let answer: ProduceResponse = match self.call(addr, &what, &request).await {
            Ok(a) => a,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut stored = Vec::new();
        let mut error = None;
        for (partition, share) in &shares {
            let answered = answer
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| &t.partition_responses)
                .find(|p| p.index == *partition as i32);
            let what = format!("produce to {topic} partition {partition}");
            let failed = match answered {
                None => PublishError::Unavailable(format!("{what}: no answer for the partition")),
                Some(p) => match ResponseError::try_from_code(p.error_code) {
                    None => {
                        stored.extend_from_slice(share);
                        continue;
                    }
                    Some(e) => classify(&what, e, p.error_message.as_deref()),
                },
            };
            // The leader may have moved or the topic been recreated: ask again next time.
            self.leaders.remove(topic);
            error = worse(error, failed);
        }
        (stored, error)
    }

    /// Sends each [`Part`] to its partition's leader, one Produce per
    /// leader, and says which indices were stored when any failed.
    async fn send(
        &mut self,
        topic: &str,
        leaders: &[Option<String>],
        parts: Vec<Part>,
    ) -> Result<(), BatchError> {
        let mut by_leader: Vec<(String, Vec<Part>)> = Vec::new();
        let mut error = None;
        for part in parts {
            let partition = part.partition;
            let Some(Some(addr)) = leaders.get(partition as usize) else {
                self.leaders.remove(topic);
                let e = PublishError::Unavailable(format!(
                    "produce to {topic} partition {partition}: no leader"
                ));
                error = worse(error, e);
                continue;
            };
            match by_leader.iter_mut().find(|(a, _)| a == addr) {
                Some((_, mine)) => mine.push(part),
                None => by_leader.push((addr.clone(), vec![part])),
            }
        }
        let mut stored = Vec::new();
        for (addr, parts) in by_leader {
            let (done, failed) = self.produce_to(&addr, topic, parts).await;
            stored.extend(done);
            if let Some(e) = failed {
                error = worse(error, e);
            }
        }
        match error {
            None => Ok(()),
            Some(error) => {
                stored.sort_unstable();
                Err(BatchError { stored, error })
            }
        }
    }
}

impl Publisher for KafkaPublisher {
    /// Creates the topic unless Metadata knows it, at the controller Metadata names.
    async fn create_topic(&mut self, topic: &str, partitions: u32) -> Result<(), PublishError> {
        let (state, controller) = self.metadata(topic).await?;
        if let TopicState::Present(leaders) = state {
            self.leaders.insert(topic.to_owned(), leaders);
            return Ok(());
        }
        let addr = controller.unwrap_or_else(|| self.bootstrap.clone());
        let what = format!("create_topic {topic}");
        let num_partitions = i32::try_from(partitions).map_err(|_| {
            PublishError::Rejected(format!("{what}: {partitions} partitions is too many"))
        })?;
        let version = self
            .connection(&addr)
            .await?
            .version::<CreateTopicsRequest>();
        // -1 (the cluster's default replication) exists from v4 (KIP-464); before, ask for 1.
        let replication_factor = if version >= 4 { -1 } else { 1 };
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(num_partitions)
                .with_replication_factor(replication_factor)])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let answer = self.call(&addr, &what, &request).await?;
        let Some(t) = answer.topics.iter().find(|t| t.name.0.as_str() == topic) else {
            return Err(PublishError::Unavailable(format!(
                "{what}: topic missing from the answer"
            )));
        };
        match ResponseError::try_from_code(t.error_code) {
            None | Some(ResponseError::TopicAlreadyExists) => Ok(()),
            Some(e) => Err(classify(&what, e, t.error_message.as_deref())),
        }
    }

    async fn produce(&mut self, topic: &str, key: &[u8], value: &[u8]) -> Result<(), PublishError> {
        let leaders = self.leaders(topic).await?;
        let partition = partition_for_key(key, partition_count(&leaders));
        let batch = encode_batch([(key, value)], now_ms()).map_err(|e| {
            PublishError::Rejected(format!("cannot encode the record for {topic}: {e}"))
        })?;
        self.send(
            topic,
            &leaders,
            vec![Part {
                partition,
                indices: vec![0],
                batch,
            }],
        )
        .await
        .map_err(|e| e.error)
    }

    /// One Produce per leader, with one batch per partition: each partition's share is stored
    /// or refused as a whole, so on a failure exactly the shares of the partitions that
    /// succeeded are stored, and the pump resends only the rest.
    async fn produce_batch(&mut self, topic: &str, records: &[Record]) -> Result<(), BatchError> {
        let none_stored = |error| BatchError {
            stored: Vec::new(),
            error,
        };
        let leaders = self.leaders(topic).await.map_err(none_stored)?;
        let timestamp = now_ms();
        let mut parts = Vec::new();
        for (partition, share) in split_by_partition(records, partition_count(&leaders)) {
            let pairs = share
                .iter()
                .filter_map(|&i| records.get(i))
                .map(|r| (r.key.as_bytes(), r.value.as_bytes()));
            let batch = encode_batch(pairs, timestamp).map_err(|e| {
                none_stored(PublishError::Rejected(format!(
                    "cannot encode the records for {topic} partition {partition}: {e}"
                )))
            })?;
            parts.push(Part {
                partition,
                indices: share,
                batch,
            });
        }
        self.send(topic, &leaders, parts).await
    }
}

/// The error to report of two: Unavailable first, since retrying it resends the rest, and a
/// rejected record is then isolated on its own.
fn worse(current: Option<PublishError>, new: PublishError) -> Option<PublishError> {
    match current {
        Some(PublishError::Unavailable(r)) => Some(PublishError::Unavailable(r)),
        Some(PublishError::Rejected(_)) if matches!(new, PublishError::Unavailable(_)) => Some(new),
        Some(rejected) => Some(rejected),
        None => Some(new),
    }
}

/// Maps a Kafka error code as the STRP publisher maps STRP's: refused for good only when the
/// records themselves can never be stored (too large, invalid); anything else, leaders moving,
/// timeouts, authorization or a missing topic included, is retried while the buffer holds.
fn classify(what: &str, error: ResponseError, message: Option<&str>) -> PublishError {
    let detail = match message {
        Some(m) if !m.is_empty() => format!("{what}: {error:?} ({}): {m}", error.code()),
        _ => format!("{what}: {error:?} ({})", error.code()),
    };
    match error {
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidRecord
        | ResponseError::InvalidRequest => PublishError::Rejected(detail),
        _ => PublishError::Unavailable(detail),
    }
}

/// `(key, value)` pairs as one uncompressed RecordBatch v2, without idempotence.
fn encode_batch<'a>(
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    timestamp: i64,
) -> Result<Bytes, String> {
    let batch: Vec<KafkaRecord> = pairs
        .into_iter()
        .zip(0i64..)
        .map(|((key, value), offset)| KafkaRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder keeps records in one batch while offset - sequence is constant and
            // writes the first record's sequence as the batch's: -1, no idempotence.
            sequence: (offset as i32).wrapping_sub(1),
            timestamp,
            key: Some(Bytes::copy_from_slice(key)),
            value: Some(Bytes::copy_from_slice(value)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &batch,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

/// Partitions in a leader list, as the partition rule takes them.
fn partition_count(leaders: &[Option<String>]) -> u32 {
    u32::try_from(leaders.len()).unwrap_or(u32::MAX)
}

/// Now in milliseconds since the epoch, the records' CreateTime (-1, the broker's clock, if
/// the system clock is before 1970).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(-1)
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// `host:port` as a broker advertises it, IPv6 hosts in brackets.
fn broker_addr(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[tokio::test]
    async fn a_size_prefix_past_the_limit_is_refused_before_reading() {
        let mut input: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        let e = read_frame(&mut input, MAX_RESPONSE_BYTES)
            .await
            .unwrap_err();
        assert!(e.contains("outside 0-67108864"), "{e}");
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut input, 16).await.is_err(), "negative size");
        let mut input: &[u8] = &[0, 0, 0, 8, 1, 2, 3];
        let e = read_frame(&mut input, 16).await.unwrap_err();
        assert!(e.contains("3 bytes into a 8-byte answer"), "{e}");
        let mut input: &[u8] = &[0, 0, 0, 2, 1, 2, 3];
        assert_eq!(&read_frame(&mut input, 16).await.unwrap()[..], &[1, 2]);
    }

    #[test]
    fn a_share_is_one_batch_in_record_order() {
        let records: Vec<Record> = (0..5)
            .map(|i| Record {
                topic: "t".into(),
                key: format!("k{i}"),
                value: format!("v{i}"),
            })
            .collect();
        let pairs = [1, 3, 4].map(|i| (records[i].key.as_bytes(), records[i].value.as_bytes()));
        let mut bytes = encode_batch(pairs, 1_700_000_000_000).unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(sets.len(), 1, "one batch");
        let got: Vec<_> = sets[0]
            .records
            .iter()
            .map(|r| {
                (
                    r.key.clone().unwrap(),
                    r.value.clone().unwrap(),
                    r.offset,
                    r.sequence,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Bytes::from("k1"), Bytes::from("v1"), 0, -1),
                (Bytes::from("k3"), Bytes::from("v3"), 1, 0),
                (Bytes::from("k4"), Bytes::from("v4"), 2, 1),
            ]
        );
        assert_eq!(sets[0].records[0].producer_id, -1);
    }

    #[test]
    fn only_errors_of_the_records_themselves_reject() {
        for e in [
            ResponseError::MessageTooLarge,
            ResponseError::RecordListTooLarge,
            ResponseError::InvalidRecord,
        ] {
            assert!(
                matches!(classify("p", e, None), PublishError::Rejected(_)),
                "{e:?}"
            );
        }
        for e in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::RequestTimedOut,
            ResponseError::NetworkException,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::TopicAuthorizationFailed,
            ResponseError::NotController,
        ] {
            assert!(
                matches!(classify("p", e, None), PublishError::Unavailable(_)),
                "{e:?}"
            );
        }
        let e = classify(
            "produce to t",
            ResponseError::MessageTooLarge,
            Some("1 MiB max"),
        );
        assert_eq!(
            e.to_string(),
            "stream server rejected the record: produce to t: MessageTooLarge (10): 1 MiB max"
        );
    }

    #[test]
    fn unavailable_wins_over_rejected() {
        let r = || PublishError::Rejected("r".into());
        let u = || PublishError::Unavailable("u".into());
        assert!(matches!(
            worse(Some(r()), u()),
            Some(PublishError::Unavailable(_))
        ));
        assert!(matches!(
            worse(Some(u()), r()),
            Some(PublishError::Unavailable(_))
        ));
        assert!(matches!(worse(None, r()), Some(PublishError::Rejected(_))));
    }

    #[test]
    fn advertised_ipv6_hosts_get_brackets() {
        assert_eq!(broker_addr("::1", 9092), "[::1]:9092");
        assert_eq!(broker_addr("localhost", 9092), "localhost:9092");
    }
}
