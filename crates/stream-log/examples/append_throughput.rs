//! Appends 100-byte records in batches of 100 and prints wall-clock and CPU-time throughput.
//! CPU time (user + system, from getrusage) is a steadier figure than wall time on a machine
//! shared with other builds.
//!
//! `cargo run --release -p stream-log --example append_throughput -- [policy] [records]`
//! e.g. `-- never 5000000`.

use std::time::Instant;

use stream_log::{Durability, LogConfig, PartitionLog, Record};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let durability: Durability = args.next().unwrap_or_else(|| "never".into()).parse()?;
    let records: u64 = args.next().map_or(Ok(5_000_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_bytes: 64 << 20,
        durability,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), 0, config)?;
    let value = [0x5au8; 100];
    let batch = [Record {
        timestamp_ms: 1,
        key: b"",
        value: &value,
        priority: 2,
        codec: 0,
    }; 100];
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..records / 100 {
        log.append(&batch)?;
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    let n = (records / 100 * 100) as f64;
    println!(
        "policy={durability} records={n} wall={wall:.3}s ({:.2} M records/s) cpu={cpu:.3}s ({:.2} M records per CPU-second)",
        n / wall / 1e6,
        n / cpu / 1e6
    );
    Ok(())
}
