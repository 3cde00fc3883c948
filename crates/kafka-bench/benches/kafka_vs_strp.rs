//! Kafka through librdkafka against STRP through `stream-client`, on one running
//! stream-server, in one run: produce (100-byte values, every message acknowledged) and
//! consume (every message read back), plus the produce latency librdkafka reports per message.
//!
//! ```text
//! crates/kafka-bench/scripts/bench.sh            # builds, starts a server, runs this
//! cargo bench -p kafka-bench --bench kafka_vs_strp -- --addr 127.0.0.1:19092
//! ```
//!
//! Both sides are client libraries that batch, so the comparison is like for like: the
//! server's own load tool (`stream-bench`) costs less on the client side than either.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use stream_client::{BatchProducer, ProducerConfig, StreamClient};

#[derive(Parser, Debug)]
struct Args {
    /// The server (STRP and Kafka on one port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    addr: String,
    /// Messages per produce run.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partitions of each bench topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Consumers reading each topic side by side, each its own thread and connection,
    /// sharing the partitions out round robin (the same for both protocols).
    /// Several counts, comma-separated, run one after the other on the same messages.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    consumers: Vec<u32>,
    /// Messages per second of the paced latency run (librdkafka, default batching).
    #[arg(long, default_value_t = 100_000)]
    paced_rate: u64,
    /// Duration of the paced latency run, in seconds.
    #[arg(long, default_value_t = 5)]
    paced_secs: u64,
    /// `cargo bench` passes `--bench`; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Produce latency per message: from `produce()` to the delivery report (the broker's
/// `acks=all` answer), in microseconds.
struct Latencies {
    start: Instant,
    histogram: Mutex<Histogram<u64>>,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    /// The send time, in nanoseconds since `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.get_or_insert_with(|| e.to_string());
            return;
        }
        let now = self.start.elapsed().as_nanos() as usize;
        let micros = (now.saturating_sub(sent_ns) / 1000).max(1) as u64;
        let mut h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(micros);
    }
}

impl Latencies {
    fn new() -> Result<Latencies> {
        Ok(Latencies {
            start: Instant::now(),
            histogram: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
            failed: Mutex::new(None),
        })
    }

    fn report(&self, what: &str) {
        let h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "{what:<46} p50 {} us  p90 {} us  p99 {} us  p99.9 {} us  max {} us  ({} messages)",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len()
        );
    }
}

/// librdkafka's producer as the issue asks for it: `acks=all`, its default batching
/// (`linger.ms` 5, `batch.size` 1 MB, `batch.num.messages` 10000), no compression, and
/// idempotence off (its default).
fn kafka_producer(addr: &str) -> Result<BaseProducer<Latencies>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        .set("acks", "all")
        .set("compression.type", "none");
    if let Ok(contexts) = std::env::var("KAFKA_BENCH_DEBUG") {
        // librdkafka's own log (e.g. "broker,protocol,msg"), on stderr.
        config.set("debug", contexts);
    }
    config
        .create_with_context(Latencies::new()?)
        .context("creating the librdkafka producer")
}

/// Queues one message stamped with its send time, waiting (serving delivery reports) while
/// librdkafka's queue is full.
fn send(p: &BaseProducer<Latencies>, topic: &str, value: &[u8]) -> Result<()> {
    loop {
        let sent = p.context().start.elapsed().as_nanos() as usize;
        match p.send::<[u8], [u8]>(BaseRecord::with_opaque_to(topic, sent).payload(value)) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("produce to {topic}: {e:?}"),
        }
    }
}

/// Sends one message to `topic` and waits for its delivery, then forgets its latency: a new
/// librdkafka 2.0.2 producer holds its first messages for up to a second (its broker thread's
/// wake-up once the partition leaders are known), which is start-up, not steady state.
fn warm_up(p: &BaseProducer<Latencies>, topic: &str, value: &[u8]) -> Result<()> {
    send(p, topic, value)?;
    p.flush(Duration::from_secs(30))
        .context("flushing the warm-up message")?;
    p.context()
        .histogram
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reset();
    Ok(())
}

