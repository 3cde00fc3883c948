//! `engine-bench`: load tool for the matching engine server over TCP.
//!
//! - `latency`: one client, one order in flight; measures the time from writing an order to
//!   reading its ack (HDR histogram, p50/p99/p99.9/max).
//! - `throughput`: pipelined clients writing orders as fast as the socket takes them while a
//!   reader thread per client counts acks; reports orders per second.
//!
//! Two workloads (`--workload`):
//! - `small` (the default) keeps books small and steady: each client alternates a buy and a sell
//!   of the same quantity at the same price under its own user id, so every second order trades
//!   against the previous one (no self-trade prevention in the engine). Per order the server
//!   sends the ack, every second order a trade, and top-of-book changes.
//! - `large` (throughput mode, one client) is the matching core's benchmark mix
//!   (`engine_core::workload`, shared with `cargo bench -p engine-core`): 100 symbols
//!   primed with 2,000 resting orders each (200,000; `ENGINE_BENCH_RESTING` per symbol), untimed,
//!   then `--orders` messages of 60 % new orders near the touch, 30 % cancels, 10 % orders that
//!   cross; the books grow to about 350,000 resting orders over 1,000,000 messages. Each
//!   message is complete at its ack, cancel ack or reject (a cancel of an order filled
//!   meanwhile is rejected, as in real flow). Needs a fresh server: the ids are fixed.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use engine_core::{binary, csv, workload, InputMsg, NewOrder, OutputMsg, Side, Symbol};
use hdrhistogram::Histogram;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "engine-bench",
    about = "Load tool for matching_engine over TCP"
)]
struct Args {
    /// Server TCP address.
    #[arg(long, default_value = "127.0.0.1:1234", value_parser = cli_support::socket_addr)]
    addr: SocketAddr,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Latency)]
    mode: Mode,
    /// Wire protocol of the orders.
    #[arg(long, value_enum, default_value_t = Wire::Binary)]
    wire: Wire,
    /// Order flow (throughput mode): small steady books, or the core bench's large books.
    #[arg(long, value_enum, default_value_t = Workload::Small)]
    workload: Workload,
    /// Orders per client.
    #[arg(long, default_value_t = 100_000)]
    orders: u32,
    /// Orders sent before measuring (latency mode).
    #[arg(long, default_value_t = 10_000)]
    warmup: u32,
    /// Concurrent clients (throughput mode); each uses its own user id and symbol.
    #[arg(long, default_value_t = 1)]
    clients: u32,
    /// Orders per write call (throughput mode).
    #[arg(long, default_value_t = 256)]
    batch: u32,
    /// Most orders a client has sent but not seen acked (throughput mode). Bounds the output the
    /// server queues for the client, which disconnects consumers that fall too far behind.
    #[arg(long, default_value_t = 16_384)]
    window: u32,
    /// Busy-poll the socket instead of sleeping in `read` (latency and echo-baseline modes): the
    /// way a latency-sensitive trading client waits, and on a VM the only way to keep the
    /// scheduler's wake-up cost out of the measurement. Burns a core while it runs.
    #[arg(long)]
    spin: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Mode {
    Latency,
    Throughput,
    /// The latency loop against an in-process echo thread that answers each frame with one
    /// 22-byte frame: what kernel loopback TCP and two wake-ups cost on this machine, with no
    /// engine (`--addr` is ignored).
    EchoBaseline,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Workload {
    /// Each client alternates a buy and a sell at one price: books of at most one order.
    Small,
    /// The matching core's benchmark mix over 100 symbols, books of hundreds of thousands of
    /// orders (one client).
    Large,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Wire {
    Binary,
    Csv,
}

fn main() -> anyhow::Result<()> {
    let args: Args = cli_support::parse();
    match args.mode {
        Mode::Latency => latency(&args),
        Mode::Throughput if args.workload == Workload::Large => throughput_large(&args),
        Mode::Throughput => throughput(&args),
        Mode::EchoBaseline => echo_baseline(&args),
    }
}

fn echo_baseline(args: &Args) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind echo listener")?;
    let addr = listener.local_addr().context("echo address")?;
    let wire = args.wire;
    let spin = args.spin;
    std::thread::spawn(move || -> anyhow::Result<()> {
        let (s, _) = listener.accept().context("accept")?;
        s.set_nodelay(true).context("TCP_NODELAY")?;
        let mut s = Polled::new(s, spin)?;
        // Answer every order frame with a binary-ack-sized frame, as the engine would.
        let mut ack = Vec::new();
        let msg = OutputMsg::Ack {
            symbol: Symbol::new(b"LAT").unwrap_or_default(),
            user: 1,
            user_order_id: 1,
        };
        let start = ack.len();
        ack.extend_from_slice(&[0; 4]);
        match wire {
            Wire::Binary => binary::encode_output(&msg, &mut ack),
            Wire::Csv => {
                csv::encode_output(&msg, &mut ack);
                ack.push(b'\n');
            }
        }
        let len = (ack.len() - start - 4) as u32;
        ack[..4].copy_from_slice(&len.to_be_bytes());
        let mut len = [0u8; 4];
        let mut payload = vec![0u8; 65_536];
        loop {
            if s.read_exact(&mut len).is_err() {
                return Ok(());
            }
            let n = u32::from_be_bytes(len) as usize;
            s.read_exact(&mut payload[..n.min(65_536)])
                .context("read")?;
            s.write_all(&ack).context("write")?;
        }
    });
    latency(&Args {
        addr,
        ..args.clone()
    })
}

/// The i-th order of a client: buy on even, sell on odd, same price and quantity.
fn order(user: u32, symbol: Symbol, i: u32) -> InputMsg {
    InputMsg::New(NewOrder {
        user,
        symbol,
        symbol_too_long: false,
        price: 10_000,
        qty: 10,
        side: if i.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        user_order_id: i + 1,
    })
}

/// Appends one framed order.
fn frame(wire: Wire, msg: &InputMsg, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match wire {
        Wire::Binary => binary::encode_input(msg, out),
        Wire::Csv => {
            csv::encode_input(msg, out);
            out.push(b'\n');
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Reads framed responses and reports whether each one is an ack or reject (an order's first
/// response).
struct Responses<R: Read> {
    rd: BufReader<R>,
    wire: Wire,
    payload: Vec<u8>,
}

impl<R: Read> Responses<R> {
    fn new(r: R, wire: Wire) -> Self {
        Responses {
            rd: BufReader::with_capacity(1 << 16, r),
            wire,
            payload: Vec::with_capacity(128),
        }
    }

    /// Reads one frame; true when it is an ack (a reject is an error).
    fn next_is_ack(&mut self) -> anyhow::Result<bool> {
        match self.next()? {
            OutputMsg::Reject { reason, .. } => bail!("order rejected: {reason:?}"),
            OutputMsg::Ack { .. } => Ok(true),
            _ => Ok(false),
        }
    }

    /// Reads one frame; true when it completes a message: an ack, a cancel ack or a reject.
    fn next_completes(&mut self) -> anyhow::Result<bool> {
        Ok(matches!(
            self.next()?,
            OutputMsg::Ack { .. } | OutputMsg::CancelAck { .. } | OutputMsg::Reject { .. }
        ))
    }

    /// Reads and decodes one frame.
    fn next(&mut self) -> anyhow::Result<OutputMsg> {
        let mut len = [0u8; 4];
        self.rd.read_exact(&mut len).context("read frame length")?;
        let len = u32::from_be_bytes(len) as usize;
        self.payload.resize(len, 0);
        self.rd
            .read_exact(&mut self.payload)
            .context("read frame payload")?;
        let msg = match self.wire {
            Wire::Binary => binary::decode_output(&self.payload)
                .map_err(|e| anyhow::anyhow!("bad binary response: {e}"))?,
            Wire::Csv => {
                let line = self.payload.strip_suffix(b"\n").unwrap_or(&self.payload);
                csv::decode_output(line).map_err(|e| anyhow::anyhow!("bad CSV response: {e}"))?
            }
        };
        Ok(msg)
    }
}

/// A socket that, in spin mode, is non-blocking and retried until it makes progress: reads and
/// writes never put the thread to sleep.
struct Polled {
    sock: TcpStream,
    spin: bool,
}

impl Polled {
    fn new(sock: TcpStream, spin: bool) -> anyhow::Result<Polled> {
        sock.set_nonblocking(spin).context("set non-blocking")?;
        Ok(Polled { sock, spin })
    }

    fn retry<T>(&mut self, mut op: impl FnMut(&mut TcpStream) -> io::Result<T>) -> io::Result<T> {
        loop {
            match op(&mut self.sock) {
                Err(e) if self.spin && e.kind() == io::ErrorKind::WouldBlock => {
                    std::hint::spin_loop()
                }
                r => return r,
            }
        }
    }
}

impl Read for Polled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.retry(|s| s.read(buf))
    }
}

impl Write for Polled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.retry(|s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(s)
}

fn latency(args: &Args) -> anyhow::Result<()> {
    let stream = connect(args.addr)?;
    let mut wr = Polled::new(stream.try_clone().context("clone stream")?, args.spin)?;
    let mut responses = Responses::new(Polled::new(stream, args.spin)?, args.wire);
    let symbol = Symbol::new(b"LAT").context("symbol")?;
    // A user id per run so repeated runs against one server never collide on order ids.
    let user = std::process::id();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram")?;
    let mut buf = Vec::with_capacity(64);
    let total = args.warmup + args.orders;
    for i in 0..total {
        buf.clear();
        frame(args.wire, &order(user, symbol, i), &mut buf);
        let t0 = Instant::now();
        wr.write_all(&buf).context("write order")?;
        while !responses.next_is_ack()? {}
        let ns = t0.elapsed().as_nanos() as u64;
        if i >= args.warmup {
            hist.record(ns.max(1)).context("record")?;
        }
    }
    println!(
        "{}latency {:?} over TCP{}, {} orders (after {} warm-up), one in flight: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        if args.mode == Mode::EchoBaseline {
            "echo-baseline "
        } else {
            ""
        },
        args.wire,
        if args.spin { ", client busy-polling" } else { "" },
        args.orders,
        args.warmup,
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.90) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.value_at_quantile(0.999) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
    Ok(())
}

fn throughput(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut threads = Vec::new();
    for c in 0..args.clients {
        let stream = connect(args.addr)?;
        let mut wr = stream.try_clone().context("clone stream")?;
        let wire = args.wire;
        let orders = args.orders;
        let batch = args.batch.max(1);
        let user = std::process::id().wrapping_mul(64).wrapping_add(c);
        let symbol = Symbol::new(format!("TP{c}").as_bytes()).context("symbol")?;
        // Encode everything up front so the writer measures the server, not the encoder.
        let mut bytes = Vec::with_capacity(orders as usize * 32);
        let mut cuts = vec![0];
        for i in 0..orders {
            frame(wire, &order(user, symbol, i), &mut bytes);
            if (i + 1).is_multiple_of(batch) {
                cuts.push(bytes.len());
            }
        }
        cuts.push(bytes.len());
        let acked = Arc::new(AtomicU32::new(0));
        let window = args.window.max(batch);
        let writer = {
            let acked = acked.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                for (k, w) in cuts.windows(2).enumerate() {
                    let sent = (k as u32).saturating_mul(batch);
                    while sent.saturating_sub(acked.load(Ordering::Acquire)) > window - batch {
                        std::thread::yield_now();
                    }
                    wr.write_all(&bytes[w[0]..w[1]]).context("write orders")?;
                }
                Ok(())
            })
        };
        let reader = std::thread::spawn(move || -> anyhow::Result<Duration> {
            let mut responses = Responses::new(stream, wire);
            let t0 = Instant::now();
            let mut acks = 0;
            while acks < orders {
                if responses.next_is_ack()? {
                    acks += 1;
                    if acks % 64 == 0 {
                        acked.store(acks, Ordering::Release);
                    }
                }
            }
            Ok(t0.elapsed())
        });
        threads.push((writer, reader));
    }
    let mut total = 0u64;
    for (w, r) in threads {
        w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        r.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
        total += args.orders as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput {:?} over TCP, {} client(s), window {}, {} orders in {:.3} s: {:.0} orders/s",
        args.wire,
        args.clients,
        args.window,
        total,
        secs,
        total as f64 / secs
    );
    Ok(())
}

