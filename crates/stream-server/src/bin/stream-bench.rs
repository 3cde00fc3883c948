//! `stream-bench`: load generator for the stream server, with HDR latency percentiles.
//!
//! Subcommands: `batch` (BATCH_PRODUCE throughput), `produce` (single PRODUCE, pipelined),
//! `fetch` (consume throughput), `latency` (produce round trip, one request in flight).
//! Plain blocking sockets and threads keep the client cheap: requests are encoded once and
//! re-sent, so the figures measure the server.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use stream_proto::{ErrorCode, FrameDecoder, ProduceRecord, Request, Response, HEADER_LEN};

#[derive(Parser, Debug)]
#[command(name = "stream-bench", about = "Load generator for stream-server")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9092", global = true,
          value_parser = cli_support::socket_addr)]
    addr: SocketAddr,
    /// Topic (created if missing).
    #[arg(long, default_value = "bench", global = true)]
    topic: String,
    /// Partitions when creating the topic.
    #[arg(long, default_value_t = 4, global = true)]
    partitions: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, global = true)]
    size: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// BATCH_PRODUCE throughput.
    Batch {
        /// Total messages.
        #[arg(long, default_value_t = 5_000_000)]
        messages: u64,
        /// Messages per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Connections (one writer + one reader thread each).
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 8)]
        pipeline: usize,
    },
    /// Single-message PRODUCE, pipelined on one connection.
    Produce {
        /// Total messages.
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Requests in flight.
        #[arg(long, default_value_t = 256)]
        pipeline: usize,
        /// Connections.
        #[arg(long, default_value_t = 1)]
        connections: usize,
    },
    /// Consume everything in the topic (FETCH), one connection per partition.
    Fetch {
        /// Messages per FETCH.
        #[arg(long, default_value_t = 10_000)]
        max_messages: u32,
    },
    /// The disk's fdatasync time for an append of `--records` stored records (no server):
    /// what group commit can do at best is one fsync per window of pipelined produces, so an
    /// append of a window's records is the fsync the `produce` figure is compared with.
    Fsync {
        /// Directory to write the probe file in (use the server's data directory's disk).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Appends measured (each followed by fdatasync).
        #[arg(long, default_value_t = 2000)]
        count: u64,
        /// Stored records (of `--size` bytes of value) per append.
        #[arg(long, default_value_t = 1)]
        records: usize,
    },
    /// PRODUCE round trip with one request in flight.
    Latency {
        /// Requests measured.
        #[arg(long, default_value_t = 50_000)]
        requests: u64,
        /// Requests sent first and not measured.
        #[arg(long, default_value_t = 5_000)]
        warmup: u64,
    },
}

struct Conn {
    s: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
    tmp: Vec<u8>,
}

impl Conn {
    fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            buf: BytesMut::with_capacity(1 << 20),
            dec: FrameDecoder::new(),
            tmp: vec![0; 256 * 1024],
        })
    }

    /// The next answer already read, if a whole one is buffered.
    fn buffered(&mut self) -> anyhow::Result<Option<stream_proto::Frame>> {
        Ok(self.dec.decode(&mut self.buf)?)
    }

    fn recv(&mut self) -> anyhow::Result<stream_proto::Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf)? {
                return Ok(f);
            }
            let n = self.s.read(&mut self.tmp)?;
            self.buf.extend_from_slice(&self.tmp[..n]);
            if n == 0 {
                bail!("server closed the connection");
            }
        }
    }

    fn call(&mut self, req: &Request) -> anyhow::Result<Response> {
        self.s.write_all(&req.to_frame())?;
        let f = self.recv()?;
        Ok(Response::decode(f.header.type_id, f.payload)?)
    }
}

fn ensure_topic(args: &Args) -> anyhow::Result<()> {
    let mut c = Conn::connect(args.addr)?;
    let r = c.call(&Request::CreateTopic {
        name: args.topic.clone(),
        partitions: args.partitions,
    })?;
    match r.error_code() {
        ErrorCode::None | ErrorCode::TopicAlreadyExists => Ok(()),
        e => bail!("create topic: {e}"),
    }
}