/// Produces `n` messages as fast as librdkafka takes them (waiting on its queue when full);
/// returns the time until the last delivery report.
fn kafka_produce(
    p: &BaseProducer<Latencies>,
    topic: &str,
    value: &[u8],
    n: u64,
) -> Result<Duration> {
    let t0 = Instant::now();
    for _ in 0..n {
        send(p, topic, value)?;
    }
    p.flush(Duration::from_secs(120))
        .context("flushing the producer")?;
    let dt = t0.elapsed();
    if let Some(e) = p
        .context()
        .failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        bail!("a delivery failed: {e}");
    }
    Ok(dt)
}

/// Produces at `rate` messages/s for `secs` seconds (in 1 ms ticks), for latency at a load
/// the server keeps up with.
fn kafka_produce_paced(
    p: &BaseProducer<Latencies>,
    topic: &str,
    value: &[u8],
    rate: u64,
    secs: u64,
) -> Result<()> {
    let t0 = Instant::now();
    let total = rate * secs;
    let mut sent = 0u64;
    while sent < total {
        let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due.min(total) {
            send(p, topic, value)?;
            sent += 1;
        }
        p.poll(Duration::from_millis(1));
    }
    p.flush(Duration::from_secs(60))
        .context("flushing the producer")?;
    Ok(())
}

/// Reads `n` messages of `topic` from the beginning of every partition through librdkafka's
/// consumer (assigned partitions, no group coordination, nothing committed), in batches of
/// up to 10,000 from its consumer queue (`rd_kafka_consume_batch_queue`, as high-throughput
/// librdkafka consumers read): `BaseConsumer::poll` of rdkafka 0.33 takes two queue
/// operations per message, which costs more than the whole fetch on this machine.
fn kafka_consume(addr: &str, topic: &str, partitions: &[u32], n: u64, size: usize) -> Result<Read> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the librdkafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let queue = ConsumerQueue::of(&c)?;
    let mut batch = vec![std::ptr::null_mut(); 10_000];
    let mut t0 = Instant::now();
    let mut got = 0u64;
    let mut last_progress = Instant::now();
    while got < n {
        // A batch call waits for a full batch or its timeout: short, so that the last,
        // partial batch is not held back.
        let messages = queue.next_batch(&mut batch, Duration::from_millis(5))?;
        if messages.is_empty() {
            if last_progress.elapsed() > Duration::from_secs(10) {
                bail!("no message within 10 s after {got} of {n}");
            }
            continue;
        }
        last_progress = Instant::now();
        if got == 0 {
            // Timed from the first message: librdkafka 2.0.2 takes up to a second to start
            // fetching (its broker thread's wake-up), as for producing.
            t0 = Instant::now();
        }
        for m in messages {
            let checked = m.check(size);
            m.destroy();
            checked?;
            got += 1;
        }
    }
    Ok(Read {
        messages: got,
        first: t0,
        last: Instant::now(),
    })
}

/// What one consumer read, and when its first and last message arrived.
struct Read {
    messages: u64,
    first: Instant,
    last: Instant,
}

/// All consumers' messages, and the time from the first one's start to the last one's end.
fn overall(reads: &[Read]) -> (u64, Duration) {
    let n = reads.iter().map(|r| r.messages).sum();
    let first = reads.iter().map(|r| r.first).min();
    let last = reads.iter().map(|r| r.last).max();
    let span = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    (n, span)
}

/// The partitions consumer `i` of `consumers` reads: round robin.
fn share(partitions: u32, consumers: u32, i: u32) -> Vec<u32> {
    (0..partitions).filter(|p| p % consumers == i).collect()
}

/// Runs `consume(i, its partitions)` once per consumer `i`, each on its own thread, and
/// gathers what they read.
fn side_by_side<F>(partitions: u32, consumers: u32, consume: F) -> Result<(u64, Duration)>
where
    F: Fn(usize, Vec<u32>) -> Result<Read> + Sync,
{
    let reads: Result<Vec<Read>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..consumers)
            .map(|i| {
                let consume = &consume;
                s.spawn(move || consume(i as usize, share(partitions, consumers, i)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a consumer thread panicked"))
            })
            .collect()
    });
    Ok(overall(&reads?))
}

/// A consumer's queue of fetched messages, for librdkafka's batch API (which rdkafka 0.33
/// does not wrap).
struct ConsumerQueue<'c> {
    queue: *mut rdkafka_sys::rd_kafka_queue_t,
    _consumer: &'c BaseConsumer,
}

