//! Issue 11: under `nofile=1024` the broker used to accept 63 topics of 16 partitions, fail the
//! 64th (a descriptor per partition) and then not restart until a topic directory was deleted
//! by hand. With the open-file cache it takes more, restarts under the same limit and serves
//! every topic, with a fixed set of threads; the limits on topics and partitions are flags
//! whose error names them.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::Client;
use stream_proto::*;
use test_support::{bin_path, parse_addr, ServerProcess};

const TOPICS: u32 = 80;
const PARTITIONS: u32 = 16;

/// stream-server under `prlimit --nofile=1024:1024` (soft and hard: the server cannot raise it).
fn start_limited(dir: &Path, extra: &[&str]) -> (ServerProcess, std::net::SocketAddr) {
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=1024:1024")
        .arg(bin_path("stream-server"))
        .arg(format!("--data-dir={}", dir.display()))
        .args(["--port=0", "--bind=127.0.0.1", "--metrics-port=off"])
        .args(extra)
        .env("RUST_LOG", "info");
    let (p, line) = ServerProcess::spawn(cmd, "listening on");
    let addr = parse_addr(&line).expect("address in the listening line");
    (p, addr)
}

fn count(pid: u32, what: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{what}"))
        .unwrap()
        .count()
}

fn check_costs(server: &ServerProcess, when: &str) {
    let (threads, fds) = (count(server.pid(), "task"), count(server.pid(), "fd"));
    eprintln!("{when}: {threads} threads, {fds} descriptors");
    // tokio's 4 I/O and up to 8 blocking threads, 2 fsync workers and a timer, main.
    assert!(threads <= 32, "{when}: {threads} threads");
    // The default cache is a quarter of the limit: the rest stays free for connections.
    assert!(fds <= 1024 / 4 + 64, "{when}: {fds} descriptors");
}

fn topic(t: u32) -> String {
    format!("t{t:03}")
}

#[test]
fn more_topics_than_descriptors_are_created_and_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start_limited(dir.path(), &[]);
    let mut c = Client::connect(addr);
    for t in 0..TOPICS {
        let s = c.create_topic(&topic(t), PARTITIONS);
        assert_eq!(s.error, ErrorCode::None, "topic {t}: {}", s.message);
    }
    let mut sent = Vec::new();
    for t in 0..TOPICS {
        let v = format!("v{t}");
        let (p, o) = c.produce(&topic(t), format!("k{t}").as_bytes(), v.as_bytes());
        sent.push((t, p, o, v));
    }
    check_costs(&server, "after creating 1,280 partitions");
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");

    let (server, addr) = start_limited(dir.path(), &[]);
    let mut c = Client::connect(addr);
    match c.call(&Request::Metadata) {
        Response::Metadata { topics, .. } => {
            assert_eq!(topics.len(), TOPICS as usize);
            assert!(topics.iter().all(|t| t.partitions == PARTITIONS));
        }
        r => panic!("{r:?}"),
    }
    for (t, p, o, v) in &sent {
        let m = c.fetch(&topic(*t), *p, *o, 1).messages().unwrap();
        assert_eq!(m[0].value, Bytes::from(v.clone()));
    }
    // Every partition takes appends again (each needs its file back from the cache).
    for t in (0..TOPICS).step_by(7) {
        for p in 0..PARTITIONS {
            let r = c.call(&Request::BatchProduce {
                topic: topic(t),
                partition: p,
                records: vec![ProduceRecord {
                    key: Bytes::new(),
                    value: Bytes::from_static(b"again"),
                    priority: 0,
                }],
            });
            assert!(
                matches!(
                    &r,
                    Response::BatchProduce {
                        error: ErrorCode::None,
                        ..
                    }
                ),
                "{r:?}"
            );
        }
    }
    check_costs(&server, "after the restart");
}

#[test]
fn topic_and_partition_limits_are_flags_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = common::start(
        dir.path(),
        &[
            "--max-topics=2",
            "--max-partitions=5",
            "--sync-threads=1",
            "--max-open-files=8",
        ],
    );
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("a", 4).error, ErrorCode::None);
    let s = c.create_topic("b", 2);
    assert_ne!(s.error, ErrorCode::None);
    assert!(s.message.contains("--max-partitions"), "{}", s.message);
    assert_eq!(c.create_topic("b", 1).error, ErrorCode::None);
    let s = c.create_topic("c", 1);
    assert_ne!(s.error, ErrorCode::None);
    assert!(s.message.contains("--max-topics"), "{}", s.message);
}
