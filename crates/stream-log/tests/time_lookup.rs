//! Lookups by time (`offset_for_timestamp`, `offset_of_max_timestamp`) against a plain model:
//! the answer for a target is the first offset whose timestamp is at least the target (Kafka's
//! ListOffsets), whatever the order of the timestamps.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use stream_log::{Durability, LogConfig, LogError, PartitionLog, Record};

/// The model's answer: the first index whose timestamp is at least `target`.
fn model(ts: &[u64], target: u64) -> Option<(u64, u64)> {
    ts.iter()
        .position(|&t| t >= target)
        .map(|i| (i as u64, ts[i]))
}

/// The model's MAX_TIMESTAMP: the first index holding the largest timestamp.
fn model_max(ts: &[u64]) -> Option<(u64, u64)> {
    let max = *ts.iter().max()?;
    model(ts, max)
}

/// Appends one record per timestamp, `batch` records per append; content derives from offsets.
fn append_ts(log: &PartitionLog, ts: &[u64], batch: usize) {
    for chunk in ts.chunks(batch.max(1)) {
        let base = log.high_watermark();
        let keys: Vec<Vec<u8>> = (0..chunk.len() as u64).map(|i| key_for(base + i)).collect();
        let values: Vec<Vec<u8>> = (0..chunk.len() as u64)
            .map(|i| value_for(base + i))
            .collect();
        let recs: Vec<Record<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, &t)| Record {
                timestamp_ms: t,
                key: &keys[i],
                value: &values[i],
                priority: 1,
                codec: 0,
            })
            .collect();
        log.append(&recs).unwrap();
    }
}

/// Targets worth asking for: 0, every timestamp and its neighbours, and past the largest.
fn targets(ts: &[u64]) -> Vec<u64> {
    let mut t = vec![0, 1];
    for &x in ts {
        t.extend([x.saturating_sub(1), x, x.saturating_add(1)]);
    }
    t.push(ts.iter().max().map_or(0, |m| m.saturating_add(1)));
    t.sort_unstable();
    t.dedup();
    t
}

/// Checks every interesting target and MAX_TIMESTAMP against the model of the whole log.
fn check_all(log: &PartitionLog, ts: &[u64]) {
    assert_eq!(log.high_watermark(), ts.len() as u64);
    for t in targets(ts) {
        assert_eq!(
            log.offset_for_timestamp(t).unwrap(),
            model(ts, t),
            "target {t}"
        );
    }
    assert_eq!(log.offset_of_max_timestamp().unwrap(), model_max(ts));
}

fn rolling(interval: u32) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: interval,
        durability: Durability::Never,
        ..LogConfig::default()
    }
}

#[test]
fn an_empty_log_has_no_answer() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, rolling(256)).unwrap();
    for t in [0, 1, u64::MAX] {
        assert_eq!(log.offset_for_timestamp(t).unwrap(), None);
    }
    assert_eq!(log.offset_of_max_timestamp().unwrap(), None);
}

#[test]
fn monotonic_timestamps_across_rolled_segments() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, rolling(256)).unwrap();
    let ts: Vec<u64> = (0..600).map(|i| 1_000 + 10 * i).collect();
    append_ts(&log, &ts, 7);
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    // Before every record: the log start; between two records: the later one.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1_000)));
    assert_eq!(log.offset_for_timestamp(1_000).unwrap(), Some((0, 1_000)));
    assert_eq!(log.offset_for_timestamp(1_001).unwrap(), Some((1, 1_010)));
    assert_eq!(log.offset_for_timestamp(4_995).unwrap(), Some((400, 5_000)));
    // Past every record: nothing.
    assert_eq!(log.offset_for_timestamp(6_991).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(u64::MAX).unwrap(), None);
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some((599, 6_990)));
    check_all(&log, &ts);
}