/// Sends `frames` (cycling) `count` times with `depth` in flight; returns the latency
/// histogram (µs) of every request.
///
/// One thread, the way an asynchronous client runs a connection: it sends every request the
/// window has room for in one write, then reads, and counts every answer of that read before
/// it sends again. A window handed from a reader thread to a writer thread one slot at a time
/// would instead send the first freed slot's request alone, which the server then fsyncs on
/// its own while the rest of the window waits for the next fsync, and every round would pay
/// two more thread wake-ups.
fn pipelined(
    addr: SocketAddr,
    frames: Vec<Bytes>,
    count: u64,
    depth: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut conn = Conn::connect(addr)?;
    let depth = depth.max(1) as u64;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(depth as usize);
    let mut out = Vec::with_capacity(1 << 20);
    let (mut sent, mut answered) = (0u64, 0u64);
    while answered < count {
        let room = (depth - (sent - answered)).min(count - sent);
        if room > 0 {
            out.clear();
            for _ in 0..room {
                out.extend_from_slice(&frames[(sent as usize) % frames.len()]);
                sent += 1;
            }
            let now = Instant::now();
            sent_at.extend(std::iter::repeat_n(now, room as usize));
            conn.s.write_all(&out)?;
        }
        let mut next = Some(conn.recv()?);
        while let Some(f) = next {
            let Some(at) = sent_at.pop_front() else {
                bail!("an answer the client did not ask for");
            };
            hist.saturating_record(at.elapsed().as_micros().max(1) as u64);
            // Check the error code only (i16 at the start of every payload).
            if f.payload.len() >= 2 {
                let code = i16::from_le_bytes([f.payload[0], f.payload[1]]);
                if code != 0 {
                    let r = Response::decode(f.header.type_id, f.payload.clone());
                    bail!("server error {code}: {r:?}");
                }
            }
            answered += 1;
            next = conn.buffered()?;
        }
    }
    Ok(hist)
}

fn report(what: &str, messages: u64, bytes: u64, elapsed: Duration, hist: Option<&Histogram<u64>>) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what}: {messages} messages in {secs:.2}s = {:.0} msgs/s, {:.1} MB/s of values",
        messages as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    if let Some(h) = hist {
        println!(
            "  request latency µs: p50 {} p90 {} p99 {} p99.9 {} max {} (n={})",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len()
        );
    }
}

fn merge(hs: Vec<Histogram<u64>>) -> anyhow::Result<Histogram<u64>> {
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for h in hs {
        all.add(h)?;
    }
    Ok(all)
}

fn run_parallel(
    n: usize,
    f: impl Fn(usize) -> anyhow::Result<Histogram<u64>> + Send + Sync + 'static,
) -> anyhow::Result<Histogram<u64>> {
    let f = std::sync::Arc::new(f);
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            thread::spawn(move || f(i))
        })
        .collect();
    let mut out = Vec::new();
    for h in hs {
        out.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
        );
    }
    merge(out)
}

