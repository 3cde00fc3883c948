//! Growing a topic (`TopicStore::add_partitions`): the new partitions survive a reopen, the
//! old ones keep their data and their handles, counts that do not grow or exceed a limit are
//! refused without a trace, and what an uncommitted grow left on disk neither breaks an open
//! nor the next grow.

mod common;

use std::fs;

use common::*;
use stream_log::{
    Durability, LogConfig, LogError, StoreLimits, StoreOptions, TopicStore, MAX_PARTITIONS,
};

fn cfg() -> LogConfig {
    LogConfig {
        durability: Durability::GroupCommit,
        ..LogConfig::default()
    }
}

#[test]
fn a_grown_topic_keeps_its_data_and_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = TopicStore::open(d.path(), cfg()).unwrap();
        s.create_topic("orders", 1).unwrap();
        s.create_topic("other", 2).unwrap();
        let old = s.partition("orders", 0).unwrap();
        append_n(&old, 5, 1);
        s.add_partitions("orders", 3).unwrap();
        assert_eq!(s.partition_count("orders"), Some(3));
        assert_eq!(s.total_partitions(), 5);
        // The handle taken before the grow is the same log, still open for appends.
        append_n(&old, 2, 2);
        assert_eq!(s.partition("orders", 0).unwrap().high_watermark(), 7);
        let new = s.partition("orders", 2).unwrap();
        assert_eq!(new.high_watermark(), 0);
        append_n(&new, 4, 3);
        assert_eq!(read_all(&new, 0).len(), 4);
        assert_eq!(s.partition("other", 1).unwrap().high_watermark(), 0);
        s.flush_all().unwrap();
    }
    let s = TopicStore::open(d.path(), cfg()).unwrap();
    assert_eq!(
        s.topics(),
        vec![("orders".to_string(), 3), ("other".to_string(), 2)]
    );
    for (p, n) in [(0, 7), (1, 0), (2, 4)] {
        let log = s.partition("orders", p).unwrap();
        let recs = read_all(&log, 0);
        assert_eq!(recs.len(), n, "partition {p}");
        for r in &recs {
            check_record(r, p);
        }
    }
    // And it grows again after the reopen.
    s.add_partitions("orders", 4).unwrap();
    assert_eq!(s.partition_count("orders"), Some(4));
}

#[test]
fn counts_that_do_not_grow_or_exceed_a_limit_are_refused_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        limits: StoreLimits {
            max_topics: 10,
            max_total_partitions: 6,
        },
        ..StoreOptions::default()
    };
    let s = TopicStore::open_with(d.path(), cfg(), options).unwrap();
    s.create_topic("t", 2).unwrap();
    s.create_topic("u", 1).unwrap();
    for total in [0, 1, 2] {
        let e = s.add_partitions("t", total).unwrap_err();
        assert!(matches!(e, LogError::InvalidConfig(_)), "{total}: {e:?}");
        let msg = e.to_string();
        for part in ["\"t\"", "2 partitions", &total.to_string()] {
            assert!(msg.contains(part), "{part} missing from: {msg}");
        }
    }
    let e = s.add_partitions("t", MAX_PARTITIONS + 1).unwrap_err();
    assert!(matches!(e, LogError::InvalidConfig(_)), "{e:?}");
    assert!(e.to_string().contains(&MAX_PARTITIONS.to_string()), "{e}");
    // 3 exist, the store holds 6: growing t to 6 would add 4.
    let e = s.add_partitions("t", 6).unwrap_err();
    assert!(
        matches!(
            &e,
            LogError::LimitReached {
                what: "partitions",
                current: 3,
                requested: 4,
                max: 6,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    for part in ["add partitions", "\"t\"", "--max-partitions"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert!(matches!(
        s.add_partitions("missing", 3),
        Err(LogError::TopicNotFound { .. })
    ));
    assert_eq!(s.partition_count("t"), Some(2));
    let dir = d.path().join("topics/t");
    assert!(!dir.join("2").exists(), "a refused grow lays nothing out");
    // Up to the limit is fine.
    s.add_partitions("t", 5).unwrap();
    assert_eq!(s.total_partitions(), 6);
}

#[test]
fn an_uncommitted_grow_is_ignored_on_open_and_replaced_by_the_next_grow() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("topics/t");
    {
        let s = TopicStore::open(d.path(), cfg()).unwrap();
        s.create_topic("t", 1).unwrap();
        append_n(&s.partition("t", 0).unwrap(), 3, 1);
        s.flush_all().unwrap();
    }
    // What a grow to 3 that crashed before its commit leaves: partition directories beyond
    // the count in topic.meta (one of them with data in it), and maybe a temporary metadata
    // file that never got renamed.
    {
        let s = TopicStore::open(d.path(), cfg()).unwrap();
        s.create_topic("scratch", 2).unwrap();
        append_n(&s.partition("scratch", 1).unwrap(), 2, 1);
        s.flush_all().unwrap();
    }
    let scratch = d.path().join("topics/scratch");
    fs::rename(scratch.join("1"), dir.join("1")).unwrap();
    fs::rename(scratch.join("0"), dir.join("2")).unwrap();
    fs::remove_dir_all(&scratch).unwrap();
    fs::write(dir.join("topic.meta.tmp"), "format=1\npartitions=3\n").unwrap();

    let s = TopicStore::open(d.path(), cfg()).unwrap();
    assert_eq!(
        s.partition_count("t"),
        Some(1),
        "the leftovers are not committed"
    );
    assert!(matches!(
        s.partition("t", 1),
        Err(LogError::PartitionNotFound { .. })
    ));
    assert_eq!(s.partition("t", 0).unwrap().high_watermark(), 3);

    s.add_partitions("t", 3).unwrap();
    for p in [1, 2] {
        assert_eq!(
            s.partition("t", p).unwrap().high_watermark(),
            0,
            "partition {p} starts empty, not with the leftover's records"
        );
    }
    assert!(!dir.join("topic.meta.tmp").exists());
    drop(s);
    let s = TopicStore::open(d.path(), cfg()).unwrap();
    assert_eq!(s.partition_count("t"), Some(3));
    assert_eq!(s.partition("t", 1).unwrap().high_watermark(), 0);
    assert_eq!(s.partition("t", 0).unwrap().high_watermark(), 3);
}
