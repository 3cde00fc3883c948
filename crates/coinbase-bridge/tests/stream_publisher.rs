//! The bridge's stream publisher against the real stream-server: a batch over several
//! partitions lands each record once, in the partition the server's key rule gives it.

use coinbase_bridge::publish::{Publisher, Record};
use coinbase_bridge::stream::StreamPublisher;
use stream_client::StreamClient;
use stream_proto::partition_for_key;
use test_support::stream_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_four_partitions_stores_each_record_once_where_its_key_belongs() {
    let server = stream_server::start();
    let topic = stream_server::topic("bridge-batch");
    let mut publisher = StreamPublisher::new(&server.addr);
    publisher.create_topic(&topic, 4).await.unwrap();
    let records: Vec<Record> = (0..200)
        .map(|i| Record {
            topic: topic.clone(),
            key: format!("order-{}", i % 13),
            value: format!("v{i}"),
        })
        .collect();
    publisher.produce_batch(&topic, &records).await.unwrap();

    let mut client = StreamClient::connect(&server.addr).await.unwrap();
    let mut seen = Vec::new();
    for partition in 0..4 {
        let fetched = client.fetch(&topic, partition, 0, 1000).await.unwrap();
        let mut last_index = None;
        for m in fetched.messages {
            let key = String::from_utf8(m.key.to_vec()).unwrap();
            assert_eq!(partition_for_key(key.as_bytes(), 4), partition, "{key}");
            let index: usize = std::str::from_utf8(&m.value[1..]).unwrap().parse().unwrap();
            assert!(
                last_index < Some(index),
                "partition {partition} keeps record order"
            );
            last_index = Some(index);
            seen.push(index);
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..200).collect::<Vec<_>>(),
        "every record exactly once"
    );
}
