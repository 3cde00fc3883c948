//! Client-side throughput and latency against a running stream-server, through this crate's
//! API (BatchProducer, pipelined PRODUCE, long-poll fetch, single round trips).
//!
//! ```text
//! cargo run --release -p stream-client --example client_bench -- --addr 127.0.0.1:9092
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use stream_client::{BatchProducer, ProducerConfig, StreamClient};
use stream_proto::{Request, Response};

#[derive(Parser, Debug)]
struct Args {
    /// Server address.
    #[arg(long, env = "STREAM_ADDR", default_value = "127.0.0.1:9092")]
    addr: String,
    /// Messages for the throughput runs.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partitions of the bench topic.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Requests in flight for the pipelined PRODUCE run.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Round trips for the latency run.
    #[arg(long, default_value_t = 20_000)]
    samples: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let mut c = StreamClient::connect(&a.addr).await?;
    let topic = format!("client-bench-{}", std::process::id());
    c.create_topic(&topic, a.partitions).await?;
    let value = Bytes::from(vec![b'x'; a.size]);

    // 1. BatchProducer
    let producer = BatchProducer::connect(&a.addr, &topic, ProducerConfig::default()).await?;
    let t0 = Instant::now();
    let mut acks = VecDeque::new();
    for _ in 0..a.messages {
        acks.push_back(producer.send(Bytes::new(), value.clone()).await?);
        if acks.len() >= 200_000 {
            for ack in acks.drain(..100_000) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    let dt = t0.elapsed();
    producer.close().await?;
    report("BatchProducer (acked)", a.messages, dt);

    // 2. Single-message PRODUCE, pipelined on one connection
    let n = a.messages / 4;
    let req = Request::Produce {
        topic: topic.clone(),
        key: Bytes::new(),
        value: value.clone(),
        priority: 2,
    };
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut done = 0u64;
    while done < n {
        // Refill in bursts (one write for half a window) rather than one write per answer.
        if c.in_flight() <= a.window / 2 {
            while sent < n && c.in_flight() < a.window {
                c.send(&req)?;
                sent += 1;
            }
        }
        match c.recv().await? {
            Response::Produce { error, .. } if error.is_ok() => done += 1,
            other => anyhow::bail!("produce failed: {other:?}"),
        }
    }
    report(
        &format!("PRODUCE pipelined (window {})", a.window),
        n,
        t0.elapsed(),
    );

    // 3. Consume everything with long-poll fetches
    let t0 = Instant::now();
    let mut total = 0u64;
    for p in 0..a.partitions {
        let (_, hw) = c.partition_offsets(&topic, p).await?;
        let mut pos = 0;
        while pos < hw {
            let f = c
                .fetch_wait(&topic, p, pos, 100_000, 8 << 20, Duration::from_millis(100))
                .await
                .context("fetch")?;
            total += f.messages.len() as u64;
            pos = f.messages.last().map_or(pos, |m| m.offset + 1);
        }
    }
    report("fetch (CRC-verified, decoded)", total, t0.elapsed());

    // 4. Produce round trip, one request in flight
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..a.samples {
        let t = Instant::now();
        c.produce(&topic, b"", &value).await?;
        h.record(t.elapsed().as_micros().max(1) as u64)?;
    }
    println!(
        "{:<40} p50 {} us  p99 {} us  p99.9 {} us  max {} us  ({} samples)",
        "PRODUCE round trip (1 in flight)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    );
    c.delete_topic(&topic).await?;
    Ok(())
}

fn report(what: &str, n: u64, dt: Duration) {
    println!(
        "{what:<40} {n} msgs in {:.2} s = {:.0} msgs/s",
        dt.as_secs_f64(),
        n as f64 / dt.as_secs_f64()
    );
}
