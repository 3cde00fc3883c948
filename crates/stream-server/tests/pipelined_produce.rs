//! Pipelined single PRODUCEs are appended together, one append per partition per burst
//! (`broker/staged.rs`); each request still gets its own answer, in request order, and a
//! request served between them sees exactly the produces before it.

mod common;

use common::{produce_req, start, Client};
use stream_proto::*;

/// A key that the partitioner sends to `partition` of a 2-partition topic.
fn key_for(partition: u32) -> Vec<u8> {
    (0u32..)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| partition_for_key(k, 2) == partition)
        .expect("some key lands on every partition")
}

fn expect_produced(c: &mut Client, partition: u32, offset: u64) {
    match c.recv() {
        Response::Produce {
            error: ErrorCode::None,
            partition: p,
            offset: o,
            ..
        } => assert_eq!((p, o), (partition, offset)),
        r => panic!("expected a produce to {partition} at {offset}, got {r:?}"),
    }
}

fn expect_refused(c: &mut Client, code: ErrorCode) {
    match c.recv() {
        Response::Produce { error, message, .. } => {
            assert_eq!(error, code, "{message}");
            assert!(!message.is_empty());
        }
        r => panic!("expected a refused produce, got {r:?}"),
    }
}

#[test]
fn one_burst_of_produces_to_two_partitions_with_a_fetch_and_bad_requests_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 2).error, ErrorCode::None);
    let keys = [key_for(0), key_for(1)];
    let value = |i: u32| i.to_le_bytes().to_vec();
    let mut burst = Vec::new();
    for i in 0..10u32 {
        burst.extend_from_slice(&produce_req("t", &keys[(i % 2) as usize], &value(i)).to_frame());
    }
    burst.extend_from_slice(
        &Request::Fetch {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            max_messages: 100,
        }
        .to_frame(),
    );
    burst.extend_from_slice(&produce_req("missing", b"", b"x").to_frame());
    // Fits a frame, but not a stored record.
    let too_large = vec![0u8; MAX_PAYLOAD as usize - 2048];
    burst.extend_from_slice(&produce_req("t", &keys[0], &too_large).to_frame());
    for i in 10..20u32 {
        burst.extend_from_slice(&produce_req("t", &keys[(i % 2) as usize], &value(i)).to_frame());
    }
    // One write: the server reads the requests as one burst.
    c.send_raw(&burst);

    for i in 0..10u32 {
        expect_produced(&mut c, i % 2, u64::from(i / 2));
    }
    match c.recv() {
        Response::Fetch(f) => {
            assert_eq!(f.error, ErrorCode::None, "{}", f.message);
            let values: Vec<Vec<u8>> = f
                .messages()
                .unwrap()
                .into_iter()
                .map(|m| m.value.to_vec())
                .collect();
            let before: Vec<Vec<u8>> = (0..10).step_by(2).map(value).collect();
            assert_eq!(
                values, before,
                "the fetch sees the produces before it, no more"
            );
        }
        r => panic!("expected the fetch, got {r:?}"),
    }
    expect_refused(&mut c, ErrorCode::TopicNotFound);
    expect_refused(&mut c, ErrorCode::RequestTooLarge);
    for i in 10..20u32 {
        expect_produced(&mut c, i % 2, u64::from(i / 2));
    }

    for p in 0..2u32 {
        let values: Vec<Vec<u8>> = c
            .fetch_all("t", p, 0)
            .into_iter()
            .map(|m| m.value.to_vec())
            .collect();
        let expected: Vec<Vec<u8>> = (0..20).filter(|i| i % 2 == p).map(value).collect();
        assert_eq!(
            values, expected,
            "partition {p} holds its produces in request order"
        );
    }
}

