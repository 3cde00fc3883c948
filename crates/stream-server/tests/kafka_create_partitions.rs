//! Kafka's CreatePartitions against the real binary: a grown topic serves its new partitions
//! to Kafka and STRP clients alike (including connections that used the topic before it
//! grew) and keeps them across a restart; refused requests (unknown topic, no growth, replica
//! assignments, a topic named twice, past a limit) change nothing, and `validate_only` only
//! checks.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::kafka::{
    batch, create_partitions, create_topic, fetch_request, name, produce, records, KafkaClient,
};
use common::Client;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use stream_proto::{ErrorCode, Request, Response};

fn create(c: &mut KafkaClient, topic: &str, partitions: i32) {
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create_topic(topic, partitions));
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn grow(c: &mut KafkaClient, req: &CreatePartitionsRequest) -> Vec<(String, i16, String)> {
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, req);
    r.results
        .into_iter()
        .map(|t| {
            let message = t.error_message.map(|m| m.to_string()).unwrap_or_default();
            (t.name.0.to_string(), t.error_code, message)
        })
        .collect()
}

/// The partition count Kafka's Metadata reports for `topic`.
fn partitions(c: &mut KafkaClient, topic: &str) -> usize {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 0);
    r.topics[0].partitions.len()
}

/// Produces one record to `partition`; its error code and base offset.
fn produce_to(c: &mut KafkaClient, topic: &str, partition: i32, value: &[u8]) -> (i16, i64) {
    let req = produce(topic, partition, batch(&[(None, value)], 1_000), -1);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The values stored in `partition` from offset 0.
fn fetch_values(c: &mut KafkaClient, topic: &str, partition: i32) -> (i16, Vec<Vec<u8>>) {
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request(topic, partition, 0, 0, 0));
    let p = &r.responses[0].partitions[0];
    let values = records(&p.records)
        .into_iter()
        .map(|r| r.value.map(|v| v.to_vec()).unwrap_or_default())
        .collect();
    (p.error_code, values)
}

fn strp_partitions(s: &mut Client, topic: &str) -> u32 {
    match s.call(&Request::Metadata) {
        Response::Metadata { topics, .. } => {
            topics
                .iter()
                .find(|t| t.name == topic)
                .expect("topic listed")
                .partitions
        }
        r => panic!("{r:?}"),
    }
}

fn start(dir: &std::path::Path, extra: &[&str]) -> (test_support::ServerProcess, SocketAddr) {
    let mut flags = vec!["--advertised-host=127.0.0.1"];
    flags.extend_from_slice(extra);
    common::start(dir, &flags)
}

#[test]
fn a_grown_topic_serves_its_new_partitions_everywhere_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    let mut k = KafkaClient::connect(addr);
    let mut s = Client::connect(addr);
    create(&mut k, "grow", 1);
    // Both connections use the topic before it grows: whatever they cached must not keep
    // them on one partition afterwards.
    assert_eq!(produce_to(&mut k, "grow", 0, b"before"), (0, 0));
    assert_eq!(s.produce("grow", b"", b"strp-before"), (0, 1));
    assert_eq!(partitions(&mut k, "grow"), 1);

    assert_eq!(
        grow(&mut k, &create_partitions(&[("grow", 3)], false)),
        vec![("grow".to_string(), 0, String::new())]
    );
    assert_eq!(partitions(&mut k, "grow"), 3);
    assert_eq!(strp_partitions(&mut s, "grow"), 3);

    // Kafka produce and fetch on a new partition.
    assert_eq!(produce_to(&mut k, "grow", 2, b"new-2"), (0, 0));
    assert_eq!(
        fetch_values(&mut k, "grow", 2),
        (0, vec![b"new-2".to_vec()])
    );
    // STRP to a new partition, by number and by the round robin of empty keys (the same
    // connection as before the grow).
    match s.call(&Request::BatchProduce {
        topic: "grow".into(),
        partition: 1,
        records: vec![stream_proto::ProduceRecord {
            key: bytes::Bytes::new(),
            value: bytes::Bytes::from_static(b"strp-1"),
            priority: 0,
        }],
    }) {
        Response::BatchProduce { error, offsets, .. } => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!((offsets[0].partition, offsets[0].offset), (1, 0));
        }
        r => panic!("{r:?}"),
    }
    let spread: BTreeSet<u32> = (0..3)
        .map(|i| s.produce("grow", b"", format!("rr-{i}").as_bytes()).0)
        .collect();
    assert_eq!(
        spread,
        BTreeSet::from([0, 1, 2]),
        "round robin covers every partition"
    );
    let m = s.fetch_all("grow", 2, 0);
    assert_eq!(&m[0].value[..], b"new-2", "STRP reads what Kafka wrote");
    let before: Vec<Vec<Vec<u8>>> = (0..3).map(|p| fetch_values(&mut k, "grow", p).1).collect();
    assert_eq!(
        before[0][..2],
        [b"before".to_vec(), b"strp-before".to_vec()]
    );

    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
    let (_server, addr) = start(dir.path(), &[]);
    let mut k = KafkaClient::connect(addr);
    assert_eq!(partitions(&mut k, "grow"), 3);
    let after: Vec<Vec<Vec<u8>>> = (0..3).map(|p| fetch_values(&mut k, "grow", p).1).collect();
    assert_eq!(after, before, "every partition keeps its records");
    assert_eq!(produce_to(&mut k, "grow", 2, b"after"), (0, 2));
}

