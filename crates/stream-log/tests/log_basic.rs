//! Behaviour of one partition log and of the topic/offset stores through the public API.

mod common;

use std::time::Duration;

use common::*;
use stream_log::{
    decode_batch, message_crc, Durability, LogConfig, LogError, OffsetStore, PartitionLog, Record,
    TopicStore,
};

#[test]
fn fetch_bytes_are_the_strp_wire_form() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 7, cfg(Durability::Never)).unwrap();
    let a = log
        .append(&[
            Record {
                timestamp_ms: 1000,
                key: b"key",
                value: b"hello",
                priority: 1,
                codec: 0,
            },
            Record {
                timestamp_ms: 1001,
                key: b"",
                value: b"x",
                priority: 3,
                codec: 2,
            },
        ])
        .unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 1));
    let b = log.read(0, 10, 1 << 20).unwrap();
    assert_eq!(b.count, 2);
    assert_eq!(b.high_watermark, 2);
    let mut want = Vec::new();
    let msg = |off: u64, ts: u64, pri: u8, codec: u8, key: &[u8], value: &[u8]| {
        let mut m = Vec::new();
        m.extend_from_slice(&off.to_le_bytes());
        m.extend_from_slice(&ts.to_le_bytes());
        m.extend_from_slice(&7u32.to_le_bytes());
        m.extend_from_slice(&message_crc(off, ts, pri, codec, key, value).to_le_bytes());
        m.push(pri);
        m.push(codec);
        m.extend_from_slice(&(key.len() as u32).to_le_bytes());
        m.extend_from_slice(key);
        m.extend_from_slice(&(value.len() as u32).to_le_bytes());
        m.extend_from_slice(value);
        m
    };
    for m in [
        msg(0, 1000, 1, 0, b"key", b"hello"),
        msg(1, 1001, 3, 2, b"", b"x"),
    ] {
        want.extend_from_slice(&(m.len() as u32).to_le_bytes());
        want.extend_from_slice(&m);
    }
    assert_eq!(&b.bytes[..], &want[..]);
}

#[test]
fn read_limits_and_ranges() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, small_segments(Durability::Never)).unwrap();
    for _ in 0..20 {
        append_n(&log, 17, 5);
    }
    assert!(log.segment_count() > 3, "segments rolled by size");
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 340);
    for r in &all {
        check_record(r, 0);
    }
    // Count limit, crossing segment boundaries.
    let b = log.read(3, 200, u32::MAX).unwrap();
    assert_eq!(b.count, 200);
    let recs = decode_batch(&b.bytes).unwrap();
    assert_eq!(recs.first().unwrap().offset, 3);
    assert_eq!(recs.last().unwrap().offset, 202);
    // Byte limit: at least one record even if it alone exceeds the limit.
    let b = log.read(10, 100, 1).unwrap();
    assert_eq!(b.count, 1);
    let b = log.read(10, 100, 300).unwrap();
    assert!(b.bytes.len() <= 300 && b.count >= 1);
    // At the high watermark: empty; beyond: out of range.
    let b = log.read(340, 10, 1000).unwrap();
    assert_eq!((b.count, b.bytes.len(), b.high_watermark), (0, 0, 340));
    assert!(matches!(
        log.read(341, 10, 1000),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Every single offset is readable on its own.
    for off in 0..340 {
        let b = log.read(off, 1, 1).unwrap();
        let r = decode_batch(&b.bytes).unwrap();
        assert_eq!(r[0].offset, off);
    }
}

#[test]
fn reopen_keeps_everything_and_continues_offsets() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(d.path(), 2, small_segments(Durability::GroupCommit)).unwrap();
        for _ in 0..10 {
            append_n(&log, 13, 5);
        }
        log.flush().unwrap();
    }
    let log = PartitionLog::open(d.path(), 2, small_segments(Durability::GroupCommit)).unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.high_watermark(), 130);
    append_n(&log, 5, 6);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 135);
    all.iter().for_each(|r| check_record(r, 2));
}

