//! Kafka ListOffsets by timestamp against the real binary: the earliest offset whose record's
//! timestamp reaches the target (timestamps need not grow with offsets), offset -1 and
//! timestamp -1 when none does, MAX_TIMESTAMP (-3) from v7, across rolled segments and a
//! restart after kill -9.

mod common;

use common::kafka::{batch, name, produce, KafkaClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;

/// Kafka's INVALID_REQUEST.
const INVALID_REQUEST: i16 = 42;

fn create(c: &mut KafkaClient, topic: &str) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

/// Produces one batch of `n` records stamped `timestamp`; returns its base offset.
fn produce_at(c: &mut KafkaClient, topic: &str, n: usize, timestamp: i64) -> i64 {
    let values: Vec<String> = (0..n).map(|i| format!("{timestamp}-{i}")).collect();
    let recs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, v.as_bytes())).collect();
    let req = produce(topic, 0, batch(&recs, timestamp), -1);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce at {timestamp}");
    p.base_offset
}

/// ListOffsets of partition 0 for `timestamp`: `(error code, offset, timestamp)`.
fn list(c: &mut KafkaClient, v: i16, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, v, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[test]
fn offsets_by_timestamp_at_v1_and_v7() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, addr) = common::start(dir.path(), &[]);
    let mut c = KafkaClient::connect(addr);
    create(&mut c, "times");
    // Offsets 0-2 at 1000, 3-4 at 5000 (a producer clock ahead), 5-6 at 2000, 7-10 at 3000,
    // 11 at 6000.
    for (n, ts, base) in [
        (3, 1_000, 0),
        (2, 5_000, 3),
        (2, 2_000, 5),
        (4, 3_000, 7),
        (1, 6_000, 11),
    ] {
        assert_eq!(produce_at(&mut c, "times", n, ts), base);
    }
    for v in [1, 7] {
        let at = |c: &mut KafkaClient, t| list(c, v, "times", t);
        assert_eq!(at(&mut c, 0), (0, 0, 1_000), "v{v}: before every record");
        assert_eq!(at(&mut c, 1_000), (0, 0, 1_000), "v{v}");
        // The earliest offset reaching the target, not the first one after it in time:
        // offset 3 (5000) comes before the records at 2000 and 3000.
        assert_eq!(at(&mut c, 1_001), (0, 3, 5_000), "v{v}");
        assert_eq!(at(&mut c, 2_500), (0, 3, 5_000), "v{v}");
        assert_eq!(at(&mut c, 5_000), (0, 3, 5_000), "v{v}");
        assert_eq!(at(&mut c, 5_001), (0, 11, 6_000), "v{v}");
        assert_eq!(at(&mut c, 6_000), (0, 11, 6_000), "v{v}");
        // After the last record: no offset and no timestamp, as Kafka answers.
        assert_eq!(at(&mut c, 6_001), (0, -1, -1), "v{v}: after every record");
        assert_eq!(at(&mut c, i64::MAX), (0, -1, -1), "v{v}");
        assert_eq!(at(&mut c, -1), (0, 12, -1), "v{v}: latest");
        assert_eq!(at(&mut c, -2), (0, 0, -1), "v{v}: earliest");
    }
    // MAX_TIMESTAMP from v7 on; before, an invalid timestamp like any other negative one.
    assert_eq!(list(&mut c, 7, "times", -3), (0, 11, 6_000));
    assert_eq!(list(&mut c, 6, "times", -3).0, INVALID_REQUEST);
    assert_eq!(list(&mut c, 7, "times", -4).0, INVALID_REQUEST);
    // A later record with the same largest timestamp: the first one is the answer.
    assert_eq!(produce_at(&mut c, "times", 2, 6_000), 12);
    assert_eq!(list(&mut c, 7, "times", -3), (0, 11, 6_000));
}

#[test]
fn an_empty_partition_has_no_offset_for_any_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, addr) = common::start(dir.path(), &[]);
    let mut c = KafkaClient::connect(addr);
    create(&mut c, "empty");
    for v in [1, 7] {
        assert_eq!(list(&mut c, v, "empty", 0), (0, -1, -1), "v{v}");
        assert_eq!(list(&mut c, v, "empty", 1_000), (0, -1, -1), "v{v}");
    }
    assert_eq!(list(&mut c, 7, "empty", -3), (0, -1, -1));
    let (code, _, _) = list(&mut c, 7, "missing-topic", 0);
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[test]
fn offsets_by_timestamp_across_segments_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--segment-bytes=4096"];
    let (mut p, addr) = common::start(dir.path(), &flags);
    let mut c = KafkaClient::connect(addr);
    create(&mut c, "rolled");
    // 60 batches of 5, stamped 10_000, 10_010, ...; every seventh from a clock an hour ahead.
    let stamp = |i: i64| {
        if i % 7 == 3 {
            20_000_000 + i
        } else {
            10_000 + 10 * i
        }
    };
    for i in 0..60 {
        assert_eq!(produce_at(&mut c, "rolled", 5, stamp(i)), 5 * i);
    }
    let segments = std::fs::read_dir(dir.path().join("topics").join("rolled").join("0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert!(segments > 3, "{segments} segments");
    // The model: the first batch whose stamp reaches the target.
    let want = |t: i64| {
        (0..60)
            .find(|&i| stamp(i) >= t)
            .map_or((0, -1, -1), |i| (0, 5 * i, stamp(i)))
    };
    let targets: Vec<i64> = (0..60)
        .flat_map(|i| [stamp(i) - 1, stamp(i), stamp(i) + 1])
        .chain([0, 20_000_060])
        .collect();
    let check = |c: &mut KafkaClient| {
        for &t in &targets {
            assert_eq!(list(c, 7, "rolled", t), want(t), "target {t}");
            assert_eq!(list(c, 1, "rolled", t), want(t), "v1 target {t}");
        }
        assert_eq!(list(c, 7, "rolled", -3), (0, 5 * 59, stamp(59)));
    };
    check(&mut c);
    // Recovered from the records after kill -9: the time index is rebuilt.
    p.kill9();
    let (_p2, addr2) = common::start(dir.path(), &flags);
    let mut c = KafkaClient::connect(addr2);
    check(&mut c);
}
