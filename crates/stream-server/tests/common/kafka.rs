//! A blocking Kafka client over std TcpStream for the Kafka tests, built on the
//! `kafka-protocol` crate's client side: its request encoders, response decoders and record
//! batch codec, an implementation independent of the server's own batch codec.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, FetchRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use stream_server::kafka::records::at;

/// One connection, one request at a time or pipelined with `send` / `recv`.
pub struct KafkaClient {
    pub stream: TcpStream,
    next_id: i32,
}

impl KafkaClient {
    pub fn connect(addr: SocketAddr) -> KafkaClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        KafkaClient { stream, next_id: 1 }
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, req: &R) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("kafka-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version)
            .unwrap_or_else(|e| panic!("encoding {key:?} v{version}: {e}"));
        self.send_raw(&frame(&body));
        id
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// The next answer's bytes (size prefix removed), or None when the server closed.
    pub fn recv_raw(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        read_exact_or_closed(&mut self.stream, &mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        read_exact_or_closed(&mut self.stream, &mut body)?;
        Some(Bytes::from(body))
    }

    /// The next answer, which must be to request `id` of `key` at `version`.
    pub fn recv<M: Decodable>(&mut self, key: ApiKey, version: i16, id: i32) -> M {
        let mut b = self.recv_raw().expect("an answer before close");
        let header = ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, id, "answers come in request order");
        let m = M::decode(&mut b, version)
            .unwrap_or_else(|e| panic!("decoding the {key:?} v{version} answer: {e}"));
        assert!(
            !b.has_remaining(),
            "{key:?} v{version}: {} bytes after the answer",
            b.len()
        );
        m
    }

    pub fn call<R: Encodable, M: Decodable>(&mut self, key: ApiKey, version: i16, req: &R) -> M {
        let id = self.send(key, version, req);
        self.recv(key, version, id)
    }

    /// True when the server closed the connection (EOF or reset) within the read timeout.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

fn read_exact_or_closed(s: &mut TcpStream, buf: &mut [u8]) -> Option<()> {
    match s.read_exact(buf) {
        Ok(()) => Some(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            None
        }
        Err(e) => panic!("read: {e}"),
    }
}

/// `bytes` with their Kafka size prefix.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(bytes.len() + 4);
    f.put_i32(bytes.len() as i32);
    f.extend_from_slice(bytes);
    f
}

/// A topic name field.
pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// One uncompressed batch of `(key, value)` records, stamped `timestamp`, from a producer
/// without idempotence.
pub fn batch(records: &[(Option<&[u8]>, &[u8])], timestamp: i64) -> Bytes {
    idempotent_batch(-1, -1, -1, records, timestamp)
}

/// One uncompressed batch of an idempotent producer.
pub fn idempotent_batch(
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    records: &[(Option<&[u8]>, &[u8])],
    timestamp: i64,
) -> Bytes {
    let records: Vec<_> = records.iter().map(|&(k, v)| (k, v, timestamp)).collect();
    encode(
        producer_id,
        epoch,
        base_sequence,
        &records,
        Compression::None,
    )
}

/// A record as `(key, value, timestamp)`.
pub type Timed<'a> = (Option<&'a [u8]>, &'a [u8], i64);

/// One batch of `(key, value, timestamp)` records in `compression`, from a producer without
/// idempotence.
pub fn compressed_batch(records: &[Timed<'_>], compression: Compression) -> Bytes {
    encode(-1, -1, -1, records, compression)
}

fn encode(
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    records: &[Timed<'_>],
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, &(k, v, timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays the same,
            // and writes the first record's as the batch's base sequence (-1 without
            // idempotence).
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp,
            key: k.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(v)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    out.freeze()
}

/// `batch` with `payload` in place of its records, under compression attribute `codec`
/// (1 gzip, 2 snappy, 3 lz4, 4 zstd), its length and CRC-32C made right: a compressed batch
/// built by hand.
pub fn with_payload(batch: &[u8], codec: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::from(&batch[..at::RECORDS]);
    b.extend_from_slice(payload);
    b[at::ATTRIBUTES.end - 1] = (b[at::ATTRIBUTES.end - 1] & !0x07) | codec;
    let length = (b.len() - at::LEADER_EPOCH.start) as u32;
    b[at::BATCH_LENGTH].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&b[at::ATTRIBUTES.start..]);
    b[at::CRC].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// The records of a Fetch answer's `records` field.
pub fn records(bytes: &Option<Bytes>) -> Vec<Record> {
    let Some(b) = bytes else { return Vec::new() };
    let mut b = b.clone();
    RecordBatchDecoder::decode_all(&mut b)
        .expect("valid record batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// A Produce of `records` to one partition.
pub fn produce(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// A CreatePartitions growing each `(topic, new total)`, without replica assignments (null,
/// as clients send them).
pub fn create_partitions(topics: &[(&str, i32)], validate_only: bool) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|&(topic, count)| {
                    CreatePartitionsTopic::default()
                        .with_name(name(topic))
                        .with_count(count)
                        .with_assignments(None)
                })
                .collect(),
        )
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
}

/// A CreateTopics of one topic with `partitions` partitions and replication factor 1.
pub fn create_topic(topic: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000)
}

/// A Fetch of one partition from `offset` (up to 1 MiB), waiting up to `wait` ms for `min`
/// bytes.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    wait: i32,
    min: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(wait)
        .with_min_bytes(min)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}