/// A message of a batch, owned until [`RawMessage::destroy`].
struct RawMessage(*mut rdkafka_sys::rd_kafka_message_t);

impl<'c> ConsumerQueue<'c> {
    fn of(consumer: &'c BaseConsumer) -> Result<ConsumerQueue<'c>> {
        // SAFETY: the handle is valid while `consumer` lives, which the borrow ensures.
        let queue =
            unsafe { rdkafka_sys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        if queue.is_null() {
            bail!("librdkafka has no consumer queue for this handle");
        }
        Ok(ConsumerQueue {
            queue,
            _consumer: consumer,
        })
    }

    /// Waits up to `timeout` for messages; returns at most `buf.len()` of them.
    fn next_batch(
        &self,
        buf: &mut [*mut rdkafka_sys::rd_kafka_message_t],
        timeout: Duration,
    ) -> Result<Vec<RawMessage>> {
        // SAFETY: `buf` holds `buf.len()` slots for librdkafka to fill; the queue is valid.
        let n = unsafe {
            rdkafka_sys::rd_kafka_consume_batch_queue(
                self.queue,
                timeout.as_millis() as i32,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            bail!("rd_kafka_consume_batch_queue failed");
        }
        Ok(buf[..n as usize].iter().map(|&m| RawMessage(m)).collect())
    }
}

impl Drop for ConsumerQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: obtained from rd_kafka_queue_get_consumer, released once.
        unsafe { rdkafka_sys::rd_kafka_queue_destroy(self.queue) }
    }
}

impl RawMessage {
    /// The message is no error and carries a payload of `size` bytes.
    fn check(&self, size: usize) -> Result<()> {
        // SAFETY: librdkafka returned this message and it is not destroyed yet.
        let m = unsafe { &*self.0 };
        if m.err != rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            bail!("consume: {:?} at {}:{}", m.err, m.partition, m.offset);
        }
        if m.len != size {
            bail!(
                "message at {}:{} has {} bytes, not {size}",
                m.partition,
                m.offset,
                m.len
            );
        }
        Ok(())
    }

    fn destroy(self) {
        // SAFETY: each message of a batch is destroyed exactly once, here.
        unsafe { rdkafka_sys::rd_kafka_message_destroy(self.0) }
    }
}

/// STRP's batching producer: every message's ack awaited (in bulk).
async fn strp_produce(addr: &str, topic: &str, value: Bytes, n: u64) -> Result<Duration> {
    let producer = BatchProducer::connect(addr, topic, ProducerConfig::default()).await?;
    let t0 = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for _ in 0..n {
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
    Ok(dt)
}

/// STRP long-poll fetches of `partitions` on a connection (and a runtime) of its own,
/// decoded and CRC-verified by the client.
fn strp_consume(addr: &str, topic: &str, partitions: &[u32]) -> Result<Read> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut c = StreamClient::connect(addr).await?;
        let t0 = Instant::now();
        let mut total = 0u64;
        for &p in partitions {
            let (_, hw) = c.partition_offsets(topic, p).await?;
            let mut pos = 0;
            while pos < hw {
                let f = c
                    .fetch_wait(topic, p, pos, 100_000, 8 << 20, Duration::from_millis(100))
                    .await
                    .context("fetch")?;
                total += f.messages.len() as u64;
                pos = f.messages.last().map_or(pos, |m| m.offset + 1);
            }
        }
        Ok(Read {
            messages: total,
            first: t0,
            last: Instant::now(),
        })
    })
}

/// The messages stored in `partitions` of `topic` (all of them: nothing is deleted here).
async fn stored(c: &mut StreamClient, topic: &str, partitions: &[u32]) -> Result<u64> {
    let mut n = 0;
    for &p in partitions {
        n += c.partition_offsets(topic, p).await?.1;
    }
    Ok(n)
}

fn rate(n: u64, dt: Duration) -> f64 {
    n as f64 / dt.as_secs_f64()
}

fn line(what: &str, n: u64, dt: Duration) {
    println!(
        "{what:<46} {n} msgs in {:.2} s = {:.0} msgs/s",
        dt.as_secs_f64(),
        rate(n, dt)
    );
}

