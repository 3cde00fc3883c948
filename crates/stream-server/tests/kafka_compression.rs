//! Compressed Kafka batches against the real binary: a batch of each codec (gzip, snappy raw
//! and xerial-framed, lz4, zstd) is stored and fetched back, uncompressed, as the records it
//! carries; a decompression bomb is refused without the server ever holding it, nothing of
//! it is stored, and the connection goes on being served.

mod common;

use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use common::kafka::{compressed_batch, name, produce, records, with_payload, KafkaClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use stream_server::kafka::records::{at, MAX_INFLATED_BYTES};
use test_support::ServerProcess;

const MIB: usize = 1 << 20;

fn start() -> (ServerProcess, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (p, addr) = common::start(dir.path(), &[]);
    (p, addr, dir)
}

fn create(c: &mut KafkaClient, topic: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

/// The partition's answer to a Produce of `batch` with acks=all.
fn produce_batch(c: &mut KafkaClient, topic: &str, batch: Bytes) -> (i16, i64, String) {
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce(topic, 0, batch, -1));
    let p = &r.responses[0].partition_responses[0];
    let m = p.error_message.as_deref().unwrap_or_default().to_string();
    (p.error_code, p.base_offset, m)
}

/// The raw record bytes of a Fetch from `offset`.
fn fetch(c: &mut KafkaClient, topic: &str, offset: i64) -> Option<Bytes> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(16 * MIB as i32)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(16 * MIB as i32)])]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch {topic}");
    p.records.clone()
}

fn latest(c: &mut KafkaClient, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
    r.topics[0].partitions[0].offset
}

/// Records as (key, value, timestamp): about 60 KB, so that xerial snappy takes two chunks.
fn model() -> Vec<(Option<Vec<u8>>, Vec<u8>, i64)> {
    (0..300)
        .map(|i| {
            let key = (i % 4 != 0).then(|| format!("key-{i}").into_bytes());
            let value = format!("value {i}, ").repeat(i % 30 + 1).into_bytes();
            (key, value, 1_700_000_000_000 + 13 * i as i64)
        })
        .collect()
}

fn model_batch(compression: Compression) -> Bytes {
    let m = model();
    let records: Vec<_> = m
        .iter()
        .map(|(k, v, ts)| (k.as_deref(), &v[..], *ts))
        .collect();
    compressed_batch(&records, compression)
}

#[test]
fn a_batch_of_each_codec_is_stored_and_fetched_back_uncompressed() {
    let (_p, addr, _d) = start();
    let mut c = KafkaClient::connect(addr);
    let plain = model_batch(Compression::None);
    let raw_snappy = snap::raw::Encoder::new()
        .compress_vec(&plain[at::RECORDS..])
        .unwrap();
    let cases = [
        ("gzip", model_batch(Compression::Gzip)),
        // The crate's snappy is Java's xerial framing; librdkafka's is a raw block.
        ("snappy-xerial", model_batch(Compression::Snappy)),
        ("snappy-raw", with_payload(&plain, 2, &raw_snappy)),
        ("lz4", model_batch(Compression::Lz4)),
        ("zstd", model_batch(Compression::Zstd)),
    ];
    let m = model();
    for (codec, batch) in cases {
        assert!(batch.len() < plain.len() / 2, "{codec}: compressed");
        create(&mut c, codec);
        assert_eq!(produce_batch(&mut c, codec, batch).0, 0, "{codec}");
        assert_eq!(latest(&mut c, codec), m.len() as i64, "{codec}");
        let fetched = fetch(&mut c, codec, 0);
        let bytes = fetched.as_ref().expect("records");
        assert_eq!(
            bytes[at::ATTRIBUTES.end - 1] & 0x07,
            0,
            "{codec}: served uncompressed"
        );
        let got = records(&fetched);
        assert_eq!(got.len(), m.len(), "{codec}");
        for (i, (r, (k, v, ts))) in got.iter().zip(&m).enumerate() {
            assert_eq!(r.offset, i as i64, "{codec}");
            assert_eq!(r.key.as_deref(), k.as_deref(), "{codec} record {i}");
            assert_eq!(r.value.as_deref(), Some(&v[..]), "{codec} record {i}");
            assert_eq!(r.timestamp, *ts, "{codec} record {i}");
        }
    }
}

/// A compressed payload of one record whose value is `len` zeros, made by `w` as the bytes
/// are written (the record is never whole in this process either).
fn bomb<W: Write>(mut w: W, len: usize) -> W {
    fn varint(b: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            b.push((z as u8) | 0x80);
            z >>= 7;
        }
        b.push(z as u8);
    }
    let mut fields = vec![0, 0, 0]; // attributes, timestamp delta, offset delta
    varint(&mut fields, -1); // null key
    varint(&mut fields, len as i64);
    let mut head = Vec::new();
    varint(&mut head, (fields.len() + len + 1) as i64);
    head.extend_from_slice(&fields);
    w.write_all(&head).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..len / MIB {
        w.write_all(&zeros).unwrap();
    }
    w.write_all(&[0]).unwrap(); // no headers
    w
}

#[test]
fn a_decompression_bomb_is_refused_unheld_and_the_connection_still_works() {
    let (p, addr, _d) = start();
    let mut c = KafkaClient::connect(addr);
    create(&mut c, "bomb");
    let len = 200 * MIB;
    let gzip = bomb(
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
        len,
    )
    .finish()
    .unwrap();
    let zstd = bomb(
        zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap(),
        len,
    )
    .finish()
    .unwrap();
    let header = compressed_batch(&[(None, b"", 1)], Compression::None);
    for (codec, bits, payload) in [("gzip", 1, gzip), ("zstd", 4, zstd)] {
        assert!(payload.len() < MIB, "{codec}: {} bytes", payload.len());
        let base = common::reset_peak(p.pid());
        let (code, _, m) = produce_batch(&mut c, "bomb", with_payload(&header, bits, &payload));
        let (_, peak) = common::rss(p.pid());
        assert_eq!(code, 10, "{codec}: MESSAGE_TOO_LARGE ({m})");
        assert!(
            m.contains(codec) && m.contains(&MAX_INFLATED_BYTES.to_string()),
            "{codec}: {m}"
        );
        // Past the limit nothing was read: the buffer (16 MiB) and the codec's window, not
        // the 200 MiB.
        let grew = peak.saturating_sub(base);
        eprintln!("{codec} bomb: the server's peak grew by {} KiB", grew >> 10);
        assert!(
            grew < 64 * MIB as u64,
            "{codec}: the server grew by {grew} bytes"
        );
        assert_eq!(latest(&mut c, "bomb"), 0, "{codec}: nothing was stored");
    }
    // The same connection still produces, compressed.
    let (code, base, m) = produce_batch(&mut c, "bomb", model_batch(Compression::Zstd));
    assert_eq!((code, base), (0, 0), "{m}");
    assert_eq!(latest(&mut c, "bomb"), model().len() as i64);
}
