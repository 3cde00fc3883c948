//! Storage engine benchmarks: append throughput per durability policy, group commit with many
//! writers, sequential read and random read by offset.
//!
//! Run: `cargo bench -p stream-log --bench log` (figures in docs/performance.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use stream_log::{Durability, LogConfig, PartitionLog, Record};

const BATCH: usize = 100;
const VALUE: [u8; 100] = [0x5a; 100];

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        // Keeps the bench's disk use bounded; applied every few thousand batches.
        retention_bytes: Some(512 << 20),
        durability,
        ..LogConfig::default()
    }
}

fn batch() -> Vec<Record<'static>> {
    vec![
        Record {
            timestamp_ms: 1,
            key: b"",
            value: &VALUE,
            priority: 2,
            codec: 0
        };
        BATCH
    ]
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_100x100B");
    g.throughput(Throughput::Elements(BATCH as u64));
    let recs = batch();
    for pol in ["never", "group-commit"] {
        let d = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(d.path(), 0, config(pol.parse().unwrap())).unwrap();
        // Single writer; under group commit it does not wait for durability here (the server
        // acknowledges after wait_durable: see the many-writers bench).
        g.bench_function(BenchmarkId::new("single_writer", pol), |b| {
            let mut n = 0u64;
            b.iter(|| {
                log.append(&recs).unwrap();
                n += 1;
                if n.is_multiple_of(4096) {
                    log.enforce_retention().unwrap();
                }
            })
        });
    }
    g.finish();
}

/// `writers` threads each append a batch and wait for it to be durable, repeatedly: every
/// acknowledged record is on disk. Throughput counts acknowledged records.
fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit_acked_100x100B");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for writers in [1usize, 16, 64] {
        let d = tempfile::tempdir().unwrap();
        let log =
            Arc::new(PartitionLog::open(d.path(), 0, config(Durability::GroupCommit)).unwrap());
        g.bench_function(BenchmarkId::new("writers", writers), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(writers as u64);
                let start = Instant::now();
                let ts: Vec<_> = (0..writers)
                    .map(|_| {
                        let log = log.clone();
                        std::thread::spawn(move || {
                            let recs = batch();
                            for _ in 0..per {
                                let a = log.append(&recs).unwrap();
                                log.wait_durable_blocking(a.last_offset).unwrap();
                            }
                        })
                    })
                    .collect();
                for t in ts {
                    t.join().unwrap();
                }
                let el = start.elapsed();
                log.enforce_retention().unwrap();
                el.mul_f64(iters as f64 / (per * writers as u64) as f64)
            })
        });
    }
    // The server's shape: many connections as async tasks on a small runtime, each appending
    // and awaiting `wait_durable` before acknowledging.
    for tasks in [256usize, 1024] {
        let d = tempfile::tempdir().unwrap();
        let log =
            Arc::new(PartitionLog::open(d.path(), 0, config(Durability::GroupCommit)).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        g.bench_function(BenchmarkId::new("async_tasks", tasks), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(tasks as u64);
                let start = Instant::now();
                rt.block_on(async {
                    let hs: Vec<_> = (0..tasks)
                        .map(|_| {
                            let log = log.clone();
                            tokio::spawn(async move {
                                let recs = batch();
                                for _ in 0..per {
                                    let a = log.append(&recs).unwrap();
                                    log.wait_durable(a.last_offset).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                });
                let el = start.elapsed();
                log.enforce_retention().unwrap();
                el.mul_f64(iters as f64 / (per * tasks as u64) as f64)
            })
        });
    }
    g.finish();
}

fn filled(records: u64) -> (tempfile::TempDir, PartitionLog) {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: None,
        ..config(Durability::Never)
    };
    let log = PartitionLog::open(d.path(), 0, cfg).unwrap();
    let recs = batch();
    for _ in 0..records / BATCH as u64 {
        log.append(&recs).unwrap();
    }
    (d, log)
}

fn read(c: &mut Criterion) {
    let total = 1_000_000u64;
    let (_d, log) = filled(total);
    let mut g = c.benchmark_group("read_100B");
    // Sequential consumer: 1000 records (138 KB) per fetch, wrapping around.
    g.throughput(Throughput::Elements(1000));
    g.bench_function("sequential_1000_per_fetch", |b| {
        let mut off = 0;
        b.iter(|| {
            let r = log.read(off, 1000, 1 << 20).unwrap();
            off += u64::from(r.count);
            if off >= total {
                off = 0;
            }
            r.count
        })
    });
    g.finish();

    // Random single-record reads: latency is flat in the log size (one binary search of a
    // sparse index, then a walk of at most index_interval_bytes).
    let mut g = c.benchmark_group("random_read_1_record");
    g.throughput(Throughput::Elements(1));
    for n in [10_000u64, 1_000_000] {
        let (_d2, small);
        let l = if n == total {
            &log
        } else {
            (_d2, small) = filled(n);
            &small
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        g.bench_function(BenchmarkId::new("log_records", n), |b| {
            b.iter(|| l.read(rng.gen_range(0..n), 1, 1 << 20).unwrap().count)
        });
    }
    g.finish();
}

criterion_group!(benches, append, group_commit, read);
criterion_main!(benches);