#[test]
fn clean_shutdown_skips_the_recovery_scan_only_when_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 300,
        ..cfg(Durability::Never)
    };
    {
        let log = PartitionLog::open(d.path(), 1, config.clone()).unwrap();
        for _ in 0..20 {
            append_n(&log, 11, 5);
        }
        log.flush().unwrap();
    }
    {
        let log = PartitionLog::open(d.path(), 1, config.clone()).unwrap();
        let r = log.recovery_report();
        assert!(r.is_clean() && r.scanned_bytes == 0, "{r:?}");
        assert_eq!(log.high_watermark(), 220);
        for _ in 0..5 {
            append_n(&log, 11, 5);
        }
        read_all(&log, 0).iter().for_each(|r| check_record(r, 1));
        // No flush: the first append removed the marker, so the next open scans.
    }
    {
        let log = PartitionLog::open(d.path(), 1, config.clone()).unwrap();
        assert!(log.recovery_report().scanned_bytes > 0);
        assert_eq!(log.high_watermark(), 275);
        log.flush().unwrap();
    }
    // Garbage after a flush changes the size: scanned and cut.
    let seg = d.path().join("00000000000000000000.log");
    let mut b = std::fs::read(&seg).unwrap();
    let len = b.len();
    b.extend_from_slice(&[1, 2, 3, 4, 5]);
    std::fs::write(&seg, &b).unwrap();
    {
        let log = PartitionLog::open(d.path(), 1, config.clone()).unwrap();
        let r = log.recovery_report();
        assert_eq!(
            (r.truncated_bytes, r.scanned_bytes),
            (5, len as u64 + 5),
            "{r:?}"
        );
        log.flush().unwrap();
    }
    // A flipped byte in the tail with the size unchanged: the tail check catches it.
    let mut b = std::fs::read(&seg).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x40;
    std::fs::write(&seg, &b).unwrap();
    let log = PartitionLog::open(d.path(), 1, config).unwrap();
    let r = log.recovery_report();
    assert!(r.truncated_bytes > 0 && r.scanned_bytes > 0, "{r:?}");
    assert_eq!(log.high_watermark(), 274);
    read_all(&log, 0).iter().for_each(|r| check_record(r, 1));
}

#[test]
fn indexes_written_after_reopen_and_roll_stay_valid() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 64,
        ..cfg(Durability::Never)
    };
    // Recent timestamps, so that no segment rolls by age.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for round in 0..4u64 {
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        let r = log.recovery_report();
        assert!(r.is_clean(), "round {round}: {r:?}");
        // The newest timestamp arrives last, alone (no index entry after it), and the next
        // round continues with that same timestamp.
        append_n(&log, 3, t0 + round);
        append_n(&log, 1, t0 + 1 + round);
        if round % 2 == 1 {
            log.roll().unwrap();
        }
    }
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
}

#[test]
fn retention_by_bytes_moves_log_start() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(8192),
        ..small_segments(Durability::Never)
    };
    let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
    for _ in 0..50 {
        append_n(&log, 10, 5);
    }
    let before = log.segment_count();
    let removed = log.enforce_retention().unwrap();
    assert!(removed > 0 && log.segment_count() == before - removed);
    let start = log.log_start_offset();
    assert!(start > 0);
    // Only whole segments go; what is left exceeds the limit by less than one segment.
    assert!(log.size_bytes() <= 8192 + 4096, "{}", log.size_bytes());
    assert!(matches!(
        log.read(start - 1, 1, 100),
        Err(LogError::OffsetOutOfRange { log_start, .. }) if log_start == start
    ));
    let rest = read_all(&log, start);
    rest.iter().for_each(|r| check_record(r, 0));
    drop(log);
    // The start offset survives reopen (old files are gone).
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn retention_by_age_keeps_the_active_segment() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(60_000),
        ..small_segments(Durability::Never)
    };
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    // Timestamps in 1970: everything is older than a minute.
    for _ in 0..30 {
        append_n(&log, 10, 1);
    }
    assert!(log.segment_count() > 2);
    log.enforce_retention().unwrap();
    assert_eq!(log.segment_count(), 1, "only the active segment remains");
    assert!(log.log_start_offset() > 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for _ in 0..30 {
        append_n(&log, 10, now);
    }
    let n = log.segment_count();
    log.enforce_retention().unwrap();
    assert!(log.segment_count() >= n - 1, "fresh segments are kept");
}

#[test]
fn subscribe_wakes_on_append() {
    let d = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(PartitionLog::open(d.path(), 0, cfg(Durability::Never)).unwrap());
    let mut rx = log.subscribe();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l2 = log.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        append_n(&l2, 3, 1);
    });
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), rx.changed())
            .await
            .unwrap()
            .unwrap();
    });
    assert!(*rx.borrow() >= 3);
    t.join().unwrap();
}

#[test]
fn wait_durable_under_each_policy() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for pol in ["every-write", "group-commit", "interval:20ms", "never"] {
        let d = tempfile::tempdir().unwrap();
        let durability: Durability = pol.parse().unwrap();
        let log = PartitionLog::open(d.path(), 0, cfg(durability)).unwrap();
        assert_eq!(log.durability().to_string(), pol);
        let a = append_n(&log, 10, 1);
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), log.wait_durable(a.last_offset))
                .await
                .unwrap()
                .unwrap();
        });
        log.wait_durable_blocking(a.last_offset).unwrap();
        assert!(matches!(
            log.wait_durable_blocking(a.last_offset + 1),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }
}

