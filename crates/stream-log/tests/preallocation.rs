//! The active segment's file is extended with zeros ahead of its records under the fsync
//! policies (`partition/append.rs`): the zeros must never be read as records, a flush and a
//! roll cut the file back to its records, and recovery cuts a zero tail without calling it
//! damage while still reporting a torn record in front of it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use stream_log::{Durability, LogConfig, PartitionLog};

const SEGMENT: &str = "00000000000000000000.log";

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Appends `batches` batches of 50 and waits for each to be durable.
fn append_durably(log: &PartitionLog, batches: usize) {
    for _ in 0..batches {
        let a = append_n(log, 50, 1);
        log.wait_durable_blocking(a.last_offset).unwrap();
    }
}

fn grown_log(dir: &Path, durability: Durability) -> (PartitionLog, PathBuf) {
    let log = PartitionLog::open(dir, 0, cfg(durability)).unwrap();
    append_durably(&log, 60); // 3,000 records, ~250 KB
    (log, dir.join(SEGMENT))
}

#[test]
fn a_crash_leaves_zeros_after_the_records_and_recovery_cuts_them_quietly() {
    let d = tempfile::tempdir().unwrap();
    let (log, seg) = grown_log(d.path(), Durability::GroupCommit);
    let records = log.size_bytes();
    assert!(
        file_len(&seg) > records,
        "zeros written ahead: file {} bytes, records {records}",
        file_len(&seg)
    );
    assert!(file_len(&seg) - records <= stream_log::MAX_PREALLOCATION + 50 * 200);
    // Dropped without a flush, as a crash leaves it (the drop only fsyncs).
    drop(log);
    assert!(file_len(&seg) > records);

    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    let report = log.recovery_report().clone();
    assert_eq!(
        report.truncated_bytes, 0,
        "zeros are not damage: {report:?}"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("zeros")),
        "{report:?}"
    );
    assert_eq!(log.high_watermark(), 3000);
    assert_eq!(file_len(&seg), records, "cut back to the records");
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
    // Appending goes on after the last record, not after the zeros.
    append_durably(&log, 10);
    assert_eq!(read_all(&log, 0).len(), 3500);
}

#[test]
fn a_torn_record_in_front_of_the_zeros_is_reported_and_cut() {
    let d = tempfile::tempdir().unwrap();
    let (log, seg) = grown_log(d.path(), Durability::GroupCommit);
    let records = log.size_bytes();
    drop(log);
    // Half a record's worth of non-zero bytes where the next record would go.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 40], records).unwrap();
    drop(f);
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    let report = log.recovery_report().clone();
    assert!(report.truncated_bytes > 0, "{report:?}");
    assert_eq!(log.high_watermark(), 3000);
    assert_eq!(file_len(&seg), records);
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
}

#[test]
fn a_flush_and_a_roll_leave_files_holding_exactly_their_records() {
    let d = tempfile::tempdir().unwrap();
    let (log, seg) = grown_log(d.path(), Durability::GroupCommit);
    log.flush().unwrap();
    assert_eq!(file_len(&seg), log.size_bytes());
    drop(log);
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );

    append_durably(&log, 60);
    let sealed_records = log.size_bytes();
    assert!(file_len(&seg) > sealed_records, "preallocated again");
    log.roll().unwrap();
    assert_eq!(
        file_len(&seg),
        sealed_records,
        "the sealed segment is cut to its records"
    );
    append_durably(&log, 2);
    assert_eq!(read_all(&log, 0).len(), 6100);
    drop(log);
    let log = PartitionLog::open(d.path(), 0, cfg(Durability::GroupCommit)).unwrap();
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    read_all(&log, 0).iter().for_each(|r| check_record(r, 0));
}

#[test]
fn only_the_policies_that_wait_for_fsyncs_preallocate() {
    for durability in [
        Durability::Never,
        Durability::Interval(std::time::Duration::from_secs(60)),
    ] {
        let d = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(
            d.path(),
            0,
            LogConfig {
                durability,
                ..LogConfig::default()
            },
        )
        .unwrap();
        for _ in 0..60 {
            append_n(&log, 50, 1);
        }
        assert_eq!(
            file_len(&d.path().join(SEGMENT)),
            log.size_bytes(),
            "{durability}"
        );
    }
}