/// Sends `msgs` over `stream`, framed, in writes of `batch` messages with at most `window` of
/// them not yet complete, and returns the time from the first write until every one is
/// complete (its ack, cancel ack or reject has arrived).
fn pipeline(
    stream: &TcpStream,
    wire: Wire,
    msgs: &[InputMsg],
    batch: u32,
    window: u32,
) -> anyhow::Result<Duration> {
    let batch = batch.max(1) as usize;
    let window = window.max(batch as u32) as usize;
    let mut bytes = Vec::with_capacity(msgs.len() * 32);
    let mut cuts = vec![0];
    for (i, m) in msgs.iter().enumerate() {
        frame(wire, m, &mut bytes);
        if (i + 1) % batch == 0 {
            cuts.push(bytes.len());
        }
    }
    cuts.push(bytes.len());
    let done = Arc::new(AtomicU32::new(0));
    let mut wr = stream.try_clone().context("clone stream")?;
    let rd = stream.try_clone().context("clone stream")?;
    let total = msgs.len();
    let start = Instant::now();
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || -> anyhow::Result<()> {
            for (k, w) in cuts.windows(2).enumerate() {
                let sent = k * batch;
                while sent.saturating_sub(done.load(Ordering::Acquire) as usize) > window - batch {
                    std::thread::yield_now();
                }
                wr.write_all(&bytes[w[0]..w[1]]).context("write orders")?;
            }
            Ok(())
        })
    };
    let mut responses = Responses::new(rd, wire);
    let mut complete = 0;
    while complete < total {
        if responses.next_completes()? {
            complete += 1;
            if complete % 64 == 0 {
                done.store(complete as u32, Ordering::Release);
            }
        }
    }
    let elapsed = start.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    Ok(elapsed)
}