#[test]
fn refused_requests_change_nothing_and_validate_only_only_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &["--max-partitions=6"]);
    let mut k = KafkaClient::connect(addr);
    create(&mut k, "t", 2);
    create(&mut k, "u", 1);

    let r = grow(&mut k, &create_partitions(&[("missing", 3)], false));
    assert_eq!(r[0].1, 3, "UNKNOWN_TOPIC_OR_PARTITION: {r:?}");
    for count in [2, 1, 0, -1] {
        let r = grow(&mut k, &create_partitions(&[("t", count)], false));
        assert_eq!(r[0].1, 37, "INVALID_PARTITIONS for {count}: {r:?}");
        assert!(
            r[0].2.contains("has 2 partitions") && r[0].2.contains(&count.to_string()),
            "{r:?}"
        );
    }
    let assigned =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("t"))
            .with_count(3)
            .with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(0)])
            ]))]);
    let r = grow(&mut k, &assigned);
    assert_eq!(r[0].1, 39, "INVALID_REPLICA_ASSIGNMENT: {r:?}");
    assert!(r[0].2.contains("replica assignments"), "{r:?}");

    // A topic named twice is refused in both entries; the other topic still grows.
    let r = grow(
        &mut k,
        &create_partitions(&[("t", 3), ("u", 2), ("t", 4)], false),
    );
    let codes: Vec<(&str, i16)> = r.iter().map(|(n, c, _)| (n.as_str(), *c)).collect();
    assert_eq!(codes, vec![("t", 42), ("u", 0), ("t", 42)], "{r:?}");
    assert!(r[0].2.contains("more than once"), "{r:?}");
    assert_eq!(partitions(&mut k, "u"), 2);

    // 4 of 6 exist: t may grow by 2, not by 3, nor past what one topic may have.
    for count in [5, 2000] {
        let r = grow(&mut k, &create_partitions(&[("t", count)], false));
        assert_eq!(r[0].1, 42, "INVALID_REQUEST (a limit) for {count}: {r:?}");
    }
    let r = grow(&mut k, &create_partitions(&[("t", 5)], true));
    assert_eq!(r[0].1, 42, "validate_only checks the limit too: {r:?}");
    assert!(r[0].2.contains("--max-partitions"), "{r:?}");
    let r = grow(&mut k, &create_partitions(&[("t", 2)], true));
    assert_eq!(r[0].1, 37, "{r:?}");
    assert_eq!(partitions(&mut k, "t"), 2, "nothing refused was applied");

    let r = grow(&mut k, &create_partitions(&[("t", 4)], true));
    assert_eq!(r[0].1, 0, "{r:?}");
    assert_eq!(partitions(&mut k, "t"), 2, "validate_only changes nothing");
    let r = grow(&mut k, &create_partitions(&[("t", 4)], false));
    assert_eq!(r[0].1, 0, "{r:?}");
    assert_eq!(partitions(&mut k, "t"), 4);
}