#[test]
fn non_monotonic_timestamps_answer_the_earliest_offset_reaching_the_target() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, rolling(128)).unwrap();
    // An early record with a late timestamp (offset 1), a run below it, a plateau, then
    // records after a roll that are older than that early one.
    let mut ts = vec![100, 5_000, 200, 300];
    ts.extend(std::iter::repeat_n(400, 150));
    ts.extend([6_000, 250]);
    append_ts(&log, &ts, 3);
    log.roll().unwrap();
    let after_roll = ts.len();
    ts.extend([50, 7_000, 60, 5_500]);
    append_ts(&log, &ts[after_roll..], 1);
    assert!(log.segment_count() > 2);
    // 250 is first reached at offset 1 (5000), not at the later 300 or 250.
    assert_eq!(log.offset_for_timestamp(250).unwrap(), Some((1, 5_000)));
    assert_eq!(log.offset_for_timestamp(401).unwrap(), Some((1, 5_000)));
    assert_eq!(log.offset_for_timestamp(5_001).unwrap(), Some((154, 6_000)));
    // Only reached in the active segment, after older records there.
    let seven = after_roll as u64 + 1;
    assert_eq!(
        log.offset_for_timestamp(6_001).unwrap(),
        Some((seven, 7_000))
    );
    assert_eq!(log.offset_for_timestamp(7_001).unwrap(), None);
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some((seven, 7_000)));
    check_all(&log, &ts);
}

#[test]
fn repeated_largest_timestamp_answers_its_first_record() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, rolling(256)).unwrap();
    let ts: Vec<u64> = (0..300)
        .map(|i| if i % 40 == 7 { 900 } else { i })
        .collect();
    append_ts(&log, &ts, 5);
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some((7, 900)));
    check_all(&log, &ts);
}

#[test]
fn timestamps_of_zero_are_found_by_a_target_of_zero() {
    let d = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(d.path(), 0, rolling(64)).unwrap();
    let ts: Vec<u64> = (0..200).map(|i| if i < 120 { 0 } else { 3 }).collect();
    append_ts(&log, &ts, 4);
    check_all(&log, &ts);
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some((120, 3)));
}

#[test]
fn the_active_segment_is_walked_in_chunks() {
    let d = tempfile::tempdir().unwrap();
    // One index interval larger than the walk's 64 KiB reads, and records larger than them:
    // the walk crosses read boundaries and grows a read for a whole record.
    let config = LogConfig {
        index_interval_bytes: 1 << 20,
        durability: Durability::Never,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    let mut ts: Vec<u64> = (0..3_000).map(|i| 10 + i / 3).collect();
    append_ts(&log, &ts, 50);
    let big = vec![9u8; 150 << 10];
    for t in [2_000u64, 1_990, 2_010] {
        log.append(&[Record {
            timestamp_ms: t,
            key: b"",
            value: &big,
            priority: 0,
            codec: 0,
        }])
        .unwrap();
        ts.push(t);
    }
    ts.push(2_020);
    append_ts(&log, &ts[ts.len() - 1..], 1);
    assert_eq!(log.segment_count(), 1);
    check_all(&log, &ts);
}

#[test]
fn after_retention_the_answer_starts_at_the_log_start() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(8192),
        ..rolling(256)
    };
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    let ts: Vec<u64> = (0..500).map(|i| 1_000 + i).collect();
    append_ts(&log, &ts, 5);
    assert!(log.enforce_retention().unwrap() > 0);
    let start = log.log_start_offset();
    assert!(start > 0);
    let first = (start, 1_000 + start);
    // Targets whose records are gone: the first record still kept.
    for t in [0, 1_000, 1_000 + start - 1, 1_000 + start] {
        assert_eq!(log.offset_for_timestamp(t).unwrap(), Some(first), "{t}");
    }
    for t in 1_000 + start..1_500 {
        assert_eq!(
            log.offset_for_timestamp(t).unwrap(),
            Some((t - 1_000, t)),
            "{t}"
        );
    }
    assert_eq!(log.offset_for_timestamp(1_500).unwrap(), None);
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some((499, 1_499)));
}