/// Throughput with large books: the core bench's workload, primed untimed, then the measured
/// stream, both pipelined over one connection.
fn throughput_large(args: &Args) -> anyhow::Result<()> {
    if args.clients != 1 {
        bail!("--workload large runs one client (its order ids are fixed)");
    }
    let w = workload::build(args.orders as usize);
    // Where the books end: the same messages through a local engine.
    let mut local = workload::primed_engine(&w);
    let primed = local.resting_orders();
    let mut discard = Vec::new();
    for m in &w.stream {
        local.process(0, m, &mut discard);
        discard.clear();
    }
    let stream = connect(args.addr)?;
    let prime = pipeline(&stream, args.wire, &w.prime, args.batch, args.window)?;
    let run = pipeline(&stream, args.wire, &w.stream, args.batch, args.window)?;
    let secs = run.as_secs_f64();
    println!(
        "throughput {:?} over TCP, large books ({} symbols, {} resting primed in {:.3} s, {} at the end), window {}, {} messages in {:.3} s: {:.0} msgs/s",
        args.wire,
        workload::SYMBOLS,
        primed,
        prime.as_secs_f64(),
        local.resting_orders(),
        args.window,
        w.stream.len(),
        secs,
        w.stream.len() as f64 / secs
    );
    Ok(())
}
