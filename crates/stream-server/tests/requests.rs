//! Every request type round-trips through the real server, with its error cases.

mod common;

use bytes::Bytes;
use common::{start, Client};
use stream_proto::*;

#[test]
fn every_request_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);

    // API_VERSIONS lists every type we serve.
    match c.call(&Request::ApiVersions) {
        Response::ApiVersions { error, versions } => {
            assert_eq!(error, ErrorCode::None);
            for t in RequestType::ALL {
                assert!(versions.iter().any(|v| v.type_id == t.id()), "{t:?}");
            }
        }
        r => panic!("{r:?}"),
    }

    // CREATE_TOPIC, duplicates and bad counts.
    assert_eq!(c.create_topic("orders", 4).error, ErrorCode::None);
    assert_eq!(
        c.create_topic("orders", 4).error,
        ErrorCode::TopicAlreadyExists
    );
    assert_eq!(c.create_topic("zero", 0).error, ErrorCode::InvalidRequest);
    assert_eq!(c.create_topic("other", 1).error, ErrorCode::None);

    // METADATA and LIST_TOPICS.
    match c.call(&Request::Metadata) {
        Response::Metadata { error, topics } => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(
                topics,
                vec![
                    TopicInfo {
                        name: "orders".into(),
                        partitions: 4
                    },
                    TopicInfo {
                        name: "other".into(),
                        partitions: 1
                    }
                ]
            );
        }
        r => panic!("{r:?}"),
    }
    match c.call(&Request::ListTopics) {
        Response::ListTopics { error, topics } => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(topics, vec!["orders".to_string(), "other".to_string()]);
        }
        r => panic!("{r:?}"),
    }

    // PRODUCE: keyed messages land on murmur3(key) % 4; empty keys go round robin.
    for i in 0..20u32 {
        let key = format!("key-{i}");
        let (p, _) = c.produce("orders", key.as_bytes(), b"v");
        assert_eq!(p, partition_for_key(key.as_bytes(), 4));
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(c.produce("orders", b"", b"rr").0);
    }
    assert_eq!(seen.len(), 4, "round robin covers all partitions");
    match c.call(&common::produce_req("nope", b"k", b"v")) {
        Response::Produce { error, .. } => assert_eq!(error, ErrorCode::TopicNotFound),
        r => panic!("{r:?}"),
    }

    // FETCH returns CRC-valid messages in offset order with the high watermark.
    let (p, off) = c.produce("other", b"k", b"hello");
    assert_eq!((p, off), (0, 0));
    c.produce("other", b"k", b"world");
    let f = c.fetch("other", 0, 0, 10);
    assert_eq!(f.error, ErrorCode::None);
    assert_eq!(f.high_watermark, 2);
    let msgs = f.messages().unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m.verify()));
    assert_eq!(&msgs[1].value[..], b"world");
    assert_eq!(msgs[1].offset, 1);
    assert_eq!(msgs[0].priority, 2);
    assert_eq!(c.fetch("other", 0, 1, 1).messages().unwrap().len(), 1);
    assert_eq!(c.fetch("other", 0, 2, 10).count, 0);
    assert_eq!(c.fetch("other", 0, 5, 10).error, ErrorCode::InvalidOffset);
    assert_eq!(
        c.fetch("other", 9, 0, 10).error,
        ErrorCode::PartitionNotFound
    );
    assert_eq!(c.fetch("nope", 0, 0, 10).error, ErrorCode::TopicNotFound);

    // BATCH_PRODUCE to an explicit partition and by key.
    let recs: Vec<ProduceRecord> = (0..10)
        .map(|i| ProduceRecord {
            key: Bytes::from(format!("b{i}")),
            value: Bytes::from(format!("value-{i}")),
            priority: 1,
        })
        .collect();
    match c.call(&Request::BatchProduce {
        topic: "other".into(),
        partition: 0,
        records: recs.clone(),
    }) {
        Response::BatchProduce { error, offsets, .. } => {
            assert_eq!(error, ErrorCode::None);
            let o: Vec<u64> = offsets.iter().map(|o| o.offset).collect();
            assert_eq!(o, (2..12).collect::<Vec<_>>());
        }
        r => panic!("{r:?}"),
    }
    match c.call(&Request::BatchProduce {
        topic: "orders".into(),
        partition: PARTITION_ANY,
        records: recs.clone(),
    }) {
        Response::BatchProduce { error, offsets, .. } => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(offsets.len(), 10);
            for (r, o) in recs.iter().zip(&offsets) {
                assert_eq!(o.partition, partition_for_key(&r.key, 4));
                let m = c
                    .fetch("orders", o.partition, o.offset, 1)
                    .messages()
                    .unwrap();
                assert_eq!(m[0].value, r.value);
                assert_eq!(m[0].key, r.key);
            }
        }
        r => panic!("{r:?}"),
    }
    match c.call(&Request::BatchProduce {
        topic: "other".into(),
        partition: 3,
        records: recs,
    }) {
        Response::BatchProduce { error, .. } => assert_eq!(error, ErrorCode::PartitionNotFound),
        r => panic!("{r:?}"),
    }

    // FETCH_WAIT: immediate when data is there; waits for a produce from another connection;
    // times out empty otherwise; honours max_bytes (but returns at least one message).
    let fw = |offset, max_bytes, wait| Request::FetchWait {
        topic: "other".into(),
        partition: 0,
        offset,
        max_messages: 100,
        max_bytes,
        max_wait_ms: wait,
    };
    match c.call(&fw(0, 1, 1000)) {
        Response::FetchWait {
            log_start_offset,
            fetch,
        } => {
            assert_eq!(log_start_offset, 0);
            assert_eq!(fetch.count, 1);
        }
        r => panic!("{r:?}"),
    }
    let t = std::time::Instant::now();
    match c.call(&fw(12, 0, 200)) {
        Response::FetchWait { fetch, .. } => {
            assert_eq!(fetch.error, ErrorCode::None);
            assert_eq!(fetch.count, 0);
            assert!(t.elapsed() >= std::time::Duration::from_millis(150));
        }
        r => panic!("{r:?}"),
    }
    c.send(&fw(12, 0, 20_000));
    let mut other = Client::connect(addr);
    other.produce("other", b"", b"late");
    match c.recv() {
        Response::FetchWait { fetch, .. } => {
            let m = fetch.messages().unwrap();
            assert_eq!(m.len(), 1);
            assert_eq!(&m[0].value[..], b"late");
        }
        r => panic!("{r:?}"),
    }

    // Groups: JOIN_GROUP (original), JOIN_GROUP_V2, HEARTBEAT both forms, commits, offsets.
    match c.call(&Request::JoinGroup {
        group_id: "legacy".into(),
        topic: "orders".into(),
    }) {
        Response::JoinGroup {
            error,
            consumer_id,
            partitions,
            ..
        } => {
            assert_eq!(error, ErrorCode::None);
            assert!(!consumer_id.is_empty());
            assert_eq!(partitions, vec![0, 1, 2, 3]);
            match c.call(&Request::LeaveGroup {
                group_id: "legacy".into(),
                consumer_id,
            }) {
                Response::LeaveGroup(s) => assert_eq!(s.error, ErrorCode::None),
                r => panic!("{r:?}"),
            }
        }
        r => panic!("{r:?}"),
    }
    let (id, generation) = match c.call(&Request::JoinGroupV2 {
        group_id: "g".into(),
        topic: "orders".into(),
        consumer_id: String::new(),
        session_timeout_ms: 30_000,
    }) {
        Response::JoinGroupV2 {
            error,
            consumer_id,
            generation,
            partitions,
            ..
        } => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(partitions, vec![0, 1, 2, 3]);
            (consumer_id, generation)
        }
        r => panic!("{r:?}"),
    };
    match c.call(&Request::Heartbeat(None)) {
        Response::Heartbeat(s) => assert_eq!(s.error, ErrorCode::None),
        r => panic!("{r:?}"),
    }
    let hb = |g| {
        Request::Heartbeat(Some(GroupHeartbeat {
            group_id: "g".into(),
            consumer_id: id.clone(),
            generation: g,
        }))
    };
    assert_eq!(c.call(&hb(generation)).error_code(), ErrorCode::None);
    assert_eq!(
        c.call(&hb(generation + 7)).error_code(),
        ErrorCode::RebalanceInProgress
    );
    let gc = |g, p, o| Request::GroupCommit {
        group_id: "g".into(),
        consumer_id: id.clone(),
        generation: g,
        topic: "orders".into(),
        partition: p,
        offset: o,
    };
    assert_eq!(c.call(&gc(generation, 1, 3)).error_code(), ErrorCode::None);
    assert_eq!(
        c.call(&gc(generation + 1, 1, 3)).error_code(),
        ErrorCode::IllegalGeneration
    );
    let fo = |g: &str, p| Request::FetchOffset {
        group_id: g.into(),
        topic: "orders".into(),
        partition: p,
    };
    assert_eq!(
        c.call(&fo("g", 1)),
        Response::FetchOffset {
            error: ErrorCode::None,
            offset: 3
        }
    );
    assert_eq!(c.call(&fo("g", 2)).error_code(), ErrorCode::InvalidOffset);
    match c.call(&Request::CommitOffset {
        group_id: "plain".into(),
        topic: "orders".into(),
        partition: 2,
        offset: 1,
    }) {
        Response::CommitOffset(s) => assert_eq!(s.error, ErrorCode::None, "{}", s.message),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        c.call(&fo("plain", 2)),
        Response::FetchOffset {
            error: ErrorCode::None,
            offset: 1
        }
    );
    assert_eq!(
        c.call(&Request::CommitOffset {
            group_id: "plain".into(),
            topic: "orders".into(),
            partition: 2,
            offset: 1_000_000,
        })
        .error_code(),
        ErrorCode::InvalidOffset
    );

    // DELETE_TOPIC.
    match c.call(&Request::DeleteTopic {
        name: "orders".into(),
    }) {
        Response::DeleteTopic(s) => assert_eq!(s.error, ErrorCode::None, "{}", s.message),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        c.call(&Request::DeleteTopic {
            name: "orders".into()
        })
        .error_code(),
        ErrorCode::TopicNotFound
    );
    assert_eq!(c.fetch("orders", 0, 0, 1).error, ErrorCode::TopicNotFound);

    // DISCONNECT: answered, then closed.
    assert_eq!(c.call(&Request::Disconnect).error_code(), ErrorCode::None);
    assert!(c.closed());

    let status = server.terminate(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", server.log_text());
}

