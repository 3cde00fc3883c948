//! A store with 10,000 partitions starts, serves and restarts with a fixed handful of threads
//! and at most its open-file cache's worth of descriptors (issue 11: it used to cost a thread
//! and a descriptor per partition). A second store with a few hundred partitions does the same
//! under group commit, where every produce waits for an fsync.
//!
//! Before issue 11 was fixed this needed 10,000 threads and as many descriptors.
//!
//! A test binary of its own with a single test: thread and descriptor counts are
//! process-wide, so no other test may run beside it.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use stream_log::{Durability, LogConfig, Record, StoreOptions, TopicStore};

const TOPICS: u32 = 625;
const PARTITIONS: u32 = 16;
const MAX_OPEN_FILES: usize = 256;
/// Descriptors besides the cache: stdio, the data directories' lock files, the test harness,
/// a directory being listed, calls in flight holding an evicted file.
const FD_SLACK: usize = 32;
/// The harness's threads, the two stores' fsync workers and timers, and the appending threads
/// of the group-commit phase (joined before counting, but allowed for).
const MAX_THREADS: usize = 24;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    process_limits::open_descriptors().expect("/proc is mounted") as usize
}

fn check_costs(what: &str, caches: usize) {
    let (t, f) = (threads(), fds());
    eprintln!("{what}: {t} threads, {f} descriptors");
    assert!(t <= MAX_THREADS, "{what}: {t} threads");
    assert!(
        f <= caches * MAX_OPEN_FILES + FD_SLACK,
        "{what}: {f} open descriptors"
    );
}

fn options() -> StoreOptions {
    StoreOptions {
        max_open_files: Some(MAX_OPEN_FILES),
        sync_threads: Some(2),
        ..StoreOptions::default()
    }
}

fn topic(t: u32) -> String {
    format!("t{t:04}")
}

fn value(t: u32, p: u32, i: u32) -> Vec<u8> {
    format!("{t}/{p}/{i}").into_bytes()
}

fn append_one(store: &TopicStore, t: u32, p: u32, i: u32) -> u64 {
    let v = value(t, p, i);
    let rec = Record {
        timestamp_ms: 1,
        key: b"",
        value: &v,
        priority: 0,
        codec: 0,
    };
    let log = store.partition(&topic(t), p).unwrap();
    log.append(&[rec]).unwrap().last_offset
}

fn check_all(store: &TopicStore, rounds: u32) {
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            let log = store.partition(&topic(t), p).unwrap();
            assert_eq!(log.high_watermark(), u64::from(rounds), "{t}/{p}");
            let b = log.read(0, 100, 1 << 20).unwrap();
            let recs = stream_log::decode_batch(&b.bytes).unwrap();
            assert_eq!(recs.len() as u32, rounds);
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(&r.value[..], &value(t, p, i as u32)[..], "{t}/{p}");
            }
        }
    }
}

#[test]
fn ten_thousand_partitions_cost_a_fixed_set_of_threads_and_bounded_descriptors() {
    let d = tempfile::tempdir().unwrap();
    // The bulk under `never`: laying out 10,000 partitions under an fsync policy costs tens of
    // thousands of directory fsyncs, seconds to minutes depending on the disk.
    let never = LogConfig {
        durability: Durability::Never,
        ..LogConfig::default()
    };
    let t0 = Instant::now();
    let store = TopicStore::open_with(d.path(), never.clone(), options()).unwrap();
    for t in 0..TOPICS {
        store.create_topic(&topic(t), PARTITIONS).unwrap();
    }
    assert_eq!(store.total_partitions(), 10_000);
    check_costs("10,000 partitions created", 1);
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            append_one(&store, t, p, 0);
        }
    }
    check_all(&store, 1);
    assert!(store.open_files() <= MAX_OPEN_FILES);
    assert!(
        store.file_opens() > 0,
        "10,000 active segments do not fit a cache of {MAX_OPEN_FILES}: files were reopened"
    );
    check_costs("after appending to and reading every partition", 1);
    eprintln!("create + append + read: {:?}", t0.elapsed());

    // Restart twice without a flush (as after a crash: every active segment is scanned).
    drop(store);
    let t1 = Instant::now();
    let store = TopicStore::open_with(d.path(), never.clone(), options()).unwrap();
    eprintln!("recovery of 10,000 partitions: {:?}", t1.elapsed());
    assert_eq!(store.topics().len(), TOPICS as usize);
    check_costs("after recovery", 1);
    check_all(&store, 1);
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            append_one(&store, t, p, 1);
        }
    }
    drop(store);
    let store = TopicStore::open_with(d.path(), never, options()).unwrap();
    check_costs("after a second restart", 1);
    check_all(&store, 2);

    // Beside it, a group-commit store: pipelined appends, each waited for, on 320 partitions.
    let gd = tempfile::tempdir().unwrap();
    let gc = LogConfig {
        durability: Durability::GroupCommit,
        ..LogConfig::default()
    };
    let group = Arc::new(TopicStore::open_with(gd.path(), gc.clone(), options()).unwrap());
    for t in 0..20 {
        group.create_topic(&topic(t), PARTITIONS).unwrap();
    }
    check_costs("two stores open", 2);
    let t3 = Instant::now();
    let workers: Vec<_> = (0..4u32)
        .map(|w| {
            let group = group.clone();
            std::thread::spawn(move || {
                for t in (w..20).step_by(4) {
                    for p in 0..PARTITIONS {
                        let log = group.partition(&topic(t), p).unwrap();
                        // A pipeline of 10 produces: appended, then waited for.
                        let last: Vec<u64> =
                            (0..10).map(|_| append_n(&log, 1, 1).last_offset).collect();
                        for o in last {
                            log.wait_durable_blocking(o).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut fsyncs = 0;
    for t in 0..20 {
        for p in 0..PARTITIONS {
            let log = group.partition(&topic(t), p).unwrap();
            assert_eq!(log.high_watermark(), 10);
            fsyncs += log.syncer_fsyncs();
        }
    }
    // One fsync per pipeline of ten: the waits come after the appends.
    assert_eq!(
        fsyncs,
        20 * u64::from(PARTITIONS),
        "fsyncs for 320 pipelines"
    );
    check_costs("after the group-commit load", 2);
    eprintln!("group-commit load: {:?}", t3.elapsed());
    group.flush_all().unwrap();
    drop(group);
    let group = TopicStore::open_with(gd.path(), gc, options()).unwrap();
    for t in 0..20 {
        for p in 0..PARTITIONS {
            let log = group.partition(&topic(t), p).unwrap();
            assert_eq!(log.high_watermark(), 10);
            // Flushed at the clean stop: the restart trusts the marker, nothing is scanned.
            assert_eq!(log.recovery_report().scanned_bytes, 0);
            read_all(&log, 0).iter().for_each(|r| check_record(r, p));
        }
    }
    check_costs("after restarting both", 2);
}
