//! Consumer groups against the real server: two members split a 4-partition topic; one is
//! killed (stops heartbeating); after the session timeout the survivor owns all four and
//! continues from the committed offsets with no gap.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{start, Client};
use stream_proto::*;

struct Member {
    c: Client,
    id: String,
    generation: u32,
    partitions: Vec<u32>,
}

impl Member {
    fn join(c: Client, id: &str) -> Member {
        let mut m = Member {
            c,
            id: id.to_string(),
            generation: 0,
            partitions: vec![],
        };
        m.rejoin();
        m
    }

    fn rejoin(&mut self) {
        match self.c.call(&Request::JoinGroupV2 {
            group_id: "g".into(),
            topic: "t".into(),
            consumer_id: self.id.clone(),
            session_timeout_ms: 3000,
        }) {
            Response::JoinGroupV2 {
                error: ErrorCode::None,
                consumer_id,
                generation,
                partitions,
                ..
            } => {
                self.id = consumer_id;
                self.generation = generation;
                self.partitions = partitions;
            }
            r => panic!("{r:?}"),
        }
    }

    fn heartbeat(&mut self) -> ErrorCode {
        self.c
            .call(&Request::Heartbeat(Some(GroupHeartbeat {
                group_id: "g".into(),
                consumer_id: self.id.clone(),
                generation: self.generation,
            })))
            .error_code()
    }

    fn commit(&mut self, partition: u32, offset: u64) -> ErrorCode {
        self.c
            .call(&Request::GroupCommit {
                group_id: "g".into(),
                consumer_id: self.id.clone(),
                generation: self.generation,
                topic: "t".into(),
                partition,
                offset,
            })
            .error_code()
    }

    fn committed(&mut self, partition: u32) -> Option<u64> {
        match self.c.call(&Request::FetchOffset {
            group_id: "g".into(),
            topic: "t".into(),
            partition,
        }) {
            Response::FetchOffset {
                error: ErrorCode::None,
                offset,
            } => Some(offset),
            _ => None,
        }
    }
}

#[test]
fn survivor_takes_over_after_session_timeout_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut admin = Client::connect(addr);
    admin.create_topic("t", 4);
    for p in 0..4u32 {
        for i in 0..10u32 {
            match admin.call(&Request::BatchProduce {
                topic: "t".into(),
                partition: p,
                records: vec![ProduceRecord {
                    key: bytes::Bytes::new(),
                    value: bytes::Bytes::from(format!("{p}-{i}")),
                    priority: 2,
                }],
            }) {
                Response::BatchProduce {
                    error: ErrorCode::None,
                    ..
                } => {}
                r => panic!("{r:?}"),
            }
        }
    }

    let mut a = Member::join(Client::connect(addr), "");
    assert_eq!(a.partitions, vec![0, 1, 2, 3]);
    let mut b = Member::join(Client::connect(addr), "");
    // a learns of the rebalance from its heartbeat and rejoins.
    assert_eq!(a.heartbeat(), ErrorCode::RebalanceInProgress);
    let stale_generation = a.generation;
    a.rejoin();
    assert_eq!(a.generation, b.generation);
    assert_eq!(a.partitions.len(), 2);
    assert_eq!(b.partitions.len(), 2);
    let mut all: Vec<u32> = [a.partitions.clone(), b.partitions.clone()].concat();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);

    // Each consumes 4 messages of each of its partitions and commits.
    let mut consumed: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for m in [&mut a, &mut b] {
        for p in m.partitions.clone() {
            let f = m.c.fetch("t", p, 0, 4);
            for msg in f.messages().unwrap() {
                consumed
                    .entry(p)
                    .or_default()
                    .push(String::from_utf8(msg.value.to_vec()).unwrap());
            }
            assert_eq!(m.commit(p, 4), ErrorCode::None);
        }
    }
    // A stale generation's commit is refused.
    let g = a.generation;
    a.generation = stale_generation;
    assert_eq!(a.commit(a.partitions[0], 9), ErrorCode::IllegalGeneration);
    a.generation = g;

    // b is killed: its connection drops and it never heartbeats again. a keeps heartbeating
    // until the server tells it to rejoin.
    let b_partitions = b.partitions.clone();
    drop(b.c);
    let mut b = Member {
        c: Client::connect(addr),
        id: b.id,
        generation: b.generation,
        partitions: b_partitions,
    };
    let t = Instant::now();
    let rebalanced = loop {
        assert!(t.elapsed() < Duration::from_secs(30), "no eviction");
        match a.heartbeat() {
            ErrorCode::None => std::thread::sleep(Duration::from_millis(100)),
            ErrorCode::RebalanceInProgress => break true,
            e => panic!("{e}"),
        }
    };
    assert!(rebalanced);
    assert!(
        t.elapsed() >= Duration::from_millis(2000),
        "evicted only after the session"
    );
    a.rejoin();
    assert_eq!(a.partitions, vec![0, 1, 2, 3]);
    // b is gone: a late heartbeat or commit under its old identity is refused.
    assert_eq!(b.heartbeat(), ErrorCode::ConsumerNotFound);
    assert_eq!(b.commit(b.partitions[0], 10), ErrorCode::ConsumerNotFound);

    // a continues from the committed offsets: nothing skipped, nothing repeated.
    for p in 0..4u32 {
        let from = a.committed(p).expect("committed offset");
        assert_eq!(from, 4);
        for msg in a.c.fetch_all("t", p, from) {
            consumed
                .entry(p)
                .or_default()
                .push(String::from_utf8(msg.value.to_vec()).unwrap());
        }
        assert_eq!(a.commit(p, 10), ErrorCode::None);
    }
    for p in 0..4u32 {
        let want: Vec<String> = (0..10).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(consumed[&p], want, "partition {p}");
    }
}

#[test]
fn legacy_join_group_members_leave_with_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut admin = Client::connect(addr);
    admin.create_topic("t", 2);
    let join = |c: &mut Client| match c.call(&Request::JoinGroup {
        group_id: "old".into(),
        topic: "t".into(),
    }) {
        Response::JoinGroup {
            error: ErrorCode::None,
            partitions,
            ..
        } => partitions,
        r => panic!("{r:?}"),
    };
    let mut x = Client::connect(addr);
    assert_eq!(join(&mut x), vec![0, 1]);
    let mut y = Client::connect(addr);
    assert_eq!(join(&mut y), vec![1]);
    assert_eq!(x.call(&Request::Disconnect).error_code(), ErrorCode::None);
    assert!(x.closed());
    // y's connection is alive; x left with its connection, so a new legacy member shares with y.
    let mut z = Client::connect(addr);
    let zp = join(&mut z);
    assert_eq!(zp.len(), 1);
}