#[test]
fn group_commit_with_many_writers() {
    let d = tempfile::tempdir().unwrap();
    let log =
        std::sync::Arc::new(PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let v = [1u8; 100];
                    let recs = [Record {
                        timestamp_ms: 1,
                        key: b"",
                        value: &v,
                        priority: 2,
                        codec: 0,
                    }; 10];
                    let a = log.append(&recs).unwrap();
                    log.wait_durable_blocking(a.last_offset).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.high_watermark(), 8 * 20 * 10);
}

#[test]
fn one_fsync_covers_many_appends() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    let mut last = 0;
    for _ in 0..1000 {
        last = append_n(&log, 2, 1).last_offset;
    }
    log.wait_durable_blocking(last).unwrap();
    let fsyncs = log.syncer_fsyncs();
    assert!(
        (1..=1000).contains(&fsyncs),
        "{fsyncs} fsyncs for 1000 appends"
    );
    // Where an fsync takes far longer than an append (a real disk, not tmpfs), most appends
    // must share one.
    let probe = d.path().join("probe");
    let f = std::fs::File::create(&probe).unwrap();
    std::io::Write::write_all(&mut &f, &[0u8; 4096]).unwrap();
    let t = std::time::Instant::now();
    f.sync_data().unwrap();
    if t.elapsed() >= Duration::from_micros(200) {
        assert!(fsyncs < 500, "{fsyncs} fsyncs for 1000 appends");
    }
}

#[test]
fn topics_survive_restart_and_delete_removes_files() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = TopicStore::open(d.path(), cfg(Durability::GroupCommit)).unwrap();
        s.create_topic("orders", 3).unwrap();
        s.create_topic("md.BTC-USD", 1).unwrap();
        assert!(matches!(
            s.create_topic("orders", 1),
            Err(LogError::TopicAlreadyExists { .. })
        ));
        assert!(matches!(
            s.create_topic("../etc", 1),
            Err(LogError::InvalidTopicName { .. })
        ));
        assert!(matches!(
            s.create_topic("x", 0),
            Err(LogError::InvalidConfig(_))
        ));
        let p = s.partition("orders", 2).unwrap();
        append_n(&p, 4, 1);
        assert!(matches!(
            s.partition("orders", 3),
            Err(LogError::PartitionNotFound { .. })
        ));
        assert!(matches!(
            s.partition("nope", 0),
            Err(LogError::TopicNotFound { .. })
        ));
        s.flush_all().unwrap();
    }
    let s = TopicStore::open(d.path(), cfg(Durability::GroupCommit)).unwrap();
    assert_eq!(
        s.topics(),
        vec![("md.BTC-USD".to_string(), 1), ("orders".to_string(), 3)]
    );
    assert_eq!(s.partition("orders", 2).unwrap().high_watermark(), 4);
    let held = s.partition("orders", 0).unwrap();
    s.delete_topic("orders").unwrap();
    assert!(matches!(
        s.delete_topic("orders"),
        Err(LogError::TopicNotFound { .. })
    ));
    assert!(!d.path().join("topics/orders").exists());
    assert!(matches!(
        held.append(&[Record {
            timestamp_ms: 1,
            key: b"",
            value: b"v",
            priority: 0,
            codec: 0
        }]),
        Err(LogError::Closed { .. })
    ));
    drop(s);
    let s = TopicStore::open(d.path(), cfg(Durability::GroupCommit)).unwrap();
    assert_eq!(s.topics(), vec![("md.BTC-USD".to_string(), 1)]);
    // Re-creating a deleted topic starts empty.
    s.create_topic("orders", 1).unwrap();
    assert_eq!(s.partition("orders", 0).unwrap().high_watermark(), 0);
    s.enforce_retention().unwrap();
}

#[test]
fn committed_offsets_survive_restart() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = OffsetStore::open(d.path()).unwrap();
        for i in 0..100 {
            s.commit("g1", "orders", (i % 3) as u32, i).unwrap();
        }
        s.commit("g2", "md", 0, 42).unwrap();
    }
    let s = OffsetStore::open(d.path()).unwrap();
    assert_eq!(s.fetch("g1", "orders", 0), Some(99));
    assert_eq!(s.fetch("g1", "orders", 1), Some(97));
    assert_eq!(s.fetch("g1", "orders", 2), Some(98));
    assert_eq!(s.fetch("g2", "md", 0), Some(42));
    s.remove_topic("orders").unwrap();
    drop(s);
    let s = OffsetStore::open(d.path()).unwrap();
    assert_eq!(s.fetch("g1", "orders", 0), None);
    assert_eq!(s.fetch("g2", "md", 0), Some(42));
}

