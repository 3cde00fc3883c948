//! CREATE_TOPIC is all or nothing: opening the partition logs fails half-way (the process runs
//! out of file descriptors), and neither the store nor the disk keeps a trace of the topic, so
//! a retry succeeds and a reopen shows exactly the topic created by the retry.
//!
//! A test binary of its own: RLIMIT_NOFILE is process-wide, and this file holds a single test,
//! so no other test runs in the process while the limit is lowered.

mod common;

use common::{entries, keep_files_open, open_fds, restore_nofile, set_nofile, SPARE_FDS};
use stream_log::{Durability, LogConfig, LogError, Record, TopicStore};

const PARTITIONS: u32 = 64;
#[test]
fn create_that_runs_out_of_descriptors_leaves_no_trace_and_can_be_retried() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        // Dropping a half-opened topic must close its cached files and leave the shared
        // fsync workers alone.
        durability: Durability::GroupCommit,
        ..LogConfig::default()
    };
    let store = TopicStore::open_with(d.path(), cfg.clone(), keep_files_open()).unwrap();
    store.create_topic("before", 1).unwrap();
    let topics_dir = d.path().join("topics");

    let old = set_nofile(open_fds() + SPARE_FDS);
    let r = store.create_topic("orders", PARTITIONS);
    restore_nofile(&old);
    let e = r.expect_err("64 partition logs cannot be open with 16 spare descriptors");
    assert!(
        matches!(&e, LogError::Io { error, .. } if error.raw_os_error() == Some(libc::EMFILE)),
        "{e}"
    );
    assert_eq!(store.topics(), vec![("before".to_string(), 1)]);
    assert_eq!(store.partition_count("orders"), None);
    // Nothing left on disk either: no topic directory, no staging or deleting leftover.
    assert_eq!(entries(&topics_dir), vec!["before".to_string()]);

    store.create_topic("orders", PARTITIONS).unwrap();
    assert_eq!(
        store.topics(),
        vec![
            ("before".to_string(), 1),
            ("orders".to_string(), PARTITIONS)
        ]
    );
    let p = store.partition("orders", PARTITIONS - 1).unwrap();
    let rec = Record {
        timestamp_ms: 1,
        key: b"k",
        value: b"v",
        priority: 0,
        codec: 0,
    };
    assert_eq!(p.append(&[rec]).unwrap().base_offset, 0);
    drop(p);
    store.flush_all().unwrap();
    drop(store);

    let store = TopicStore::open_with(d.path(), cfg, keep_files_open()).unwrap();
    assert_eq!(
        store.topics(),
        vec![
            ("before".to_string(), 1),
            ("orders".to_string(), PARTITIONS)
        ]
    );
    for p in 0..PARTITIONS {
        let log = store.partition("orders", p).unwrap();
        let hw = if p == PARTITIONS - 1 { 1 } else { 0 };
        assert_eq!(log.high_watermark(), hw, "partition {p}");
        assert_eq!(log.log_start_offset(), 0, "partition {p}");
    }
    assert_eq!(
        entries(&topics_dir.join("orders")).len(),
        PARTITIONS as usize + 1,
        "topic.meta and one directory per partition"
    );
}
