//! Helpers shared by the integration tests.
#![allow(dead_code)]

use stream_log::{
    decode_batch, DecodedRecord, Durability, LogConfig, PartitionLog, Record, StoreOptions,
};

/// The deterministic value stored at `offset` by tests (so any reader can check content).
pub fn value_for(offset: u64) -> Vec<u8> {
    let len = 10 + (offset % 53) as usize;
    (0..len)
        .map(|i| (offset as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

pub fn key_for(offset: u64) -> Vec<u8> {
    if offset.is_multiple_of(3) {
        Vec::new()
    } else {
        format!("k{offset}").into_bytes()
    }
}

/// Appends `n` records whose content derives from their offsets.
pub fn append_n(log: &PartitionLog, n: usize, ts: u64) -> stream_log::Appended {
    let base = log.high_watermark();
    let keys: Vec<Vec<u8>> = (0..n as u64).map(|i| key_for(base + i)).collect();
    let values: Vec<Vec<u8>> = (0..n as u64).map(|i| value_for(base + i)).collect();
    let recs: Vec<Record<'_>> = (0..n)
        .map(|i| Record {
            timestamp_ms: ts,
            key: &keys[i],
            value: &values[i],
            priority: (i % 4) as u8,
            codec: 0,
        })
        .collect();
    let a = log.append(&recs).unwrap();
    assert_eq!(a.base_offset, base);
    a
}

/// Checks one decoded record against the deterministic content.
pub fn check_record(r: &DecodedRecord, partition: u32) {
    assert_eq!(r.value, value_for(r.offset), "value at offset {}", r.offset);
    assert_eq!(r.key, key_for(r.offset), "key at offset {}", r.offset);
    assert_eq!(r.partition, partition);
}

/// Reads everything from `from` to the high watermark, checking contiguity and content.
pub fn read_all(log: &PartitionLog, from: u64) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    let mut cur = from;
    loop {
        let b = log.read(cur, 1000, 1 << 20).unwrap();
        if b.count == 0 {
            break;
        }
        let recs = decode_batch(&b.bytes).expect("every returned record passes its CRC");
        assert_eq!(recs.len(), b.count as usize);
        for r in &recs {
            assert_eq!(r.offset, cur);
            cur += 1;
        }
        out.extend(recs);
    }
    assert_eq!(cur, log.high_watermark());
    out
}

pub fn cfg(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        ..LogConfig::default()
    }
}

pub fn small_segments(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        durability,
        ..LogConfig::default()
    }
}

/// Descriptors left free while RLIMIT_NOFILE is lowered (the `*_atomic` tests): enough to lay
/// out a topic's partitions (a few files at a time), far too few to hold 64 partitions' active
/// segments open at once (with [`keep_files_open`]).
pub const SPARE_FDS: u64 = 16;

/// Store options whose open-file cache is larger than any test's partitions: opening logs keeps
/// their files open until the process runs out of descriptors (a smaller cache would evict
/// instead, and the create or grow would succeed).
pub fn keep_files_open() -> StoreOptions {
    StoreOptions {
        max_open_files: Some(4096),
        ..StoreOptions::default()
    }
}

/// Descriptors this process has open.
pub fn open_fds() -> u64 {
    // The listing's own descriptor is counted too, and closed again: one spare.
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Sets the soft RLIMIT_NOFILE to `soft`; returns the old limits (for `restore_nofile`).
pub fn set_nofile(soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers to rlimit structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
    }
    old
}

/// Puts back the limits `set_nofile` returned.
pub fn restore_nofile(old: &libc::rlimit) {
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, old), 0);
    }
}

/// The names in a directory, sorted.
pub fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
