//! Bad Kafka input against the real binary: each gets a proper error or a closed connection
//! with a log line, nothing is stored, and a client connected before it is still served.

mod common;

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use common::kafka::{batch, frame, name, produce, KafkaClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use stream_server::kafka::records::at;
use test_support::ServerProcess;

struct Fixture {
    server: ServerProcess,
    addr: SocketAddr,
    /// Connected before any abuse; must be served after each.
    bystander: KafkaClient,
    _dir: tempfile::TempDir,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = common::start(dir.path(), &[]);
    let mut bystander = KafkaClient::connect(addr);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("t"))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = bystander.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(r.topics[0].error_code, 0);
    Fixture {
        server,
        addr,
        bystander,
        _dir: dir,
    }
}

impl Fixture {
    /// Sends `bytes` on a new connection and expects the server to close it, saying `why`.
    fn expect_closed(&mut self, bytes: &[u8], why: &str) {
        let mut c = KafkaClient::connect(self.addr);
        c.send_raw(bytes);
        assert!(
            c.closed(),
            "the server keeps a connection that sent {why:?}"
        );
        self.server
            .wait_for_line(why, std::time::Duration::from_secs(30));
        self.assert_served();
    }

    fn assert_served(&mut self) {
        let r: ApiVersionsResponse =
            self.bystander
                .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert_eq!(r.error_code, 0);
    }

    fn high_watermark(&mut self) -> i64 {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]);
        let r: ListOffsetsResponse = self.bystander.call(ApiKey::ListOffsets, 7, &req);
        r.topics[0].partitions[0].offset
    }

    /// Produces `records` (raw batch bytes) and returns the partition's error code.
    fn produce_raw(&mut self, records: Bytes) -> i16 {
        let r: ProduceResponse =
            self.bystander
                .call(ApiKey::Produce, 9, &produce("t", 0, records, -1));
        r.responses[0].partition_responses[0].error_code
    }
}

fn header(api_key: i16, version: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&1i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    h
}

