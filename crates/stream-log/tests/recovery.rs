//! Recovery on open: torn tails, flipped bytes, missing or damaged indexes, write failures.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rand::{Rng, SeedableRng};
use stream_log::{decode_batch, Durability, LogConfig, LogError, PartitionLog};

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Frame boundaries (start positions) of a segment file built by `append_n`.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        v.push(p);
        p += 4 + u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
    }
    assert_eq!(p, bytes.len());
    v
}

#[test]
fn tail_truncated_at_every_byte_of_the_last_record() {
    let d = tempfile::tempdir().unwrap();
    let config = small_segments(Durability::Never);
    {
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        for _ in 0..12 {
            append_n(&log, 9, 1);
        }
        assert!(log.segment_count() > 1);
    }
    let last = segment_files(d.path(), "log").pop().unwrap();
    let original = fs::read(&last).unwrap();
    let starts = frame_starts(&original);
    let base: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let n_in_seg = starts.len() as u64;
    let last_start = *starts.last().unwrap();
    for cut in last_start..=original.len() {
        // Undo segments rolled by the previous iteration's appends.
        for f in fs::read_dir(d.path()).unwrap() {
            let p = f.unwrap().path();
            let stem: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            if stem > base {
                fs::remove_file(p).unwrap();
            }
        }
        fs::write(&last, &original[..cut]).unwrap();
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        let complete = cut == original.len();
        let expect_hw = base + n_in_seg - if complete { 0 } else { 1 };
        assert_eq!(log.high_watermark(), expect_hw, "cut at {cut}");
        let report = log.recovery_report();
        assert_eq!(
            report.truncated_bytes,
            (cut - last_start) as u64 % (original.len() - last_start) as u64
        );
        assert_eq!(
            report.is_clean(),
            complete || cut == last_start,
            "{report:?}"
        );
        let all = read_all(&log, 0);
        all.iter().for_each(|r| check_record(r, 0));
        // Appending after recovery continues at the right offset and is readable.
        if cut % 7 == 0 {
            append_n(&log, 2, 1);
            read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
        }
        drop(log);
        // The truncation itself was persisted: a second open is clean.
        if cut % 7 != 0 {
            let again = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
            assert!(again.recovery_report().is_clean());
        }
    }
}

#[test]
fn random_bytes_flipped_in_the_last_segment() {
    let d = tempfile::tempdir().unwrap();
    let config = small_segments(Durability::Never);
    {
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        for _ in 0..10 {
            append_n(&log, 9, 1);
        }
    }
    let last = segment_files(d.path(), "log").pop().unwrap();
    let base: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let original = fs::read(&last).unwrap();
    let starts = frame_starts(&original);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for trial in 0..300 {
        let mut b = original.clone();
        let flips = rng.gen_range(1..=3);
        let mut first = usize::MAX;
        for _ in 0..flips {
            let at = rng.gen_range(0..b.len());
            b[at] ^= rng.gen_range(1..=255u8);
            first = first.min(at);
        }
        fs::write(&last, &b).unwrap();
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        // Exactly the records before the one holding the first damaged byte survive.
        let damaged = starts.iter().rposition(|&s| s <= first).unwrap() as u64;
        assert_eq!(
            log.high_watermark(),
            base + damaged,
            "trial {trial}: flip at {first}"
        );
        assert!(!log.recovery_report().is_clean());
        let all = read_all(&log, 0);
        all.iter().for_each(|r| check_record(r, 0));
    }
}

#[test]
fn corrupt_record_in_a_sealed_segment_is_never_served() {
    let d = tempfile::tempdir().unwrap();
    let config = small_segments(Durability::Never);
    {
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        for _ in 0..10 {
            append_n(&log, 9, 1);
        }
        log.flush().unwrap();
    }
    let first = segment_files(d.path(), "log").remove(0);
    let mut b = fs::read(&first).unwrap();
    let starts = frame_starts(&b);
    let victim = starts.len() / 2;
    b[starts[victim] + 40] ^= 0xff; // inside the key/value of that record
    fs::write(&first, &b).unwrap();
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    // Indexes are intact, so the sealed segment is not rescanned on open; reads verify CRCs.
    for off in 0..starts.len() as u64 {
        let r = log.read(off, 1, 1);
        if off == victim as u64 {
            assert!(matches!(r, Err(LogError::Corrupt { .. })), "{r:?}");
        } else {
            let b = r.unwrap();
            check_record(&decode_batch(&b.bytes).unwrap()[0], 0);
        }
    }
    // A batch read stops with an error rather than returning the bad record.
    assert!(log.read(0, 1000, 1 << 20).is_err());
    let e = log.read(victim as u64, 1, 1).unwrap_err().to_string();
    assert!(e.contains("crc mismatch") && e.contains(".log"), "{e}");
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 128,
        ..small_segments(Durability::GroupCommit)
    };
    {
        let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
        for _ in 0..20 {
            append_n(&log, 9, 1);
        }
        log.flush().unwrap();
    }
    let idx = segment_files(d.path(), "index");
    let tidx = segment_files(d.path(), "timeindex");
    assert!(idx.len() > 3);
    let good = fs::read(&idx[1]).unwrap();
    fs::remove_file(&idx[0]).unwrap();
    fs::write(&idx[1], &good[..good.len() - 3]).unwrap(); // torn
    let mut swapped = good.clone();
    swapped.swap(0, 8); // entries out of order / pointing at the wrong record
    fs::write(&idx[2], &swapped).unwrap();
    fs::remove_file(&tidx[0]).unwrap();
    // The active segment's index is rebuilt by its recovery scan anyway: no note.
    fs::remove_file(&idx[3]).unwrap();
    let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
    let report = log.recovery_report().clone();
    assert_eq!(
        report
            .notes
            .iter()
            .filter(|n| n.contains("rebuilt"))
            .count(),
        3,
        "{report:?}"
    );
    assert_eq!(report.truncated_bytes, 0);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 180);
    for off in 0..180 {
        let b = log.read(off, 1, 1).unwrap();
        assert_eq!(decode_batch(&b.bytes).unwrap()[0].offset, off);
    }
    drop(log);
    assert_eq!(
        fs::read(&idx[1]).unwrap(),
        good,
        "index rewritten identically"
    );
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    assert!(log.recovery_report().is_clean());
}

