//! Every StreamClient operation against the real stream-server.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use stream_client::{ClientError, ErrorCode, Priority, ProduceRecord, Produced, StreamClient};
use stream_proto::{partition_for_key, Request, RequestType, Response};

fn rec(key: &str, value: &str) -> ProduceRecord {
    ProduceRecord {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        priority: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_roundtrip() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    let types: Vec<u32> = c
        .api_versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.type_id)
        .collect();
    for t in RequestType::ALL {
        assert!(types.contains(&t.id()), "{t:?} missing from API_VERSIONS");
    }
    assert!(c.list_topics().await.unwrap().is_empty());
    c.create_topic("alpha", 3).await.unwrap();
    c.create_topic("beta", 1).await.unwrap();
    let e = c.create_topic("alpha", 3).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TopicAlreadyExists));
    assert!(matches!(e, ClientError::Server { ref message, .. } if !message.is_empty()));
    assert_eq!(c.list_topics().await.unwrap(), vec!["alpha", "beta"]);
    assert_eq!(
        c.metadata().await.unwrap(),
        vec![("alpha".to_string(), 3), ("beta".to_string(), 1)]
    );
    assert_eq!(c.partition_count("alpha").await.unwrap(), 3);
    c.delete_topic("beta").await.unwrap();
    assert_eq!(
        c.delete_topic("beta").await.unwrap_err().code(),
        Some(ErrorCode::TopicNotFound)
    );
    assert_eq!(c.list_topics().await.unwrap(), vec!["alpha"]);
    c.heartbeat().await.unwrap();
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_and_partitioning() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("t", 4).await.unwrap();
    // keyed: murmur3, stable
    for key in ["order-1", "order-2", "BTC-USD", "x"] {
        let p = c.produce("t", key.as_bytes(), b"v").await.unwrap();
        assert_eq!(p.partition, partition_for_key(key.as_bytes(), 4));
        let again = c.produce("t", key.as_bytes(), b"v2").await.unwrap();
        assert_eq!(again.partition, p.partition);
        assert_eq!(again.offset, p.offset + 1);
    }
    // empty keys: round robin over every partition
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(c.produce("t", b"", b"rr").await.unwrap().partition);
    }
    assert_eq!(seen.len(), 4);

    c.create_topic("one", 1).await.unwrap();
    for i in 0..5u64 {
        let p = c
            .produce(
                "one",
                format!("k{i}").as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(
            p,
            Produced {
                partition: 0,
                offset: i
            }
        );
    }
    let f = c.fetch("one", 0, 0, 100).await.unwrap();
    assert_eq!(f.high_watermark, 5);
    assert_eq!(f.messages.len(), 5);
    for (i, m) in f.messages.iter().enumerate() {
        assert_eq!(m.offset, i as u64);
        assert_eq!(&m.key[..], format!("k{i}").as_bytes());
        assert_eq!(&m.value[..], format!("v{i}").as_bytes());
        assert!(m.verify());
    }
    let f = c.fetch("one", 0, 3, 1).await.unwrap();
    assert_eq!(f.messages.len(), 1);
    assert_eq!(f.messages[0].offset, 3);
    assert!(c.fetch("one", 0, 5, 10).await.unwrap().messages.is_empty());
    assert_eq!(
        c.fetch("one", 0, 99, 10).await.unwrap_err().code(),
        Some(ErrorCode::InvalidOffset)
    );
    assert_eq!(
        c.fetch("one", 7, 0, 10).await.unwrap_err().code(),
        Some(ErrorCode::PartitionNotFound)
    );
    assert_eq!(
        c.fetch("nope", 0, 0, 10).await.unwrap_err().code(),
        Some(ErrorCode::TopicNotFound)
    );
    assert_eq!(c.partition_offsets("one", 0).await.unwrap(), (0, 5));
    let p = c
        .produce_with_priority("one", b"", b"urgent", Priority::Critical)
        .await
        .unwrap();
    let m = &c.fetch("one", 0, p.offset, 1).await.unwrap().messages[0];
    assert_eq!(
        (m.priority, &m.value[..]),
        (Priority::Critical as u8, &b"urgent"[..])
    );
    // a server error leaves the connection usable
    c.list_topics().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_and_batches() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("p", 2).await.unwrap();
    // 1000 PRODUCEs in flight on one connection, answered in order
    let records: Vec<(Bytes, Bytes)> = (0..1000)
        .map(|i| (Bytes::new(), Bytes::from(format!("m{i}"))))
        .collect();
    let got = c.produce_pipelined("p", &records).await.unwrap();
    assert_eq!(got.len(), 1000);
    for p in 0..2 {
        let offs: Vec<u64> = got
            .iter()
            .filter(|g| g.partition == p)
            .map(|g| g.offset)
            .collect();
        assert_eq!(offs, (0..offs.len() as u64).collect::<Vec<_>>());
    }
    // far more than a window: no deadlock however long the list (1 KiB values)
    let big: Vec<(Bytes, Bytes)> = (0..20_000)
        .map(|_| (Bytes::new(), Bytes::from(vec![b'v'; 1024])))
        .collect();
    assert_eq!(c.produce_pipelined("p", &big).await.unwrap().len(), 20_000);
    // mixed request types pipelined
    let answers = c
        .pipeline(&[
            Request::ListTopics,
            Request::Metadata,
            Request::Heartbeat(None),
        ])
        .await
        .unwrap();
    assert!(matches!(answers[0], Response::ListTopics { .. }));
    assert!(matches!(answers[1], Response::Metadata { .. }));
    assert!(matches!(answers[2], Response::Heartbeat(_)));

    // batch to an explicit partition
    let hw = c.partition_offsets("p", 1).await.unwrap().1;
    let got = c
        .produce_batch("p", Some(1), vec![rec("", "a"), rec("", "b"), rec("", "c")])
        .await
        .unwrap();
    assert_eq!(
        got,
        (0..3)
            .map(|i| Produced {
                partition: 1,
                offset: hw + i
            })
            .collect::<Vec<_>>()
    );
    let f = c.fetch("p", 1, hw, 10).await.unwrap();
    let values: Vec<&[u8]> = f.messages.iter().map(|m| &m.value[..]).collect();
    assert_eq!(values, vec![b"a", b"b", b"c"]);
    // batch by key
    let got = c
        .produce_batch("p", None, vec![rec("k1", "x"), rec("k2", "y")])
        .await
        .unwrap();
    assert_eq!(got[0].partition, partition_for_key(b"k1", 2));
    assert_eq!(got[1].partition, partition_for_key(b"k2", 2));
    assert_eq!(
        c.produce_batch("p", Some(9), vec![rec("", "z")])
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::PartitionNotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_new_data() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("lp", 1).await.unwrap();
    let t0 = Instant::now();
    let f = c
        .fetch_wait("lp", 0, 0, 10, 0, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(f.messages.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(150));

    let addr = s.addr.clone();
    let producer = tokio::spawn(async move {
        let mut p = StreamClient::connect(&addr).await.unwrap();
        // produce while the other connection's fetch is parked
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.produce("lp", b"", b"late").await.unwrap();
    });
    let t0 = Instant::now();
    let f = c
        .fetch_wait("lp", 0, 0, 10, 0, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(&f.messages[0].value[..], b"late");
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(f.log_start_offset, Some(0));
    producer.await.unwrap();
    // byte limit: at least one message, fewer than all
    let many: Vec<_> = (0..10).map(|_| rec("", &"x".repeat(100))).collect();
    c.produce_batch("lp", Some(0), many).await.unwrap();
    let f = c
        .fetch_wait("lp", 0, 1, 100, 250, Duration::ZERO)
        .await
        .unwrap();
    assert!(!f.messages.is_empty() && f.messages.len() < 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_operations() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("g", 4).await.unwrap();
    let fifty: Vec<_> = (0..50).map(|_| rec("", "m")).collect();
    c.produce_batch("g", Some(1), fifty).await.unwrap();

    // original layout: JOIN_GROUP, COMMIT_OFFSET, FETCH_OFFSET, LEAVE_GROUP
    let a = c.join_group("legacy", "g").await.unwrap();
    assert!(!a.consumer_id.is_empty());
    assert_eq!(a.partitions, vec![0, 1, 2, 3]);
    assert_eq!(c.fetch_offset("legacy", "g", 1).await.unwrap(), None);
    c.commit_offset("legacy", "g", 1, 42).await.unwrap();
    assert_eq!(c.fetch_offset("legacy", "g", 1).await.unwrap(), Some(42));
    assert_eq!(
        c.commit_offset("legacy", "g", 1, 51)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidOffset)
    );
    c.leave_group("legacy", &a.consumer_id).await.unwrap();
    assert_eq!(
        c.leave_group("legacy", &a.consumer_id)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::ConsumerNotFound)
    );

    // ours: JOIN_GROUP_V2, group HEARTBEAT, GROUP_COMMIT
    let mut c2 = StreamClient::connect(&s.addr).await.unwrap();
    let session = Some(Duration::from_secs(30));
    let m1 = c.join_group_v2("v2", "g", "", session).await.unwrap();
    assert_eq!(m1.partitions, vec![0, 1, 2, 3]);
    c.group_heartbeat("v2", &m1.consumer_id, m1.generation)
        .await
        .unwrap();
    c.group_commit("v2", &m1.consumer_id, m1.generation, "g", 1, 10)
        .await
        .unwrap();
    let m2 = c2.join_group_v2("v2", "g", "", session).await.unwrap();
    assert!(m2.generation > m1.generation);
    // m1 learns of the rebalance from its heartbeat; its stale commit is refused
    let e = c
        .group_heartbeat("v2", &m1.consumer_id, m1.generation)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RebalanceInProgress));
    assert!(e.needs_rejoin());
    // Before rejoining, m1 may still commit a partition nobody newer took over
    // (commit-before-revoke), but not one the new member owns now.
    let theirs = m2.partitions[0];
    let e = c
        .group_commit("v2", &m1.consumer_id, m1.generation, "g", theirs, 0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IllegalGeneration));
    let mine = (0..4).find(|p| !m2.partitions.contains(p)).unwrap();
    let hw = c.partition_offsets("g", mine).await.unwrap().1;
    c.group_commit("v2", &m1.consumer_id, m1.generation, "g", mine, hw)
        .await
        .unwrap();
    let r1 = c
        .join_group_v2("v2", "g", &m1.consumer_id, session)
        .await
        .unwrap();
    assert_eq!(r1.consumer_id, m1.consumer_id);
    assert_eq!(r1.generation, m2.generation);
    let mut all = [r1.partitions.clone(), m2.partitions.clone()].concat();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
    assert_eq!(c.fetch_offset("v2", "g", 1).await.unwrap(), Some(10));
    c.leave_group("v2", &r1.consumer_id).await.unwrap();
    c2.leave_group("v2", &m2.consumer_id).await.unwrap();
}