/// Fixes a batch's CRC-32C after an edit.
fn reseal(b: &mut BytesMut) {
    let crc = crc32c::crc32c(&b[at::ATTRIBUTES.start..]);
    b[at::CRC].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn oversized_negative_and_garbage_frames_close_only_their_connection() {
    let mut f = start();
    // Only a connection's first four bytes choose its protocol; later sizes are Kafka's to check.
    let first = frame(&header(18, 0));
    f.expect_closed(
        &[&first[..], &i32::MAX.to_be_bytes()].concat(),
        "larger than the",
    );
    f.expect_closed(
        &[&first[..], &(-5i32).to_be_bytes()].concat(),
        "is negative",
    );
    // A first size past the limit is no Kafka request: it is read as an STRP header and gets
    // STRP's PROTOCOL_ERROR for a wrong magic.
    f.expect_closed(
        &[&i32::MAX.to_be_bytes()[..], &[0; 12]].concat(),
        "bad magic",
    );
    let mut garbage = frame(&[0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0, 0, 1, 2, 3]);
    f.expect_closed(&garbage, "unknown API key");
    // A known API with a body that is not one.
    garbage = frame(&[&header(3, 12)[..], &[0xff; 40]].concat());
    f.expect_closed(&garbage, "malformed Metadata v12 request");
    f.expect_closed(&frame(&[0, 3]), "shorter than a request header");
}

#[test]
fn an_unsupported_version_closes_the_connection_with_a_reason() {
    let mut f = start();
    f.expect_closed(&frame(&header(0, 2)), "Produce v2 is not supported");
    // Known to Kafka, not served here.
    let mut flexible = header(57, 0);
    flexible.push(0); // header tagged fields
    f.expect_closed(&frame(&flexible), "UpdateFeatures v0 is not supported");
}

#[test]
fn an_array_claiming_billions_of_entries_does_not_take_the_server_down() {
    let mut f = start();
    // Metadata v0 whose topic array claims i32::MAX entries and carries none: the crate's
    // decoder reserves the claim before reading (docs/kafka.md, "Bad input").
    let mut req = header(3, 0);
    req.extend_from_slice(&i32::MAX.to_be_bytes());
    f.expect_closed(&frame(&req), "malformed Metadata v0 request");
    // And a compact array (Metadata v12) claiming u32::MAX - 1.
    let mut req = header(3, 12);
    req.push(0); // header tagged fields
    req.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    f.expect_closed(&frame(&req), "malformed Metadata v12 request");
}

#[test]
fn corrupt_batches_are_refused_and_nothing_is_stored() {
    let mut f = start();
    let good = batch(&[(Some(b"k"), b"value one"), (None, b"value two")], 7);
    // Truncated in the middle of its records.
    let cut = good.slice(..good.len() - 5);
    assert_eq!(f.produce_raw(cut), 2, "CORRUPT_MESSAGE");
    // One flipped bit: the CRC-32C no longer matches.
    let mut flipped = BytesMut::from(&good[..]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert_eq!(f.produce_raw(flipped.freeze()), 2, "CORRUPT_MESSAGE");
    // A record count the batch cannot hold, sealed with a valid CRC.
    let mut count = BytesMut::from(&good[..]);
    count[at::RECORD_COUNT].copy_from_slice(&i32::MAX.to_be_bytes());
    reseal(&mut count);
    assert_eq!(f.produce_raw(count.freeze()), 87, "INVALID_RECORD");
    // The old message format.
    let mut magic = BytesMut::from(&good[..]);
    magic[at::MAGIC] = 1;
    assert_eq!(
        f.produce_raw(magic.freeze()),
        43,
        "UNSUPPORTED_FOR_MESSAGE_FORMAT"
    );
    // A valid batch followed by garbage: nothing of the request is stored.
    let both = [&good[..], &[1, 2, 3]].concat();
    assert_eq!(f.produce_raw(Bytes::from(both)), 2, "CORRUPT_MESSAGE");
    assert_eq!(f.high_watermark(), 0, "nothing was stored");
    assert_eq!(f.produce_raw(good), 0);
    assert_eq!(f.high_watermark(), 2);
}

#[test]
fn transactional_batches_and_record_headers_are_refused() {
    let mut f = start();
    let good = batch(&[(None, b"v")], 7);
    let mut txn = BytesMut::from(&good[..]);
    txn[at::ATTRIBUTES.end - 1] |= 0x10;
    reseal(&mut txn);
    assert_eq!(
        f.produce_raw(txn.freeze()),
        53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
    // A record with one header: the record's last byte (header count 0) becomes 1, and a
    // header with an empty key and a null value follows; the record length grows by two.
    let mut hdr = BytesMut::from(&good[..]);
    hdr[at::RECORDS] += 4; // zig-zag: the record length grows by 2
    let last = hdr.len() - 1;
    hdr[last] = 2; // zig-zag 1: one header
    hdr.extend_from_slice(&[0, 1]); // key length 0, value length -1
    let length = (hdr.len() - at::LEADER_EPOCH.start) as u32;
    hdr[at::BATCH_LENGTH].copy_from_slice(&length.to_be_bytes());
    reseal(&mut hdr);
    assert_eq!(f.produce_raw(hdr.freeze()), 87, "INVALID_RECORD");
    // Attributes that say gzip over bytes that are not: the payload does not decompress.
    let mut compressed = BytesMut::from(&good[..]);
    compressed[at::ATTRIBUTES.end - 1] |= 0x01;
    reseal(&mut compressed);
    assert_eq!(f.produce_raw(compressed.freeze()), 2, "CORRUPT_MESSAGE");
    // Compression bits that name no codec.
    let mut unknown = BytesMut::from(&good[..]);
    unknown[at::ATTRIBUTES.end - 1] |= 0x05;
    reseal(&mut unknown);
    assert_eq!(
        f.produce_raw(unknown.freeze()),
        76,
        "UNSUPPORTED_COMPRESSION_TYPE"
    );
    assert_eq!(f.high_watermark(), 0, "nothing was stored");
}

#[test]
fn a_slow_kafka_request_is_cut_off_at_the_request_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = common::start(dir.path(), &["--request-timeout-ms=300"]);
    let mut c = KafkaClient::connect(addr);
    // A size prefix and then nothing more.
    c.send_raw(&100i32.to_be_bytes());
    assert!(c.closed());
    server.wait_for_line(
        "did not arrive whole in time",
        std::time::Duration::from_secs(30),
    );
}