#[test]
fn concurrent_reads_during_appends_see_only_whole_records() {
    let d = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(
        PartitionLog::open(d.path(), 0, small_segments(Durability::Never)).unwrap(),
    );
    let w = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..300 {
                append_n(&log, 7, 1);
            }
        })
    };
    let mut cur = 0;
    while cur < 2100 {
        let b = log.read(cur, 50, 4000).unwrap();
        let recs = decode_batch(&b.bytes).unwrap();
        for r in &recs {
            assert_eq!(r.offset, cur);
            check_record(r, 0);
            cur += 1;
        }
    }
    w.join().unwrap();
}

#[test]
fn reads_race_appends_rolls_and_retention() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(16 << 10),
        ..small_segments(Durability::GroupCommit)
    };
    let log = Arc::new(PartitionLog::open(d.path(), 0, config).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..600 {
                append_n(&log, 1 + i % 9, 1);
            }
            done.store(true, Ordering::Release);
        })
    };
    let cleaner = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                log.enforce_retention().unwrap();
                std::thread::yield_now();
            }
        })
    };
    let readers: Vec<_> = (0..3u64)
        .map(|seed| {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                let mut x = seed * 7919 + 1;
                let mut ok = 0u64;
                while !done.load(Ordering::Acquire) {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let (start, hw) = (log.log_start_offset(), log.high_watermark());
                    let off = start + (x >> 33) % (hw - start + 1);
                    match log.read(off, 1 + (x % 50) as u32, 1 + (x % 8000) as u32) {
                        Ok(b) => {
                            let recs = decode_batch(&b.bytes).expect("valid records only");
                            for (i, r) in recs.iter().enumerate() {
                                assert_eq!(r.offset, off + i as u64);
                                check_record(r, 0);
                            }
                            ok += 1;
                        }
                        // Retention may overtake a reader between its range check and read.
                        Err(LogError::OffsetOutOfRange { .. }) => {}
                        Err(e) => panic!("read at {off}: {e}"),
                    }
                }
                ok
            })
        })
        .collect();
    writer.join().unwrap();
    cleaner.join().unwrap();
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert!(log.log_start_offset() > 0, "retention ran");
}

#[test]
fn pipelined_appends_then_their_waits_share_one_fsync() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 1..=20u64 {
        // What a connection does with 50 pipelined produces: append them all, then wait for
        // each. The fsync starts with the first wait and covers all 50.
        let offsets: Vec<u64> = (0..50).map(|_| append_n(&log, 1, 1).last_offset).collect();
        assert_eq!(
            log.syncer_fsyncs(),
            round - 1,
            "appends alone start no fsync"
        );
        rt.block_on(async {
            for o in &offsets {
                log.wait_durable(*o).await.unwrap();
            }
        });
        assert_eq!(log.syncer_fsyncs(), round, "round {round}");
    }
    // The blocking form registers demand the same way.
    let a = append_n(&log, 5, 1);
    log.wait_durable_blocking(a.last_offset).unwrap();
    assert_eq!(log.syncer_fsyncs(), 21);
}

#[test]
fn every_write_and_interval_make_data_durable_without_a_thread_per_log() {
    let d = tempfile::tempdir().unwrap();
    let logs: Vec<_> = (0..64)
        .map(|p| {
            let pol = if p % 2 == 0 {
                "every-write"
            } else {
                "interval:5ms"
            };
            PartitionLog::open(&d.path().join(p.to_string()), p, cfg(pol.parse().unwrap())).unwrap()
        })
        .collect();
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    // The harness's threads and the process-wide fsync workers, whatever other tests of this
    // binary run meanwhile; well below one per log.
    assert!(threads < 64, "{threads} threads for 64 logs");
    for log in &logs {
        let a = append_n(log, 3, 1);
        log.wait_durable_blocking(a.last_offset).unwrap();
        if log.durability() == Durability::EveryWrite {
            assert!(log.syncer_fsyncs() >= 1);
        }
    }
}

#[test]
fn closing_a_log_makes_its_appends_durable_for_their_waiters() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    let a = append_n(&log, 20, 1);
    // What a topic's deletion does while produces still wait for their fsync: close, then
    // remove the files.
    log.close();
    std::fs::remove_dir_all(d.path()).unwrap();
    log.wait_durable_blocking(a.last_offset)
        .expect("appended before the close: durable, not failing on a file that is gone");
    assert!(matches!(
        log.append(&[Record {
            timestamp_ms: 1,
            key: b"",
            value: b"late",
            priority: 0,
            codec: 0,
        }]),
        Err(LogError::Closed { .. })
    ));
}
