//! The store's limits on topics and total partitions are configuration: a create past one is
//! refused with an error naming the limit and the server flag that sets it, leaves nothing
//! behind, and a store holding more than a lowered limit still opens and serves.

use stream_log::{Durability, LogConfig, LogError, StoreLimits, StoreOptions, TopicStore};

fn cfg() -> LogConfig {
    LogConfig {
        durability: Durability::Never,
        ..LogConfig::default()
    }
}

fn limited(max_topics: u64, max_total_partitions: u64) -> StoreOptions {
    StoreOptions {
        limits: StoreLimits {
            max_topics,
            max_total_partitions,
        },
        ..StoreOptions::default()
    }
}

#[test]
fn the_topic_limit_refuses_one_more_topic_with_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let s = TopicStore::open_with(d.path(), cfg(), limited(3, 1000)).unwrap();
    for name in ["a", "b", "c"] {
        s.create_topic(name, 2).unwrap();
    }
    let e = s.create_topic("d", 1).unwrap_err();
    assert!(
        matches!(
            &e,
            LogError::LimitReached {
                what: "topics",
                current: 3,
                max: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    for part in ["\"d\"", "topics", "3", "--max-topics", "STREAM_MAX_TOPICS"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert_eq!(s.topics().len(), 3);
    assert!(!d.path().join("topics").join("d").exists());
    // Deleting one makes room again.
    s.delete_topic("a").unwrap();
    s.create_topic("d", 1).unwrap();
}

#[test]
fn the_partition_limit_counts_every_topic() {
    let d = tempfile::tempdir().unwrap();
    let s = TopicStore::open_with(d.path(), cfg(), limited(100, 10)).unwrap();
    s.create_topic("a", 8).unwrap();
    let e = s.create_topic("b", 3).unwrap_err();
    assert!(
        matches!(
            &e,
            LogError::LimitReached {
                what: "partitions",
                current: 8,
                requested: 3,
                max: 10,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    for part in ["--max-partitions", "STREAM_MAX_PARTITIONS", "10"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    s.create_topic("b", 2).unwrap();
    assert_eq!(s.total_partitions(), 10);
    assert!(matches!(
        s.create_topic("c", 1),
        Err(LogError::LimitReached { .. })
    ));
    drop(s);

    // Restarted with lower limits: everything on disk is served, only creates are refused.
    let s = TopicStore::open_with(d.path(), cfg(), limited(1, 4)).unwrap();
    assert_eq!(s.topics(), vec![("a".to_string(), 8), ("b".to_string(), 2)]);
    s.partition("a", 7).unwrap();
    assert!(matches!(
        s.create_topic("c", 1),
        Err(LogError::LimitReached { what: "topics", .. })
    ));
}

#[test]
fn defaults_allow_ten_thousand_topics_and_a_hundred_thousand_partitions() {
    let l = StoreLimits::default();
    assert_eq!((l.max_topics, l.max_total_partitions), (10_000, 100_000));
    let d = tempfile::tempdir().unwrap();
    let s = TopicStore::open(d.path(), cfg()).unwrap();
    assert_eq!(s.limits(), l);
    assert!(s.sync_threads() <= stream_log::DEFAULT_SYNC_THREADS + 1);
    assert_eq!(s.max_open_files(), stream_log::default_max_open_files());
}

#[test]
fn zero_workers_or_files_is_a_configuration_error_naming_the_flag() {
    let d = tempfile::tempdir().unwrap();
    for (opts, flag) in [
        (
            StoreOptions {
                sync_threads: Some(0),
                ..StoreOptions::default()
            },
            "--sync-threads",
        ),
        (
            StoreOptions {
                max_open_files: Some(0),
                ..StoreOptions::default()
            },
            "--max-open-files",
        ),
    ] {
        let e = TopicStore::open_with(d.path(), cfg(), opts).unwrap_err();
        assert!(e.to_string().contains(flag), "{e}");
    }
}
