//! The bridge's Kafka publisher against the real stream-server, which answers Kafka on its
//! STRP port: what it publishes is read back over STRP, each record once, in the partition
//! the STRP publisher would have chosen, across a server restart.

// As in the bridge's binary: the decoders' claimed lengths must not abort the test binary.
#[global_allocator]
static ALLOC: process_limits::LazyHugeAlloc = process_limits::LazyHugeAlloc;

use coinbase_bridge::kafka::KafkaPublisher;
use coinbase_bridge::publish::{PublishError, Publisher, Record};
use coinbase_bridge::stream::StreamPublisher;
use std::collections::HashMap;
use stream_client::StreamClient;
use stream_proto::partition_for_key;
use test_support::stream_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn records(topic: &str, n: usize, keys: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            topic: topic.to_owned(),
            key: format!("order-{}", i % keys),
            value: format!("{tag}{i}"),
        })
        .collect()
}

/// Every message of `topic`'s `partitions` partitions, over STRP: `(partition, key, value)`,
/// each partition's in offset order.
async fn read_back(addr: &str, topic: &str, partitions: u32) -> Vec<(u32, String, String)> {
    let mut client = StreamClient::connect(addr).await.unwrap();
    let mut out = Vec::new();
    for partition in 0..partitions {
        let fetched = client.fetch(topic, partition, 0, 10_000).await.unwrap();
        for m in fetched.messages {
            out.push((
                partition,
                String::from_utf8(m.key.to_vec()).unwrap(),
                String::from_utf8(m.value.to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_four_partitions_stores_each_record_once_where_its_key_belongs() {
    let server = stream_server::start();
    let topic = stream_server::topic("kafka-batch");
    let mut publisher = KafkaPublisher::new(&server.addr);
    publisher.create_topic(&topic, 4).await.unwrap();
    // A second create of an existing topic is success, as over STRP.
    publisher.create_topic(&topic, 4).await.unwrap();
    let batch = records(&topic, 200, 13, "v");
    publisher.produce_batch(&topic, &batch).await.unwrap();
    publisher
        .produce(&topic, b"order-single", b"v200")
        .await
        .unwrap();

    let got = read_back(&server.addr, &topic, 4).await;
    let mut seen = Vec::new();
    let mut last_index: HashMap<u32, usize> = HashMap::new();
    for (partition, key, value) in got {
        assert_eq!(
            partition_for_key(key.as_bytes(), 4),
            partition,
            "{key} is in the partition of the key rule"
        );
        let index: usize = value[1..].parse().unwrap();
        if index < 200 {
            assert_eq!(key, batch[index].key, "value {value} kept its key");
            let last = last_index.insert(partition, index);
            assert!(
                last < Some(index),
                "partition {partition} keeps record order"
            );
        } else {
            assert_eq!(key, "order-single");
        }
        seen.push(index);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..201).collect::<Vec<_>>(),
        "every record exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lands_in_the_same_partition_over_either_protocol() {
    let server = stream_server::start();
    let topic = stream_server::topic("both-protocols");
    let mut strp = StreamPublisher::new(&server.addr);
    let mut kafka = KafkaPublisher::new(&server.addr);
    strp.create_topic(&topic, 5).await.unwrap();
    kafka.create_topic(&topic, 5).await.unwrap();
    strp.produce_batch(&topic, &records(&topic, 60, 17, "s"))
        .await
        .unwrap();
    kafka
        .produce_batch(&topic, &records(&topic, 60, 17, "k"))
        .await
        .unwrap();
    // Single produces too: the STRP server picks the partition, the Kafka publisher itself.
    strp.produce(&topic, b"lone-key", b"s-lone").await.unwrap();
    kafka.produce(&topic, b"lone-key", b"k-lone").await.unwrap();

    let got = read_back(&server.addr, &topic, 5).await;
    assert_eq!(got.len(), 122);
    let mut partition_of: HashMap<String, u32> = HashMap::new();
    let mut protocols: HashMap<String, Vec<char>> = HashMap::new();
    for (partition, key, value) in &got {
        let first = *partition_of.entry(key.clone()).or_insert(*partition);
        assert_eq!(first, *partition, "{key} is in one partition ({value})");
        protocols
            .entry(key.clone())
            .or_default()
            .push(value.chars().next().unwrap());
    }
    assert_eq!(partition_of.len(), 18);
    for (key, seen) in protocols {
        assert!(
            seen.contains(&'s') && seen.contains(&'k'),
            "{key} came over both protocols: {seen:?}"
        );
    }
    let used: std::collections::HashSet<u32> = partition_of.values().copied().collect();
    assert!(used.len() > 1, "the keys spread over partitions: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_costs_one_unavailable_attempt_then_it_reconnects() {
    let mut server = stream_server::start();
    let topic = stream_server::topic("kafka-restart");
    let mut publisher = KafkaPublisher::new(&server.addr);
    publisher.create_topic(&topic, 2).await.unwrap();
    let before = records(&topic, 20, 5, "a");
    publisher.produce_batch(&topic, &before).await.unwrap();

    tokio::task::block_in_place(|| server.restart());

    let after = records(&topic, 20, 5, "b");
    let mut failures = 0;
    loop {
        match publisher.produce_batch(&topic, &after).await {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    matches!(e.error, PublishError::Unavailable(_)),
                    "an old connection is Unavailable, not Rejected: {:?}",
                    e.error
                );
                assert!(
                    e.stored.is_empty(),
                    "nothing reached the stopped server: {:?}",
                    e.stored
                );
                failures += 1;
                assert!(failures < 2, "the next attempt reconnects: {}", e.error);
            }
        }
    }

    let got = read_back(&server.addr, &topic, 2).await;
    let mut values: Vec<String> = got.iter().map(|(_, _, v)| v.clone()).collect();
    values.sort_unstable();
    let mut want: Vec<String> = before
        .iter()
        .chain(&after)
        .map(|r| r.value.clone())
        .collect();
    want.sort_unstable();
    assert_eq!(
        values, want,
        "every record once, before and after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_not_rejected() {
    let server = stream_server::start();
    let addr = server.addr.clone();
    drop(server);
    let mut publisher = KafkaPublisher::new(&addr);
    let e = publisher.create_topic("t", 1).await.unwrap_err();
    assert!(
        matches!(&e, PublishError::Unavailable(m) if m.contains(&addr)),
        "{e}"
    );
}

/// A fake broker that answers the first request with what `answer` makes of its bytes, then
/// holds the connection open (a refusal must not wait for more bytes); and the error a
/// publisher gets from it.
async fn error_from_fake_broker(answer: fn(&[u8]) -> Vec<u8>) -> PublishError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 256];
        let n = s.read(&mut request).await.unwrap();
        s.write_all(&answer(&request[..n])).await.unwrap();
        let _ = s.read(&mut request).await;
    });
    let mut publisher = KafkaPublisher::new(&addr);
    let e = publisher.create_topic("t", 1).await.unwrap_err();
    peer.abort();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_is_an_error_not_an_allocation() {
    // Every answer claims 2 GiB: the publisher must refuse the size prefix, not try to
    // allocate for it.
    let e = error_from_fake_broker(|_| [&i32::MAX.to_be_bytes()[..], &[0; 16]].concat()).await;
    assert!(
        matches!(&e, PublishError::Unavailable(m) if m.contains("answer size 2147483647")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_array_count_is_an_error_not_an_abort() {
    // The ApiVersions answer claims 2^31 API entries and carries none: the crate's decoder
    // reserves them before reading one; with the system allocator that is a refused 64 GiB
    // allocation and an abort of this whole test binary.
    let e = error_from_fake_broker(|request| {
        assert!(request.len() >= 12, "a whole request header");
        let mut body = request[8..12].to_vec(); // the correlation id
        body.extend_from_slice(&0i16.to_be_bytes()); // error_code
        body.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x08]); // compact count 2^31
        [&(body.len() as i32).to_be_bytes()[..], &body].concat()
    })
    .await;
    assert!(
        matches!(&e, PublishError::Unavailable(m) if m.contains("undecodable ApiVersions")),
        "{e}"
    );
}
