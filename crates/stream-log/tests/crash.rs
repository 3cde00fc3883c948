//! Crash tests: a child process (this test binary, re-executed) appends under a durability
//! policy and prints every acknowledged offset; the parent SIGKILLs it at random points, reopens
//! the log and checks that every acknowledged record is there and every record passes its CRC.
//!
//! A SIGKILL loses nothing in the page cache, so every policy must keep its acknowledged records
//! here; what the fsync policies add (surviving power loss) cannot be simulated in a test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use stream_log::{Durability, LogConfig, PartitionLog, Record};

fn config(d: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        ..cfg(d)
    }
}

/// Child half: appends forever (until killed), printing `ACK <last offset>` per batch once the
/// policy says the batch is acknowledged.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("STREAM_LOG_CRASH_DIR") else {
        return;
    };
    let policy: Durability = std::env::var("STREAM_LOG_CRASH_POLICY")
        .unwrap()
        .parse()
        .unwrap();
    let log = PartitionLog::open(Path::new(&dir), 0, config(policy)).unwrap();
    let mut rng = rand::rngs::StdRng::from_entropy();
    loop {
        let n = rng.gen_range(1..40u64);
        let base = log.high_watermark();
        let keys: Vec<Vec<u8>> = (0..n).map(|i| key_for(base + i)).collect();
        let vals: Vec<Vec<u8>> = (0..n).map(|i| value_for(base + i)).collect();
        let recs: Vec<Record<'_>> = (0..n as usize)
            .map(|i| Record {
                timestamp_ms: 1,
                key: &keys[i],
                value: &vals[i],
                priority: 2,
                codec: 0,
            })
            .collect();
        let a = log.append(&recs).unwrap();
        assert_eq!(a.base_offset, base);
        log.wait_durable_blocking(a.last_offset).unwrap();
        println!("ACK {}", a.last_offset);
    }
}

fn run_policy(policy: &str, rounds: usize, seed: u64) {
    let d = tempfile::tempdir().unwrap();
    let durability: Durability = policy.parse().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: Option<u64> = None;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STREAM_LOG_CRASH_DIR", d.path())
            .env("STREAM_LOG_CRASH_POLICY", policy)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let kill_after = rng.gen_range(1..400);
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while seen < kill_after && Instant::now() < deadline {
            let Some(line) = lines.next() else { break };
            let line = line.unwrap();
            if let Some(at) = line.find("ACK ") {
                let off: u64 = line[at + 4..].trim().parse().unwrap();
                assert!(acked.is_none_or(|a| off > a));
                acked = Some(off);
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(
            seen > 0,
            "{policy} round {round}: child acknowledged nothing"
        );
        let log = PartitionLog::open(d.path(), 0, config(durability)).unwrap();
        let hw = log.high_watermark();
        let last = acked.unwrap();
        assert!(
            hw > last,
            "{policy} round {round}: acknowledged {last} but recovered only up to {hw}"
        );
        // read_all decodes every record with its CRC checked and compares content.
        let all = read_all(&log, 0);
        all.iter().for_each(|r| check_record(r, 0));
        assert_eq!(all.len() as u64, hw);
        acked = Some(hw - 1);
    }
}

#[test]
fn crash_group_commit() {
    run_policy("group-commit", 6, 1);
}

#[test]
fn crash_every_write() {
    run_policy("every-write", 4, 2);
}

#[test]
fn crash_interval() {
    run_policy("interval:5ms", 4, 3);
}

#[test]
fn crash_never() {
    run_policy("never", 6, 4);
}