#[test]
fn the_time_index_is_recovered_on_reopen() {
    let d = tempfile::tempdir().unwrap();
    let ts: Vec<u64> = (0..700u64).map(|i| (i * 7919) % 1_000).collect();
    {
        let log = PartitionLog::open(d.path(), 0, rolling(200)).unwrap();
        append_ts(&log, &ts, 6);
        assert!(log.segment_count() > 5);
        log.flush().unwrap();
    }
    // After a clean shutdown: the indexes are loaded, nothing is scanned.
    let log = PartitionLog::open(d.path(), 0, rolling(200)).unwrap();
    assert_eq!(log.recovery_report().scanned_bytes, 0);
    check_all(&log, &ts);
    drop(log);
    // Without time indexes (or after a crash): rebuilt from the records.
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "timeindex") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let _ = std::fs::remove_file(d.path().join("clean-shutdown.marker"));
    let log = PartitionLog::open(d.path(), 0, rolling(200)).unwrap();
    assert!(log.recovery_report().scanned_bytes > 0);
    check_all(&log, &ts);
    // And appends after the reopen extend the recovered index.
    let mut ts = ts;
    let more: Vec<u64> = (0..100).map(|i| 2_000 - i).collect();
    append_ts(&log, &more, 3);
    ts.extend(more);
    check_all(&log, &ts);
}

#[test]
fn lookups_race_appends_rolls_and_retention() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(16 << 10),
        ..rolling(256)
    };
    let log = Arc::new(PartitionLog::open(d.path(), 0, config).unwrap());
    // Every record's timestamp is twice its offset: the answer for `t` is offset ceil(t / 2),
    // or the log start once retention has removed that one.
    append_ts(&log, &[0, 2, 4], 3);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            for round in 0..400u64 {
                let base = log.high_watermark();
                let ts: Vec<u64> = (base..base + 9).map(|o| 2 * o).collect();
                append_ts(&log, &ts, 9);
                if round % 5 == 0 {
                    log.enforce_retention().unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut lookups = 0u64;
    let mut i = 0u64;
    while !done.load(Ordering::Acquire) || lookups < 200 {
        let ls0 = log.log_start_offset();
        let hw0 = log.high_watermark();
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let t = (i >> 33) % (2 * hw0 + 4);
        let r = log.offset_for_timestamp(t);
        let ls1 = log.log_start_offset();
        let want = t.div_ceil(2);
        match r {
            Ok(Some((o, ts))) => {
                assert_eq!(ts, 2 * o, "target {t}");
                if want >= ls1 {
                    assert_eq!(o, want, "target {t}, log start {ls0}..{ls1}");
                } else {
                    assert!(
                        o >= want.max(ls0) && o <= ls1,
                        "target {t}: {o}, log start {ls0}..{ls1}"
                    );
                }
            }
            Ok(None) => assert!(want >= hw0, "target {t}: none below {hw0}"),
            Err(e @ LogError::OffsetOutOfRange { .. }) => panic!("a lookup never fails so: {e}"),
            Err(e) => panic!("target {t}: {e}"),
        }
        lookups += 1;
    }
    writer.join().unwrap();
    assert!(log.log_start_offset() > 0, "retention ran");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any timestamps (runs, plateaus, spikes and drops), any batching, small segments and
    /// index intervals, with a roll or a reopen along the way: every target answers as the
    /// model does.
    #[test]
    fn lookups_match_the_model(
        ts in proptest::collection::vec(
            prop_oneof![3 => 0u64..40, 1 => 0u64..5_000, 1 => Just(u64::MAX)],
            0..400,
        ),
        batch in 1usize..20,
        interval in prop_oneof![Just(1u32), 32u32..600],
        segment_bytes in 1_024u64..6_000,
        split in any::<prop::sample::Index>(),
        reopen in any::<bool>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: interval,
            durability: Durability::Never,
            ..LogConfig::default()
        };
        let cut = if ts.is_empty() { 0 } else { split.index(ts.len() + 1) };
        let mut log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        append_ts(&log, &ts[..cut], batch);
        if reopen {
            log.flush().unwrap();
            drop(log);
            log = PartitionLog::open(d.path(), 0, config).unwrap();
        } else {
            log.roll().unwrap();
        }
        append_ts(&log, &ts[cut..], batch);
        for t in targets(&ts) {
            prop_assert_eq!(log.offset_for_timestamp(t).unwrap(), model(&ts, t), "target {}", t);
        }
        prop_assert_eq!(log.offset_of_max_timestamp().unwrap(), model_max(&ts));
    }
}