/// Reads both topics with `consumers` consumers a side; prints both rates and returns STRP's
/// over Kafka's.
async fn compare_consume(
    a: &Args,
    admin: &mut StreamClient,
    strp_topic: &str,
    kafka_topic: &str,
    consumers: u32,
) -> Result<f64> {
    let (strp_n, strp_c) = side_by_side(a.partitions, consumers, |_, parts| {
        strp_consume(&a.addr, strp_topic, &parts)
    })?;
    if strp_n != a.messages {
        bail!("STRP fetched {strp_n} of {} messages", a.messages);
    }
    line(
        &format!("STRP fetch_wait, {consumers} consumers, CRC-verified"),
        strp_n,
        strp_c,
    );
    let mut expected = Vec::new();
    for i in 0..consumers {
        expected.push(stored(admin, kafka_topic, &share(a.partitions, consumers, i)).await?);
    }
    let (kafka_n, kafka_c) = side_by_side(a.partitions, consumers, |i, parts| {
        kafka_consume(&a.addr, kafka_topic, &parts, expected[i], a.size)
    })?;
    // The warm-up message is read too.
    if kafka_n != a.messages + 1 {
        bail!("Kafka consumed {kafka_n} of {} messages", a.messages + 1);
    }
    line(
        &format!("Kafka librdkafka, {consumers} consumers"),
        kafka_n,
        kafka_c,
    );
    Ok(rate(strp_n, strp_c) / rate(kafka_n, kafka_c))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let a = Args::parse();
    if let Some(bad) = a.consumers.iter().find(|&&c| c == 0 || c > a.partitions) {
        bail!(
            "--consumers {bad} must be between 1 and --partitions ({})",
            a.partitions
        );
    }
    let value = vec![b'x'; a.size];
    let run = std::process::id();
    let (strp_topic, kafka_topic, paced_topic) = (
        format!("bench-strp-{run}"),
        format!("bench-kafka-{run}"),
        format!("bench-paced-{run}"),
    );
    let mut admin = StreamClient::connect(&a.addr)
        .await
        .with_context(|| format!("connecting to --addr {}", a.addr))?;
    for t in [&strp_topic, &kafka_topic, &paced_topic] {
        admin.create_topic(t, a.partitions).await?;
    }
    println!(
        "{} messages of {} bytes, {} partitions, server {}",
        a.messages, a.size, a.partitions, a.addr
    );

    // Produce: STRP, then Kafka, on the same server.
    let strp_p = strp_produce(&a.addr, &strp_topic, Bytes::from(value.clone()), a.messages).await?;
    line(
        "STRP BatchProducer, every message acked",
        a.messages,
        strp_p,
    );
    let producer = kafka_producer(&a.addr)?;
    warm_up(&producer, &kafka_topic, &value)?;
    let kafka_p = kafka_produce(&producer, &kafka_topic, &value, a.messages)?;
    line(
        "Kafka librdkafka acks=all, every message acked",
        a.messages,
        kafka_p,
    );
    producer
        .context()
        .report("  librdkafka produce latency at full load");
    drop(producer);

    // Consume what each produced, with each count of consumers.
    let mut consume_ratios = Vec::new();
    for &consumers in &a.consumers {
        let ratio = compare_consume(&a, &mut admin, &strp_topic, &kafka_topic, consumers).await?;
        consume_ratios.push(format!("{ratio:.2}x with {consumers}"));
    }

    // Latency at a rate the server keeps up with.
    let paced = kafka_producer(&a.addr)?;
    warm_up(&paced, &paced_topic, &value)?;
    kafka_produce_paced(&paced, &paced_topic, &value, a.paced_rate, a.paced_secs)?;
    paced.context().report(&format!(
        "  librdkafka produce latency at {} msgs/s",
        a.paced_rate
    ));
    drop(paced);

    println!(
        "Kafka/STRP: produce {:.2}x, consume {} (STRP's rate over Kafka's; 1.5 or less is the target)",
        rate(a.messages, strp_p) / rate(a.messages, kafka_p),
        consume_ratios.join(", "),
    );
    for t in [&strp_topic, &kafka_topic, &paced_topic] {
        admin.delete_topic(t).await?;
    }
    Ok(())
}
