//! The server against the limits of its storage: a data directory already in use by another
//! server, a file-size limit (RLIMIT_FSIZE) reached while producing, and the partition limit.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{produce_req, start, Client};
use stream_proto::*;
use test_support::{bin_path, parse_addr, ServerProcess};

fn metadata(c: &mut Client) -> Vec<TopicInfo> {
    match c.call(&Request::Metadata) {
        Response::Metadata { error, topics } => {
            assert_eq!(error, ErrorCode::None);
            topics
        }
        r => panic!("unexpected {r:?}"),
    }
}

/// Starts a second server on `dir`, which must refuse to start: waits (bounded, so that a
/// second server that does start fails the test instead of hanging it) for its refusal line
/// and its exit. Returns its exit status and everything it printed.
fn run_second(dir: &Path) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.arg(format!("--data-dir={}", dir.display()))
        .args(["--port=0", "--bind=127.0.0.1", "--metrics-port=off"])
        .env("RUST_LOG", "info");
    let (mut p, _) = ServerProcess::spawn_with_timeout(
        cmd,
        "is in use by another stream-server",
        Duration::from_secs(30),
    );
    let status = p.wait_exit(Duration::from_secs(30));
    (status, p.log_text())
}

#[test]
fn second_server_on_the_same_data_dir_exits_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    c.produce("t", b"", b"one");

    let (status, text) = run_second(dir.path());
    assert_eq!(status.code(), Some(1), "{text}");
    let expected = format!(
        "data directory {} is in use by another stream-server (pid {}; lock file {})",
        dir.path().display(),
        first.pid(),
        dir.path().join(".lock").display()
    );
    assert!(text.contains(&expected), "want {expected:?} in:\n{text}");
    assert!(!text.contains("listening on"), "{text}");

    // The first is untouched and still serves.
    c.produce("t", b"", b"two");
    let values: Vec<_> = c
        .fetch_all("t", 0, 0)
        .into_iter()
        .map(|m| m.value)
        .collect();
    assert_eq!(values, vec![&b"one"[..], &b"two"[..]]);
    assert_eq!(metadata(&mut c).len(), 1);

    // A SIGKILLed owner leaves its lock file behind, but not its lock.
    first.kill9();
    let (mut third, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.fetch_all("t", 0, 0).len(), 2);
    let (status, text) = run_second(dir.path());
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("(pid {};", third.pid())), "{text}");
    assert!(third.terminate(Duration::from_secs(30)).success());

    // And after a clean stop, too.
    let (mut fourth, _) = start(dir.path(), &[]);
    assert!(fourth.terminate(Duration::from_secs(30)).success());
}

/// Bytes of one stored record: u32 length + 34 fixed Message bytes + key + value.
fn frame_len(key: usize, value: usize) -> u64 {
    (4 + 34 + key + value) as u64
}

#[test]
fn file_size_limit_answers_storage_error_and_keeps_the_server_alive() {
    const VALUE: usize = 962; // 1000-byte records
    const FITTING: u64 = 10;
    // Ten records fit, the eleventh does not, a small one after them still does.
    let limit = FITTING * frame_len(0, VALUE) + 500;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.arg(format!("--data-dir={}", dir.path().display()))
        .args(["--port=0", "--bind=127.0.0.1", "--metrics-port=off"])
        .env("RUST_LOG", "info");
    // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut server, line) = ServerProcess::spawn(cmd, "listening on");
    let addr = parse_addr(&line).unwrap();
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("big", 1).error, ErrorCode::None);

    let value = vec![b'x'; VALUE];
    let mut acked = Vec::new();
    let refused = loop {
        match c.call(&produce_req("big", b"", &value)) {
            Response::Produce {
                error: ErrorCode::None,
                offset,
                ..
            } => {
                assert!(acked.len() < 100, "the limit was never hit");
                acked.push(offset);
            }
            Response::Produce { error, message, .. } => break (error, message),
            r => panic!("unexpected {r:?}"),
        }
    };
    assert_eq!(refused.0, ErrorCode::StorageError, "{}", refused.1);
    assert!(refused.1.contains("File too large"), "{}", refused.1);
    assert_eq!(acked, (0..FITTING).collect::<Vec<_>>());

    // Alive, answering, and every acknowledged message is there, intact.
    assert_eq!(
        metadata(&mut c),
        vec![TopicInfo {
            name: "big".into(),
            partitions: 1
        }]
    );
    match c.call(&Request::ListTopics) {
        Response::ListTopics { error, topics } => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(topics, vec!["big".to_string()]);
        }
        r => panic!("unexpected {r:?}"),
    }
    let msgs = c.fetch_all("big", 0, 0);
    assert_eq!(msgs.len() as u64, FITTING);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.offset, i as u64);
        assert_eq!(&m.value[..], &value[..]);
        assert!(m.verify());
    }
    // The failed write was cut back: a record that fits goes right after the last good one.
    let (_, offset) = c.produce("big", b"", b"small");
    assert_eq!(offset, FITTING);
    assert_eq!(
        &c.fetch("big", 0, FITTING, 1).messages().unwrap()[0].value[..],
        b"small"
    );
    // Still a clean shutdown, and a restart (without the limit) recovers the same log.
    assert!(server.terminate(Duration::from_secs(30)).success());
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.fetch_all("big", 0, 0).len() as u64, FITTING + 1);
}

#[test]
fn partition_limit_is_the_storage_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &["--durability=never"]);
    let mut c = Client::connect(addr);
    for n in [0u32, 1025, 10_000, 10_001, u32::MAX] {
        let s = c.create_topic("too-many", n);
        assert_eq!(s.error, ErrorCode::InvalidRequest, "{n}: {}", s.message);
        assert_eq!(
            s.message,
            format!("partitions must be 1..=1024, got {n}"),
            "{n}"
        );
    }
    assert!(metadata(&mut c).is_empty());
    assert_eq!(c.create_topic("most", 1024).error, ErrorCode::None);
    assert_eq!(
        metadata(&mut c),
        vec![TopicInfo {
            name: "most".into(),
            partitions: 1024
        }]
    );
}
