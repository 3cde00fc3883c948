//! Throughput of the matching core on the realistic mix of `engine_core::workload`, end to
//! end: each message is processed and its output encoded (binary, or CSV) into a reused
//! buffer; the `_prefetch` variant also issues `Engine::prefetch`/`prefetch_orders` a few
//! messages ahead, as a caller draining a batch can.
//!
//! `cargo bench -p engine-core --bench engine`

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use engine_core::{binary, csv, OutputMsg, Route, Sink};

use engine_core::workload;

/// Encodes every output message into one reused buffer, as a transport would before writing.
struct Encode<const CSV: bool>(Vec<u8>);

impl<const CSV: bool> Sink for Encode<CSV> {
    #[inline]
    fn emit(&mut self, msg: &OutputMsg, _route: Route) {
        if CSV {
            csv::encode_output(msg, &mut self.0);
            self.0.push(b'\n');
        } else {
            binary::encode_output(msg, &mut self.0);
        }
    }
}

const STREAM: usize = 1_000_000;

/// How far ahead the prefetching variant hints the order index (and half as far the orders).
const PREFETCH_DISTANCE: usize = 4;

fn run<const CSV: bool, const PREFETCH: bool>(w: &workload::Workload, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut sink = Encode::<CSV>(Vec::with_capacity(1 << 16));
    for _ in 0..iters {
        let mut engine = workload::primed_engine(w);
        let start = Instant::now();
        for (i, m) in w.stream.iter().enumerate() {
            if PREFETCH {
                if let Some(next) = w.stream.get(i + PREFETCH_DISTANCE) {
                    engine.prefetch(next);
                }
                if let Some(next) = w.stream.get(i + PREFETCH_DISTANCE / 2) {
                    engine.prefetch_orders(next);
                }
            }
            engine.process(1, m, &mut sink);
            black_box(&sink.0);
            sink.0.clear();
        }
        total += start.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let w = workload::build(STREAM);
    let mut g = c.benchmark_group("engine_mixed");
    g.throughput(Throughput::Elements(w.stream.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("binary_out", |b| {
        b.iter_custom(|iters| run::<false, false>(&w, iters))
    });
    g.bench_function("csv_out", |b| {
        b.iter_custom(|iters| run::<true, false>(&w, iters))
    });
    g.bench_function("binary_out_prefetch", |b| {
        b.iter_custom(|iters| run::<false, true>(&w, iters))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
