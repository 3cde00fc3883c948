//! Property test: random append / read / roll / reopen / retention sequences against an
//! in-memory model of the log.

mod common;

use proptest::prelude::*;
use stream_log::{
    decode_batch, Durability, LogConfig, LogError, PartitionLog, Record, FRAME_FIXED_BYTES,
};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(usize, usize, bool, u8)>),
    Read {
        at: u64,
        below: bool,
        max_records: u32,
        max_bytes: u32,
    },
    Roll,
    Reopen,
    Retention,
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0usize..12, 0usize..200, any::<bool>(), 0u8..4), 1..25).prop_map(Op::Append),
        5 => (any::<u64>(), proptest::bool::weighted(0.1), 0u32..60, 0u32..3000)
            .prop_map(|(at, below, max_records, max_bytes)| Op::Read { at, below, max_records, max_bytes }),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => Just(Op::Retention),
        1 => Just(Op::Flush),
    ]
}

#[derive(Clone)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    ts: u64,
    priority: u8,
}

impl Rec {
    fn frame_len(&self) -> u64 {
        (FRAME_FIXED_BYTES + self.key.len() + self.value.len()) as u64
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        ops in proptest::collection::vec(op(), 1..40),
        interval in 1u32..400,
        retention_bytes in proptest::option::of(1024u64..6000),
        retention_age in any::<bool>(),
        group_commit in any::<bool>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: interval,
            retention_bytes,
            retention_ms: retention_age.then_some(3_600_000),
            durability: if group_commit { Durability::GroupCommit } else { Durability::Never },
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(d.path(), 3, config.clone()).unwrap();
        let mut model: Vec<Rec> = Vec::new();
        let mut start = 0u64;
        let mut counter = 0u64;
        for op in ops {
            match op {
                Op::Append(specs) => {
                    let recs: Vec<Rec> = specs.iter().map(|&(k, v, old, priority)| {
                        counter += 1;
                        Rec {
                            key: vec![b'k'; k],
                            value: (0..v).map(|i| (i as u64 + counter) as u8).collect(),
                            ts: if old { 1 } else { now_ms() },
                            priority,
                        }
                    }).collect();
                    let rs: Vec<Record<'_>> = recs.iter().map(|r| Record {
                        timestamp_ms: r.ts, key: &r.key, value: &r.value, priority: r.priority, codec: 0,
                    }).collect();
                    let a = log.append(&rs).unwrap();
                    prop_assert_eq!(a.base_offset, model.len() as u64);
                    prop_assert_eq!(a.last_offset, (model.len() + recs.len() - 1) as u64);
                    model.extend(recs);
                }
                Op::Read { at, below, max_records, max_bytes } => {
                    let hw = model.len() as u64;
                    let off = if below && start > 0 { at % start } else { start + at % (hw - start + 2) };
                    let r = log.read(off, max_records, max_bytes);
                    if off < start || off > hw {
                        let out_of_range = matches!(r, Err(LogError::OffsetOutOfRange { .. }));
                        prop_assert!(out_of_range);
                        continue;
                    }
                    let b = r.unwrap();
                    let recs = decode_batch(&b.bytes).unwrap();
                    prop_assert_eq!(recs.len(), b.count as usize);
                    prop_assert!(b.count <= max_records);
                    prop_assert_eq!(b.high_watermark, hw);
                    if off < hw && max_records > 0 {
                        prop_assert!(b.count >= 1);
                    }
                    if b.count > 1 {
                        prop_assert!(b.bytes.len() as u64 <= u64::from(max_bytes));
                    }
                    for (i, r) in recs.iter().enumerate() {
                        let m = &model[(off as usize) + i];
                        prop_assert_eq!(r.offset, off + i as u64);
                        prop_assert_eq!(&r.key, &m.key);
                        prop_assert_eq!(&r.value, &m.value);
                        prop_assert_eq!(r.timestamp_ms, m.ts);
                        prop_assert_eq!(r.priority, m.priority);
                        prop_assert_eq!(r.partition, 3);
                    }
                    // Reads are as large as the limits allow.
                    let end = off + u64::from(b.count);
                    if b.count < max_records && end < hw {
                        let next = model[end as usize].frame_len();
                        prop_assert!(b.bytes.len() as u64 + next > u64::from(max_bytes));
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(d.path(), 3, config.clone()).unwrap();
                    let report = log.recovery_report();
                    prop_assert!(report.is_clean(), "{:?}", report);
                }
                Op::Retention => {
                    log.enforce_retention().unwrap();
                    let new_start = log.log_start_offset();
                    prop_assert!(new_start >= start && new_start <= model.len() as u64);
                    if let Some(rb) = retention_bytes {
                        prop_assert!(log.size_bytes() <= rb || log.segment_count() == 1);
                    }
                    start = new_start;
                }
                Op::Flush => log.flush().unwrap(),
            }
            prop_assert_eq!(log.high_watermark(), model.len() as u64);
            prop_assert_eq!(log.log_start_offset(), start);
            let stored: u64 = model[start as usize..].iter().map(Rec::frame_len).sum();
            prop_assert_eq!(log.size_bytes(), stored);
        }
    }
}