#[test]
fn failed_segment_roll_leaves_the_log_writable() {
    let d = tempfile::tempdir().unwrap();
    let config = small_segments(Durability::GroupCommit);
    let log = PartitionLog::open(d.path(), 0, config.clone()).unwrap();
    let mut failures = 0;
    for i in 0..400 {
        // A directory squatting on the next segment's name makes creating it fail.
        let next = log.high_watermark();
        let blocker = d.path().join(format!("{next:020}.log"));
        let blocked = i % 2 == 0 && !blocker.exists();
        if blocked {
            fs::create_dir(&blocker).unwrap();
        }
        let (k, v) = (key_for(next), value_for(next));
        let r = log.append(&[stream_log::Record {
            timestamp_ms: 1,
            key: &k,
            value: &v,
            priority: 0,
            codec: 0,
        }]);
        if blocked {
            fs::remove_dir(&blocker).unwrap();
        }
        match r {
            Ok(a) => assert_eq!(a.base_offset, next),
            Err(e) => {
                assert!(e.to_string().contains(blocker.to_str().unwrap()), "{e}");
                assert_eq!(
                    log.high_watermark(),
                    next,
                    "a failed append assigns no offsets"
                );
                failures += 1;
            }
        }
    }
    assert!(failures > 3, "rolls were attempted and failed: {failures}");
    assert!(log.segment_count() > 3);
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
    let hw = log.high_watermark();
    drop(log);
    let log = PartitionLog::open(d.path(), 0, config).unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.high_watermark(), hw);
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
}

#[test]
fn data_dir_that_is_a_file_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("file");
    fs::write(&f, b"x").unwrap();
    let e = PartitionLog::open(&f.join("p0"), 0, LogConfig::default()).unwrap_err();
    assert!(matches!(e, LogError::Io { .. }));
    assert!(e.to_string().contains("file"), "{e}");
    let e = stream_log::TopicStore::open(&f, LogConfig::default()).unwrap_err();
    assert!(e.to_string().contains(f.to_str().unwrap()), "{e}");
}

/// Child half of `write_failure_is_a_clear_error`: appends under RLIMIT_FSIZE until writes fail.
#[test]
fn fsize_child() {
    let Ok(dir) = std::env::var("STREAM_LOG_FSIZE_CHILD_DIR") else {
        return;
    };
    // SAFETY: plain libc calls in a child process that only runs this test.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: 20_000,
            rlim_max: 20_000,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let log = PartitionLog::open(Path::new(&dir), 0, cfg(Durability::GroupCommit)).unwrap();
    let mut err = None;
    for _ in 0..1000 {
        let base = log.high_watermark();
        let keys: Vec<Vec<u8>> = (0..7).map(|i| key_for(base + i)).collect();
        let vals: Vec<Vec<u8>> = (0..7).map(|i| value_for(base + i)).collect();
        let recs: Vec<_> = (0..7)
            .map(|i| stream_log::Record {
                timestamp_ms: 1,
                key: &keys[i],
                value: &vals[i],
                priority: 0,
                codec: 0,
            })
            .collect();
        match log.append(&recs) {
            Ok(a) => log.wait_durable_blocking(a.last_offset).unwrap(),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("the file size limit stops appends");
    assert!(e.is_disk_full(), "{e}");
    // Still readable and consistent after the failure; a second failure is clean too.
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
    assert!(append_one_big(&log).is_err());
    println!("CHILD-RESULT hw={} err={e}", log.high_watermark());
}

fn append_one_big(log: &PartitionLog) -> Result<stream_log::Appended, LogError> {
    let v = vec![0u8; 5000];
    log.append(&[stream_log::Record {
        timestamp_ms: 1,
        key: b"",
        value: &v,
        priority: 0,
        codec: 0,
    }])
}

#[test]
fn write_failure_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fsize_child", "--nocapture", "--test-threads=1"])
        .env("STREAM_LOG_FSIZE_CHILD_DIR", d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = stdout.find("CHILD-RESULT").expect("child result");
    let line = stdout[at..].lines().next().unwrap();
    let hw: u64 = line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches("hw=")
        .parse()
        .unwrap();
    assert!(
        line.contains("File too large") && line.contains(".log"),
        "{line}"
    );
    assert!(hw > 0);
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.high_watermark(), hw);
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
}
