//! GroupConsumer against the real stream-server: split, rebalance, eviction and takeover.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stream_client::{ConsumerConfig, GroupConsumer, ProduceRecord, StreamClient};

fn config(group: &str, topic: &str) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(group, topic);
    cfg.session_timeout = Duration::from_millis(1500);
    cfg.heartbeat_interval = Duration::from_millis(200);
    cfg.poll_wait = Duration::from_millis(50);
    cfg.max_messages = 7; // small fetches so that consumption spans several polls
    cfg
}

async fn fill(c: &mut StreamClient, topic: &str, partitions: u32, per_partition: u64) {
    c.create_topic(topic, partitions).await.unwrap();
    for p in 0..partitions {
        let records = (0..per_partition)
            .map(|i| ProduceRecord {
                key: Bytes::new(),
                value: Bytes::from(format!("{p}-{i}")),
                priority: 2,
            })
            .collect();
        c.produce_batch(topic, Some(p), records).await.unwrap();
    }
}

/// Polls until `done` says so, failing after `limit`.
async fn poll_until(
    consumer: &mut GroupConsumer,
    seen: &mut Vec<(u32, u64)>,
    limit: Duration,
    mut done: impl FnMut(&GroupConsumer, &[(u32, u64)]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(consumer, seen) {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        for m in consumer.poll().await.unwrap() {
            assert!(m.verify());
            seen.push((m.partition, m.offset));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumes_everything_and_resumes_from_commits() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    fill(&mut c, "t", 3, 20).await;
    let mut m = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    assert_eq!(m.assignment(), &[0, 1, 2]);
    let mut seen = Vec::new();
    poll_until(&mut m, &mut seen, Duration::from_secs(30), |_, s| {
        s.len() >= 30
    })
    .await;
    m.close().await.unwrap(); // commits what was returned
    let committed: u64 = {
        let mut sum = 0;
        for p in 0..3 {
            sum += c.fetch_offset("g", "t", p).await.unwrap().unwrap_or(0);
        }
        sum
    };
    assert_eq!(committed as usize, seen.len());

    let mut m = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    let mut rest = Vec::new();
    poll_until(&mut m, &mut rest, Duration::from_secs(30), |_, r| {
        r.len() + seen.len() >= 60
    })
    .await;
    m.close().await.unwrap();
    let all: BTreeSet<_> = seen.iter().chain(&rest).copied().collect();
    assert_eq!(
        all.len(),
        60,
        "exactly once here: clean close committed everything"
    );
    assert_eq!(seen.len() + rest.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_member_triggers_a_rebalance_and_they_split() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    fill(&mut c, "t", 4, 5).await;
    let mut a = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    assert_eq!(a.assignment(), &[0, 1, 2, 3]);
    let b = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    assert_eq!(b.assignment().len(), 2);
    // a learns of it from its heartbeat task and rejoins on a later poll
    let mut seen = Vec::new();
    poll_until(&mut a, &mut seen, Duration::from_secs(30), |a, _| {
        a.assignment().len() == 2
    })
    .await;
    assert_eq!(a.generation(), b.generation());
    assert!(a.rebalances() >= 1);
    let all: BTreeSet<u32> = a
        .assignment()
        .iter()
        .chain(b.assignment())
        .copied()
        .collect();
    assert_eq!(all, (0..4).collect());
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_takes_over_a_killed_member_without_a_gap() {
    let s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    fill(&mut c, "t", 4, 40).await;
    let mut a = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    let mut b = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    // both settle on a 2/2 split and consume part of their partitions
    poll_until(&mut a, &mut seen_a, Duration::from_secs(30), |a, s| {
        a.assignment().len() == 2 && s.len() >= 20
    })
    .await;
    poll_until(&mut b, &mut seen_b, Duration::from_secs(30), |_, s| {
        s.len() >= 10
    })
    .await;
    let dead: Vec<u32> = a.assignment().to_vec();
    assert_eq!(b.assignment().len(), 2);
    // a commits what it has handled, takes one more batch it never commits, then dies. The
    // commit is a sign of life, so a's session cannot end before `alive` + 1.5 s.
    let alive = Instant::now();
    a.commit().await.unwrap();
    let mut committed = BTreeMap::new();
    for &p in &dead {
        committed.insert(p, c.fetch_offset("g", "t", p).await.unwrap().unwrap_or(0));
    }
    let _uncommitted = a.poll().await.unwrap();
    a.abort(); // no commit, no LEAVE_GROUP, no more heartbeats

    // b keeps polling; after a's session times out b owns all four partitions ...
    // (b never owned a's partitions before, so everything it reads of them from here on
    // comes after the takeover)
    let from = seen_b.len();
    poll_until(&mut b, &mut seen_b, Duration::from_secs(60), |b, _| {
        b.assignment().len() == 4
    })
    .await;
    assert!(
        alive.elapsed() >= Duration::from_millis(1500),
        "took over before the session timeout"
    );
    // ... and consumes to the end of every partition
    poll_until(&mut b, &mut seen_b, Duration::from_secs(60), |b, _| {
        b.positions().values().all(|&pos| pos == 40)
    })
    .await;
    // on a's partitions, b started exactly at a's committed offsets: no gap
    for &p in &dead {
        let offsets: Vec<u64> = seen_b[from..]
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets.first().copied(),
            Some(committed[&p]).filter(|&o| o < 40)
        );
        assert_eq!(offsets, (committed[&p]..40).collect::<Vec<_>>());
    }
    // every message of every partition was consumed by someone
    let all: BTreeSet<(u32, u64)> = seen_a.iter().chain(&seen_b).copied().collect();
    for p in 0..4 {
        for o in 0..40 {
            assert!(all.contains(&(p, o)), "message {p}/{o} never consumed");
        }
    }
    b.close().await.unwrap();
    for p in 0..4 {
        assert_eq!(c.fetch_offset("g", "t", p).await.unwrap(), Some(40));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reconnects_and_rejoins_after_a_server_restart() {
    let mut s = common::start();
    let mut c = StreamClient::connect(&s.addr).await.unwrap();
    fill(&mut c, "t", 2, 30).await;
    drop(c);
    let mut m = GroupConsumer::join(&s.addr, config("g", "t"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    poll_until(&mut m, &mut seen, Duration::from_secs(30), |_, s| {
        s.len() >= 20
    })
    .await;
    m.commit().await.unwrap();
    s.restart();
    // the first poll after the restart reports the broken connection; later ones recover
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut errors = 0;
    while seen.len() < 60 {
        assert!(Instant::now() < deadline, "no recovery after the restart");
        match m.poll().await {
            Ok(batch) => seen.extend(batch.iter().map(|m| (m.partition, m.offset))),
            Err(e) => {
                errors += 1;
                assert!(errors < 10, "keeps failing: {e}");
            }
        }
    }
    let all: BTreeSet<(u32, u64)> = seen.iter().copied().collect();
    assert_eq!(all.len(), 60, "every message, none lost");
    assert_eq!(
        seen.len(),
        60,
        "none repeated: positions survived the reconnect"
    );
    m.close().await.unwrap();
}