#[test]
fn pipelined_responses_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    // Create + produce + fetch pipelined in one write: processed in order.
    let mut wire = Vec::new();
    wire.extend_from_slice(
        &Request::CreateTopic {
            name: "p".into(),
            partitions: 1,
        }
        .to_frame(),
    );
    for i in 0..2000u32 {
        wire.extend_from_slice(&common::produce_req("p", b"", &i.to_le_bytes()).to_frame());
        if i % 500 == 0 {
            wire.extend_from_slice(&Request::ListTopics.to_frame());
        }
    }
    wire.extend_from_slice(
        &Request::Fetch {
            topic: "p".into(),
            partition: 0,
            offset: 0,
            max_messages: 5000,
        }
        .to_frame(),
    );
    c.send_raw(&wire);
    assert_eq!(c.recv().error_code(), ErrorCode::None);
    let mut next = 0u64;
    for i in 0..2000u32 {
        match c.recv() {
            Response::Produce { error, offset, .. } => {
                assert_eq!(error, ErrorCode::None);
                assert_eq!(offset, next);
                next += 1;
            }
            r => panic!("{r:?}"),
        }
        if i % 500 == 0 {
            assert!(matches!(c.recv(), Response::ListTopics { .. }));
        }
    }
    match c.recv() {
        Response::Fetch(f) => {
            let m = f.messages().unwrap();
            assert_eq!(m.len(), 2000);
            for (i, m) in m.iter().enumerate() {
                assert_eq!(&m.value[..], &(i as u32).to_le_bytes());
            }
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn guide_python_snippet_shape_list_topics() {
    // The guide's client sends type 12 with an empty payload and reads the 16-byte header then
    // `length` bytes: check the exact bytes for an empty broker.
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    c.send_raw(&[0x50, 0x52, 0x54, 0x53, 1, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0]);
    let f = c.recv_frame().unwrap();
    assert_eq!(f.header, Header::new(12, 6));
    assert_eq!(&f.payload[..], &[0, 0, 0, 0, 0, 0]);
}

/// Starts a server on `dir` with metrics on a free port: (process, STRP address, metrics address).
fn start_with_metrics(
    dir: &std::path::Path,
) -> (
    test_support::ServerProcess,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let (server, addr) = start(dir, &["--metrics-port=0"]);
    let mline = server
        .log_text()
        .lines()
        .find(|l| l.contains("metrics on"))
        .map(str::to_string)
        .expect("metrics line before the listening line");
    let maddr = mline
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.parse().ok())
        .expect("metrics address");
    (server, addr, maddr)
}

/// Scrapes /metrics until the text contains every one of `needles` (gauges refresh once a
/// second), or gives up after 10 s and returns the last scrape.
fn scrape_until(maddr: std::net::SocketAddr, needles: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut got = String::new();
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(maddr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        got.clear();
        s.read_to_string(&mut got).unwrap();
        if needles.iter().all(|n| got.contains(n)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    got
}

/// The lag gauge line of group "lagging".
fn lag_line(metrics: &str) -> &str {
    metrics
        .lines()
        .find(|l| l.starts_with("strp_consumer_group_lag") && l.contains("lagging"))
        .unwrap_or_else(|| panic!("no lag line for group lagging:\n{metrics}"))
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr, maddr) = start_with_metrics(dir.path());
    let mut c = Client::connect(addr);
    c.create_topic("m", 2);
    let (p, _) = c.produce("m", b"k", b"v");
    c.produce("m", b"k", b"v2");
    assert_eq!(
        c.call(&Request::CommitOffset {
            group_id: "lagging".into(),
            topic: "m".into(),
            partition: p,
            offset: 1,
        })
        .error_code(),
        ErrorCode::None
    );
    let got = scrape_until(
        maddr,
        &["strp_partition_size_bytes", "strp_consumer_group_lag"],
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    for name in [
        "strp_requests_total",
        "strp_request_duration_seconds",
        "strp_bytes_in_total",
        "strp_bytes_out_total",
        "strp_partition_size_bytes",
        "strp_consumer_group_lag",
    ] {
        assert!(got.contains(name), "{name} missing:\n{got}");
    }
    let lag = lag_line(&got);
    assert!(lag.trim_end().ends_with(" 1"), "one message behind: {lag}");
    assert!(server
        .terminate(std::time::Duration::from_secs(30))
        .success());

    // After a restart, with no member of the group connected, its lag is still reported, and
    // follows new messages.
    let (mut server, addr, maddr) = start_with_metrics(dir.path());
    let mut c = Client::connect(addr);
    for _ in 0..3 {
        // The same key lands on the same partition.
        assert_eq!(c.produce("m", b"k", b"v3").0, p);
    }
    let got = scrape_until(maddr, &["strp_consumer_group_lag{group=\"lagging\""]);
    let lag = lag_line(&got);
    assert!(
        lag.trim_end().ends_with(" 4"),
        "four messages behind: {lag}"
    );
    let _ = server.terminate(std::time::Duration::from_secs(30));
}

#[test]
fn every_durability_policy_serves_produce_and_fetch() {
    for policy in ["every-write", "interval:50ms", "never", "group-commit"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut server, addr) = start(dir.path(), &[&format!("--durability={policy}")]);
        let mut c = Client::connect(addr);
        c.create_topic("d", 2);
        for i in 0..50u32 {
            c.produce("d", format!("k{i}").as_bytes(), b"v");
        }
        match c.call(&Request::BatchProduce {
            topic: "d".into(),
            partition: PARTITION_ANY,
            records: (0..50)
                .map(|i| ProduceRecord {
                    key: Bytes::from(format!("b{i}")),
                    value: Bytes::from_static(b"w"),
                    priority: 3,
                })
                .collect(),
        }) {
            Response::BatchProduce { error, offsets, .. } => {
                assert_eq!(error, ErrorCode::None, "{policy}");
                assert_eq!(offsets.len(), 50);
            }
            r => panic!("{r:?}"),
        }
        let n: usize = (0..2).map(|p| c.fetch_all("d", p, 0).len()).sum();
        assert_eq!(n, 100, "{policy}");
        assert!(server
            .terminate(std::time::Duration::from_secs(30))
            .success());
    }
}

#[test]
fn many_connections_are_served_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    Client::connect(addr).create_topic("many", 4);
    let threads: Vec<_> = (0..64u32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut mine = Vec::new();
                for i in 0..50u32 {
                    let v = format!("{t}-{i}");
                    let (p, o) = c.produce("many", format!("key-{t}").as_bytes(), v.as_bytes());
                    mine.push((p, o, v));
                }
                for (p, o, v) in mine {
                    let m = c.fetch("many", p, o, 1).messages().unwrap();
                    assert_eq!(m[0].value, Bytes::from(v));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = Client::connect(addr);
    let total: usize = (0..4).map(|p| c.fetch_all("many", p, 0).len()).sum();
    assert_eq!(total, 64 * 50);
}

#[test]
fn metrics_endpoint_bounds_its_connections() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _addr, maddr) = start_with_metrics(dir.path());
    // Scrapers that connect and never send a request hold every slot...
    let holders: Vec<_> = (0..stream_server::metrics::MAX_SCRAPERS)
        .map(|_| std::net::TcpStream::connect(maddr).unwrap())
        .collect();
    // ...so one more is closed at once, without an answer.
    let mut extra = std::net::TcpStream::connect(maddr).unwrap();
    server.wait_for_line("refusing a scraper", std::time::Duration::from_secs(30));
    let mut got = Vec::new();
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let _ = extra.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // Once they go, scraping works again (as soon as the server has seen them close: until
    // then a scrape may still be refused, so try again, for at most 30 s).
    drop(holders);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(maddr).unwrap();
        let mut page = String::new();
        let got = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .and_then(|()| s.read_to_string(&mut page));
        if got.is_ok() && page.starts_with("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scraping never worked again"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn group_ids_longer_than_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    c.create_topic("t", 1);
    let long = "g".repeat(stream_proto::MAX_GROUP_ID_LEN + 1);
    for req in [
        Request::JoinGroup {
            group_id: long.clone(),
            topic: "t".into(),
        },
        Request::CommitOffset {
            group_id: long.clone(),
            topic: "t".into(),
            partition: 0,
            offset: 1,
        },
    ] {
        let r = c.call(&req);
        assert_eq!(r.error_code(), ErrorCode::InvalidRequest, "{r:?}");
        assert!(
            format!("{r:?}").contains("longer than the 255 allowed"),
            "{r:?}"
        );
    }
    let ok = "g".repeat(stream_proto::MAX_GROUP_ID_LEN);
    let r = c.call(&Request::CommitOffset {
        group_id: ok,
        topic: "t".into(),
        partition: 0,
        offset: 0,
    });
    assert_eq!(r.error_code(), ErrorCode::None, "{r:?}");
}
