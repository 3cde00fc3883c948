//! Per-message latency percentiles (hdrhistogram) and single-pass throughput of the matching
//! core on the realistic mix of `engine_core::workload`, output encoded (binary) into a reused
//! buffer.
//!
//! `cargo bench -p engine-core --bench latency` (optional argument: stream length).
//! Each message is timed with two `Instant::now()` calls; their own cost (printed as "timer
//! overhead") is included in the percentiles, so they are an upper bound. Throughput is also
//! given per second of this thread's CPU time, which discounts time spent descheduled on a
//! loaded machine (cache interference from other processes remains).

use std::time::Instant;

use engine_core::{binary, InputMsg, OutputMsg, Route, Sink};
use hdrhistogram::Histogram;

use engine_core::workload;

struct Encode(Vec<u8>);

impl Sink for Encode {
    #[inline]
    fn emit(&mut self, msg: &OutputMsg, _route: Route) {
        binary::encode_output(msg, &mut self.0);
    }
}

/// CPU time consumed by this thread: unlike wall time, it excludes the time the thread spent
/// descheduled, which on a shared, loaded machine is most of the difference between runs.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    // `cargo bench` passes `--bench`; take the first numeric argument as the stream length.
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(2_000_000);
    let w = workload::build(n);
    let mut sink = Encode(Vec::with_capacity(1 << 16));

    // Throughput: untimed-per-message passes, plain and prefetching ahead (order-index bucket
    // ENGINE_BENCH_PREFETCH_DISTANCE (default 4) messages ahead, the orders named half as far
    // ahead: what a server draining a batch from its queue can do).
    let distance: usize = std::env::var("ENGINE_BENCH_PREFETCH_DISTANCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .max(2);
    for prefetch in [false, true] {
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        for _ in 0..3 {
            let mut engine = workload::primed_engine(&w);
            let cpu = thread_cpu_seconds();
            let start = Instant::now();
            for (i, m) in w.stream.iter().enumerate() {
                if prefetch {
                    if let Some(next) = w.stream.get(i + distance) {
                        engine.prefetch(next);
                    }
                    if let Some(next) = w.stream.get(i + distance / 2) {
                        engine.prefetch_orders(next);
                    }
                }
                engine.process(1, m, &mut sink);
                std::hint::black_box(&sink.0);
                sink.0.clear();
            }
            best = best.min(start.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(thread_cpu_seconds() - cpu);
        }
        let n = w.stream.len() as f64;
        println!(
            "throughput{}: {} messages: wall {:.1} ms = {:.2} M msgs/s; thread CPU time {:.1} ms = \
             {:.2} M msgs/s per CPU-second (best of 3 passes)",
            if prefetch { " (prefetch ahead)" } else { "" },
            w.stream.len(),
            best * 1e3,
            n / best / 1e6,
            best_cpu * 1e3,
            n / best_cpu / 1e6
        );
    }

    // Timer overhead.
    let mut overhead = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for _ in 0..1_000_000 {
        let t = Instant::now();
        overhead.saturating_record(t.elapsed().as_nanos() as u64);
    }

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    // Per kind: passive new, cancel, aggressive new (one that traded).
    let mut kinds: Vec<Histogram<u64>> = (0..3)
        .map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap())
        .collect();
    let mut resting = 0;
    for _ in 0..3 {
        let mut engine = workload::primed_engine(&w);
        for m in &w.stream {
            let t = Instant::now();
            engine.process(1, m, &mut sink);
            std::hint::black_box(&sink.0);
            let ns = t.elapsed().as_nanos() as u64;
            hist.saturating_record(ns);
            let kind = match m {
                InputMsg::Cancel(_) => 1,
                _ if sink.0.get(19) == Some(&b'T') => 2,
                _ => 0,
            };
            kinds[kind].saturating_record(ns);
            sink.0.clear();
        }
        resting = engine.resting_orders();
    }
    println!("resting orders at the end: {resting}");
    for (name, h) in ["passive new", "cancel", "trading new"].iter().zip(&kinds) {
        println!(
            "  {name:12} {:5.1}% p50 {} p99 {} ns",
            h.len() as f64 * 100.0 / hist.len() as f64,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99)
        );
    }
    println!(
        "timer overhead: p50 {} ns, p99 {} ns",
        overhead.value_at_quantile(0.5),
        overhead.value_at_quantile(0.99)
    );
    println!(
        "latency per message (ns, {} samples): p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {}",
        hist.len(),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.value_at_quantile(0.9999),
        hist.max()
    );
}
