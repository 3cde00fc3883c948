//! BatchProducer against the real stream-server.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use stream_client::{BatchProducer, ErrorCode, ProducerConfig, StreamClient};
use stream_proto::partition_for_key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_acknowledge_every_message_with_its_offset() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("bp", 4).await.unwrap();
    let cfg = ProducerConfig {
        max_batch_messages: 500,
        linger: Duration::from_millis(2),
        max_in_flight: 4,
        ..ProducerConfig::default()
    };
    let producer = BatchProducer::connect(&s.addr, "bp", cfg).await.unwrap();
    assert_eq!(producer.partitions(), 4);
    let mut acks = Vec::new();
    for i in 0..10_000u32 {
        let key = if i % 2 == 0 {
            format!("key-{}", i % 37)
        } else {
            String::new()
        };
        let ack = producer
            .send(key.clone().into_bytes(), format!("value-{i}").into_bytes())
            .await
            .unwrap();
        acks.push((key, i, ack));
    }
    producer.flush().await.unwrap();
    let mut by_partition: BTreeMap<u32, BTreeMap<u64, (String, u32)>> = BTreeMap::new();
    let mut last_of_key: BTreeMap<String, u64> = BTreeMap::new();
    for (key, i, ack) in acks {
        let p = ack.await.unwrap();
        if !key.is_empty() {
            assert_eq!(
                p.partition,
                partition_for_key(key.as_bytes(), 4),
                "key {key}"
            );
            // per-key order is the send order
            if let Some(prev) = last_of_key.insert(key.clone(), p.offset) {
                assert!(
                    p.offset > prev,
                    "key {key}: offset {} after {prev}",
                    p.offset
                );
            }
        }
        assert!(by_partition
            .entry(p.partition)
            .or_default()
            .insert(p.offset, (key, i))
            .is_none());
    }
    producer.close().await.unwrap();
    // every acknowledged offset holds exactly the message acknowledged for it
    let mut total = 0;
    for (p, msgs) in &by_partition {
        let offsets: Vec<u64> = msgs.keys().copied().collect();
        assert_eq!(offsets, (0..msgs.len() as u64).collect::<Vec<_>>());
        let mut next = 0;
        while next < msgs.len() as u64 {
            let f = c.fetch("bp", *p, next, 5000).await.unwrap();
            for m in &f.messages {
                let (key, i) = &msgs[&m.offset];
                assert_eq!(&m.key[..], key.as_bytes());
                assert_eq!(&m.value[..], format!("value-{i}").as_bytes());
                total += 1;
            }
            next = f.messages.last().unwrap().offset + 1;
        }
    }
    assert_eq!(total, 10_000);
    // unkeyed messages are spread over partitions (sticky per batch, rotating)
    assert_eq!(by_partition.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_sends_a_partial_batch_and_errors_reach_the_acks() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("lg", 1).await.unwrap();
    let producer = BatchProducer::connect(&s.addr, "lg", ProducerConfig::default())
        .await
        .unwrap();
    // one message, never a full batch: the linger timer sends it
    let ack = producer.send(&b"k"[..], &b"v"[..]).await.unwrap();
    let p = tokio::time::timeout(Duration::from_secs(20), ack)
        .await
        .expect("linger never fired")
        .unwrap();
    assert_eq!((p.partition, p.offset), (0, 0));

    // the topic disappears: acks fail with the server's code, the producer keeps working
    c.delete_topic("lg").await.unwrap();
    let ack = producer.send(&b""[..], &b"lost"[..]).await.unwrap();
    assert_eq!(
        ack.await.unwrap_err().code(),
        Some(ErrorCode::TopicNotFound)
    );
    c.create_topic("lg", 1).await.unwrap();
    let ack = producer.send(&b""[..], &b"again"[..]).await.unwrap();
    assert_eq!(ack.await.unwrap().offset, 0);
    producer.close().await.unwrap();

    // a missing topic is reported at connect
    let e = BatchProducer::connect(&s.addr, "missing", ProducerConfig::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::TopicNotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_fail_when_the_server_dies() {
    let mut s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    c.create_topic("d", 1).await.unwrap();
    let producer = BatchProducer::connect(&s.addr, "d", ProducerConfig::default())
        .await
        .unwrap();
    producer
        .send(&b""[..], &b"ok"[..])
        .await
        .unwrap()
        .await
        .unwrap();
    s.proc.kill9();
    let mut failed = false;
    for _ in 0..100 {
        match producer.send(&b""[..], &b"x"[..]).await {
            Err(_) => {
                failed = true;
                break;
            }
            Ok(ack) => {
                if tokio::time::timeout(Duration::from_secs(20), ack)
                    .await
                    .expect("ack never resolved")
                    .is_err()
                {
                    failed = true;
                    break;
                }
            }
        }
    }
    assert!(failed, "acks kept succeeding after the server died");
}