#[test]
fn produces_after_a_topic_is_deleted_in_the_same_burst_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    let mut burst = Vec::new();
    for i in 0..5u8 {
        burst.extend_from_slice(&produce_req("t", b"", &[i]).to_frame());
    }
    burst.extend_from_slice(&Request::DeleteTopic { name: "t".into() }.to_frame());
    burst.extend_from_slice(&produce_req("t", b"", b"late").to_frame());
    c.send_raw(&burst);
    for i in 0..5u64 {
        expect_produced(&mut c, 0, i);
    }
    match c.recv() {
        Response::DeleteTopic(s) => assert_eq!(s.error, ErrorCode::None, "{}", s.message),
        r => panic!("expected the delete, got {r:?}"),
    }
    expect_refused(&mut c, ErrorCode::TopicNotFound);
}

#[test]
fn a_connection_keeps_producing_to_a_topic_deleted_and_created_again_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut producer = Client::connect(addr);
    let mut admin = Client::connect(addr);
    assert_eq!(admin.create_topic("t", 1).error, ErrorCode::None);
    assert_eq!(producer.produce("t", b"", b"old"), (0, 0));
    match admin.call(&Request::DeleteTopic { name: "t".into() }) {
        Response::DeleteTopic(s) => assert_eq!(s.error, ErrorCode::None, "{}", s.message),
        r => panic!("unexpected {r:?}"),
    }
    producer.send(&produce_req("t", b"", b"gone"));
    expect_refused(&mut producer, ErrorCode::TopicNotFound);
    assert_eq!(admin.create_topic("t", 2).error, ErrorCode::None);
    // The new topic, not the deleted one the connection used last.
    let (_, offset) = producer.produce("t", b"", b"new");
    assert_eq!(offset, 0);
    let total: usize = (0..2).map(|p| admin.fetch_all("t", p, 0).len()).sum();
    assert_eq!(total, 1);
}

/// A BATCH_PRODUCE claiming more messages than allowed, refused from its first bytes.
fn refused_batch_frame(topic: &str) -> Vec<u8> {
    let mut payload = (topic.len() as u32).to_le_bytes().to_vec();
    payload.extend_from_slice(topic.as_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut frame = Header::new(RequestType::BatchProduce.id(), payload.len() as u32)
        .to_bytes()
        .to_vec();
    frame.extend_from_slice(&payload);
    frame
}

#[test]
fn refused_requests_count_toward_a_burst_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Bursts of at most 2: three refusals in one read would once have needed 3 in-flight
    // permits of 2 and hung the connection.
    let (_server, addr) = start(dir.path(), &["--max-in-flight=2"]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    let mut burst = Vec::new();
    for _ in 0..3 {
        burst.extend_from_slice(&refused_batch_frame("t"));
    }
    burst.extend_from_slice(&produce_req("t", b"", b"after").to_frame());
    c.send_raw(&burst);
    for _ in 0..3 {
        match c.recv() {
            Response::BatchProduce { error, message, .. } => {
                assert_eq!(error, ErrorCode::RequestTooLarge, "{message}")
            }
            r => panic!("expected a refused batch, got {r:?}"),
        }
    }
    expect_produced(&mut c, 0, 0);
}

/// Mappings of the server's files that were deleted (a deleted topic's sealed segments).
fn deleted_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .filter(|l| l.ends_with("(deleted)") && l.contains(".log"))
        .count()
}

#[test]
fn a_deleted_topic_is_let_go_while_its_producer_connection_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(dir.path(), &["--segment-bytes=4096"]);
    let mut producer = Client::connect(addr);
    let mut admin = Client::connect(addr);
    assert_eq!(admin.create_topic("t", 1).error, ErrorCode::None);
    for i in 0..200u32 {
        producer.produce("t", b"", &i.to_le_bytes().repeat(16));
    }
    // Reading the first segments maps them.
    assert_eq!(admin.fetch_all("t", 0, 0).len(), 200);
    match admin.call(&Request::DeleteTopic { name: "t".into() }) {
        Response::DeleteTopic(s) => assert_eq!(s.error, ErrorCode::None, "{}", s.message),
        r => panic!("unexpected {r:?}"),
    }
    // The producer's connection, idle, must not keep the deleted logs (and their mappings).
    assert_eq!(deleted_mappings(server.pid()), 0);
    drop(producer);
}
