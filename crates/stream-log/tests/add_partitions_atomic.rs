//! Growing a topic is all or nothing: opening the new partition logs fails half-way (the
//! process runs out of file descriptors) after `topic.meta` was rewritten, and the grow is
//! rolled back: the store and the disk show the old count, the old partition keeps its data,
//! a retry succeeds and a reopen shows exactly the grown topic.
//!
//! A test binary of its own, like `create_topic_atomic.rs`: RLIMIT_NOFILE is process-wide,
//! and this file holds a single test.

mod common;

use common::{
    append_n, cfg, entries, keep_files_open, open_fds, read_all, restore_nofile, set_nofile,
    SPARE_FDS,
};
use stream_log::{Durability, LogError, TopicStore};

const PARTITIONS: u32 = 64;
#[test]
fn a_grow_that_runs_out_of_descriptors_is_rolled_back_and_can_be_retried() {
    let d = tempfile::tempdir().unwrap();
    let cfg = cfg(Durability::GroupCommit);
    let store = TopicStore::open_with(d.path(), cfg.clone(), keep_files_open()).unwrap();
    store.create_topic("orders", 1).unwrap();
    let first = store.partition("orders", 0).unwrap();
    append_n(&first, 5, 1);
    let dir = d.path().join("topics/orders");

    let old = set_nofile(open_fds() + SPARE_FDS);
    let r = store.add_partitions("orders", PARTITIONS);
    restore_nofile(&old);
    let e = r.expect_err("64 partition logs cannot be open with 16 spare descriptors");
    assert!(
        matches!(&e, LogError::Io { error, .. } if error.raw_os_error() == Some(libc::EMFILE)),
        "{e}"
    );
    assert_eq!(store.partition_count("orders"), Some(1));
    assert_eq!(
        entries(&dir),
        vec!["0".to_string(), "topic.meta".to_string()],
        "the metadata is back at one partition and the new directories are gone"
    );
    // The old partition is untouched and still takes appends through the old handle.
    append_n(&first, 1, 2);
    assert_eq!(read_all(&first, 0).len(), 6);

    store.add_partitions("orders", PARTITIONS).unwrap();
    assert_eq!(store.partition_count("orders"), Some(PARTITIONS));
    drop(first);
    store.flush_all().unwrap();
    drop(store);

    let store = TopicStore::open_with(d.path(), cfg, keep_files_open()).unwrap();
    assert_eq!(store.partition_count("orders"), Some(PARTITIONS));
    assert_eq!(read_all(&store.partition("orders", 0).unwrap(), 0).len(), 6);
    for p in 1..PARTITIONS {
        assert_eq!(
            store.partition("orders", p).unwrap().high_watermark(),
            0,
            "partition {p}"
        );
    }
    assert_eq!(entries(&dir).len(), PARTITIONS as usize + 1);
}