/// Appends `records` stored records of `size` bytes of value and fdatasyncs, `count` times,
/// in a fresh file under `dir`; prints the fsync time percentiles.
fn fsync_probe(
    dir: &std::path::Path,
    size: usize,
    records: usize,
    count: u64,
) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join(format!("stream-bench-fsync-{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("creating {} (--dir)", path.display()))?;
    let record = vec![b'x'; (size + stream_proto::record::RECORD_FIXED_LEN) * records.max(1)];
    let mut hist = Histogram::<u64>::new(3)?;
    let result = (|| -> anyhow::Result<()> {
        for _ in 0..count {
            file.write_all(&record)?;
            let t = Instant::now();
            file.sync_data()?;
            hist.record(t.elapsed().as_nanos() as u64)?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    result.with_context(|| format!("appending to {}", path.display()))?;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "fdatasync after a {}-byte append, {count} times: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        record.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Args = cli_support::parse();
    if let Cmd::Fsync {
        dir,
        count,
        records,
    } = &args.cmd
    {
        return fsync_probe(dir, args.size, *records, *count);
    }
    ensure_topic(&args)?;
    let value = Bytes::from(vec![b'x'; args.size]);
    match args.cmd {
        Cmd::Batch {
            messages,
            batch,
            connections,
            pipeline,
        } => {
            let frames: Vec<Bytes> = (0..args.partitions)
                .map(|p| {
                    Request::BatchProduce {
                        topic: args.topic.clone(),
                        partition: p,
                        records: (0..batch)
                            .map(|_| ProduceRecord {
                                key: Bytes::new(),
                                value: value.clone(),
                                priority: 2,
                            })
                            .collect(),
                    }
                    .to_frame()
                })
                .collect();
            let requests = messages / batch as u64;
            let per_conn = requests / connections as u64;
            let addr = args.addr;
            let t = Instant::now();
            let hist = run_parallel(connections, move |i| {
                let mut fr = frames.clone();
                fr.rotate_left(i % frames.len());
                pipelined(addr, fr, per_conn, pipeline)
            })?;
            let n = per_conn * connections as u64 * batch as u64;
            report(
                &format!(
                    "batch produce ({batch}/request, {connections} conns, {pipeline} in flight)"
                ),
                n,
                n * args.size as u64,
                t.elapsed(),
                Some(&hist),
            );
        }
        Cmd::Produce {
            messages,
            pipeline,
            connections,
        } => {
            let frames = vec![Request::Produce {
                topic: args.topic.clone(),
                key: Bytes::new(),
                value: value.clone(),
                priority: 2,
            }
            .to_frame()];
            let per_conn = messages / connections as u64;
            let addr = args.addr;
            let t = Instant::now();
            let hist = run_parallel(connections, move |_| {
                pipelined(addr, frames.clone(), per_conn, pipeline)
            })?;
            let n = per_conn * connections as u64;
            report(
                &format!("single produce ({pipeline} in flight, {connections} conns)"),
                n,
                n * args.size as u64,
                t.elapsed(),
                Some(&hist),
            );
        }
        Cmd::Fetch { max_messages } => {
            let addr = args.addr;
            let topic = args.topic.clone();
            let t = Instant::now();
            let totals: Vec<_> = (0..args.partitions)
                .map(|p| {
                    let topic = topic.clone();
                    thread::spawn(move || -> anyhow::Result<(u64, u64)> {
                        let mut c = Conn::connect(addr)?;
                        let (mut offset, mut n, mut bytes) = (0u64, 0u64, 0u64);
                        loop {
                            c.s.write_all(
                                &Request::Fetch {
                                    topic: topic.clone(),
                                    partition: p,
                                    offset,
                                    max_messages,
                                }
                                .to_frame(),
                            )?;
                            let f = c.recv()?;
                            bytes += (HEADER_LEN + f.payload.len()) as u64;
                            let fr = match Response::decode(f.header.type_id, f.payload)? {
                                Response::Fetch(fr) => fr,
                                r => bail!("unexpected {r:?}"),
                            };
                            if fr.error != ErrorCode::None {
                                bail!("fetch error {}: {}", fr.error, fr.message);
                            }
                            if fr.count == 0 {
                                return Ok((n, bytes));
                            }
                            n += u64::from(fr.count);
                            offset += u64::from(fr.count);
                        }
                    })
                })
                .collect();
            let (mut n, mut bytes) = (0, 0);
            for h in totals {
                let (a, b) = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("fetch thread panicked"))??;
                n += a;
                bytes += b;
            }
            let e = t.elapsed();
            report("fetch", n, n * args.size as u64, e, None);
            println!(
                "  wire bytes: {:.1} MB/s",
                bytes as f64 / e.as_secs_f64() / 1e6
            );
        }
        // Answered before connecting, above.
        Cmd::Fsync { .. } => {}
        Cmd::Latency { requests, warmup } => {
            let mut c = Conn::connect(args.addr)?;
            let frame = Request::Produce {
                topic: args.topic.clone(),
                key: Bytes::new(),
                value,
                priority: 2,
            }
            .to_frame();
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut hist_ns = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            let t = Instant::now();
            for i in 0..warmup + requests {
                let s = Instant::now();
                c.s.write_all(&frame)?;
                let f = c.recv()?;
                let el = s.elapsed();
                if f.payload.len() < 2 || f.payload[0] != 0 || f.payload[1] != 0 {
                    bail!(
                        "produce failed: {:?}",
                        Response::decode(f.header.type_id, f.payload)
                    );
                }
                if i >= warmup {
                    hist.saturating_record(el.as_micros().max(1) as u64);
                    hist_ns.saturating_record(el.as_nanos().max(1) as u64);
                }
            }
            report(
                "produce round trip (1 in flight)",
                warmup + requests,
                (warmup + requests) * args.size as u64,
                t.elapsed(),
                Some(&hist),
            );
            println!(
                "  ns: p50 {} p99 {} p99.9 {}",
                hist_ns.value_at_quantile(0.5),
                hist_ns.value_at_quantile(0.99),
                hist_ns.value_at_quantile(0.999)
            );
        }
    }
    Ok(())
}
