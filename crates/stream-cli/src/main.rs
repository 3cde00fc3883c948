//! `stream-cli`: topics, produce, consume and group offsets from the command line.
//!
//! Human-friendly tables by default, `--json` for scripts (one JSON document, or one JSON
//! object per line for `consume`).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::json;
use stream_client::{
    BatchProducer, ConsumerConfig, GroupConsumer, Message, ProduceRecord, ProducerConfig,
    StartFrom, StreamClient,
};

#[derive(Parser, Debug)]
#[command(
    name = "stream-cli",
    version,
    about = "Command-line client for the STRP stream server"
)]
struct Cli {
    /// Server address, host:port.
    #[arg(
        long,
        short = 'a',
        env = "STREAM_ADDR",
        default_value = "localhost:9092",
        value_parser = cli_support::host_port,
        global = true
    )]
    addr: String,
    /// Machine-readable JSON output instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, delete and describe topics.
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Produce stdin to a topic: one message per line, `key<TAB>value` or just `value`.
    Produce {
        /// Topic to write to.
        topic: String,
        /// Write every message to this partition (default: by key, round robin without one).
        #[arg(long, short = 'p')]
        partition: Option<u32>,
    },
    /// Print a topic's messages, from an offset or as a member of a consumer group.
    Consume {
        /// Topic to read.
        topic: String,
        /// Only this partition (repeatable; default: all). Not with --group.
        #[arg(long, short = 'p')]
        partition: Vec<u32>,
        /// Start offset: a number, `earliest` or `latest`. With --group the group's committed
        /// offsets win; `earliest`/`latest` only says where to start without one.
        #[arg(long, short = 'o', default_value = "earliest")]
        offset: String,
        /// Consume as a member of this consumer group (commits as it goes).
        #[arg(long, short = 'g')]
        group: Option<String>,
        /// Keep waiting for new messages (long poll) instead of stopping at the end.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Stop after this many messages.
        #[arg(long, short = 'n')]
        max: Option<u64>,
        /// With --group: session timeout in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        session_timeout_ms: u64,
    },
    /// Consumer-group offsets and lag.
    #[command(subcommand)]
    Groups(GroupsCmd),
}

#[derive(Subcommand, Debug)]
enum TopicsCmd {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: u32,
    },
    /// List topics with their partition counts.
    List,
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Show a topic's partitions and their sizes (high watermarks).
    Describe {
        /// Topic name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum GroupsCmd {
    /// Committed offset of every partition of a topic for a group.
    Offsets {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
    },
    /// Committed offset, high watermark and lag per partition.
    Lag {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
    },
}

#[tokio::main]
async fn main() {
    let cli: Cli = cli_support::parse();
    if let Err(e) = run(cli).await {
        eprintln!("stream-cli: {e:#}");
        std::process::exit(1);
    }
}

async fn connect(addr: &str) -> Result<StreamClient> {
    StreamClient::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr} (set --addr or STREAM_ADDR)"))
}

async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Topics(cmd) => topics(&cli.addr, cmd, json).await,
        Command::Produce { topic, partition } => produce(&cli.addr, &topic, partition, json).await,
        Command::Consume {
            topic,
            partition,
            offset,
            group,
            follow,
            max,
            session_timeout_ms,
        } => {
            let out = Output::new(json);
            match group {
                Some(g) => {
                    if !partition.is_empty() {
                        bail!("--partition cannot be used with --group (the group assigns them)");
                    }
                    let mut cfg = ConsumerConfig::new(&g, &topic);
                    cfg.start = match offset.as_str() {
                        "earliest" => StartFrom::Earliest,
                        "latest" => StartFrom::Latest,
                        o => bail!(
                            "--offset {o} with --group: use earliest or latest (the group's \
                             committed offsets decide the rest)"
                        ),
                    };
                    cfg.session_timeout = Duration::from_millis(session_timeout_ms);
                    cfg.heartbeat_interval = cfg.session_timeout / 4;
                    consume_group(&cli.addr, cfg, follow, max, out).await
                }
                None => consume(&cli.addr, &topic, partition, &offset, follow, max, out).await,
            }
        }
        Command::Groups(cmd) => groups(&cli.addr, cmd, json).await,
    }
}

// ---- topics --------------------------------------------------------------------------------

async fn topics(addr: &str, cmd: TopicsCmd, json: bool) -> Result<()> {
    let mut c = connect(addr).await?;
    match cmd {
        TopicsCmd::Create { name, partitions } => {
            c.create_topic(&name, partitions)
                .await
                .with_context(|| format!("creating topic {name}"))?;
            if json {
                println!("{}", json!({"created": name, "partitions": partitions}));
            } else {
                println!("created topic {name} with {partitions} partition(s)");
            }
        }
        TopicsCmd::List => {
            let topics = c.metadata().await.context("listing topics")?;
            if json {
                let v: Vec<_> = topics
                    .iter()
                    .map(|(n, p)| json!({"name": n, "partitions": p}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let rows = topics
                    .iter()
                    .map(|(n, p)| vec![n.clone(), p.to_string()])
                    .collect();
                print_table(&["TOPIC", "PARTITIONS"], rows);
            }
        }
        TopicsCmd::Delete { name } => {
            c.delete_topic(&name)
                .await
                .with_context(|| format!("deleting topic {name}"))?;
            if json {
                println!("{}", json!({"deleted": name}));
            } else {
                println!("deleted topic {name}");
            }
        }
        TopicsCmd::Describe { name } => {
            let n = c
                .partition_count(&name)
                .await
                .with_context(|| format!("describing topic {name}"))?;
            let mut parts = Vec::new();
            for p in 0..n {
                let (start, hw) = c
                    .partition_offsets(&name, p)
                    .await
                    .with_context(|| format!("reading partition {p} of {name}"))?;
                parts.push((p, start, hw));
            }
            // Messages still stored (retention may have removed the oldest).
            let total: u64 = parts.iter().map(|(_, s, hw)| hw.saturating_sub(*s)).sum();
            if json {
                let v: Vec<_> = parts
                    .iter()
                    .map(|(p, s, hw)| {
                        json!({"partition": p, "log_start_offset": s, "high_watermark": hw})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"name": name, "partitions": n, "messages": total, "partition_info": v})
                );
            } else {
                println!("topic {name}: {n} partition(s), {total} message(s)");
                let rows = parts
                    .iter()
                    .map(|(p, s, hw)| vec![p.to_string(), s.to_string(), hw.to_string()])
                    .collect();
                print_table(&["PARTITION", "LOG_START", "HIGH_WATERMARK"], rows);
            }
        }
    }
    Ok(())
}

async fn high_watermark(c: &mut StreamClient, topic: &str, p: u32) -> Result<u64> {
    let (_, hw) = c
        .partition_offsets(topic, p)
        .await
        .with_context(|| format!("reading partition {p} of {topic}"))?;
    Ok(hw)
}

// ---- produce -------------------------------------------------------------------------------

/// `key<TAB>value` (split on the first tab) or just `value` (empty key).
fn split_line(line: &[u8]) -> (Bytes, Bytes) {
    match line.iter().position(|&b| b == b'\t') {
        Some(i) => (
            Bytes::copy_from_slice(&line[..i]),
            Bytes::copy_from_slice(&line[i + 1..]),
        ),
        None => (Bytes::new(), Bytes::copy_from_slice(line)),
    }
}

/// Reads stdin on a blocking thread and hands over lines (as bytes: values need not be
/// UTF-8) in chunks.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<Vec<u8>>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut chunk = Vec::with_capacity(1024);
        for line in stdin.lock().split(b'\n') {
            match line {
                Ok(mut l) => {
                    if l.last() == Some(&b'\r') {
                        l.pop();
                    }
                    chunk.push(l);
                    if chunk.len() == 1024
                        && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    rx
}

async fn produce(addr: &str, topic: &str, partition: Option<u32>, json: bool) -> Result<()> {
    let mut lines = stdin_lines();
    let mut count: u64 = 0;
    // Per partition: (first offset, last offset, count).
    let mut ranges: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
    let mut note = |p: u32, o: u64| {
        let e = ranges.entry(p).or_insert((o, o, 0));
        e.0 = e.0.min(o);
        e.1 = e.1.max(o);
        e.2 += 1;
    };
    match partition {
        Some(p) => {
            // An explicit partition: plain batches of the chunks read.
            let mut c = connect(addr).await?;
            while let Some(chunk) = lines.recv().await {
                let records = chunk
                    .context("reading stdin")?
                    .iter()
                    .map(|l| {
                        let (key, value) = split_line(l);
                        ProduceRecord {
                            key,
                            value,
                            priority: 2,
                        }
                    })
                    .collect::<Vec<_>>();
                let n = records.len() as u64;
                for o in c
                    .produce_batch(topic, Some(p), records)
                    .await
                    .with_context(|| format!("producing to {topic}/{p}"))?
                {
                    note(o.partition, o.offset);
                }
                count += n;
            }
        }
        None => {
            let producer = BatchProducer::connect(addr, topic, ProducerConfig::default())
                .await
                .with_context(|| format!("producing to {topic}"))?;
            let mut acks = Vec::new();
            while let Some(chunk) = lines.recv().await {
                for l in chunk.context("reading stdin")? {
                    let (k, v) = split_line(&l);
                    acks.push(producer.send(k, v).await?);
                }
                // Collect acks as we go so memory stays bounded on long inputs.
                if acks.len() >= 65536 {
                    for a in acks.drain(..) {
                        let o = a.await.with_context(|| format!("producing to {topic}"))?;
                        note(o.partition, o.offset);
                        count += 1;
                    }
                }
            }
            producer.flush().await?;
            for a in acks {
                let o = a.await.with_context(|| format!("producing to {topic}"))?;
                note(o.partition, o.offset);
                count += 1;
            }
            producer.close().await?;
        }
    }
    if json {
        let parts: Vec<_> = ranges
            .iter()
            .map(|(p, (first, last, n))| {
                json!({"partition": p, "first_offset": first, "last_offset": last, "count": n})
            })
            .collect();
        println!(
            "{}",
            json!({"topic": topic, "produced": count, "partitions": parts})
        );
    } else {
        println!("produced {count} message(s) to {topic}");
        let rows = ranges
            .iter()
            .map(|(p, (first, last, n))| {
                vec![
                    p.to_string(),
                    n.to_string(),
                    first.to_string(),
                    last.to_string(),
                ]
            })
            .collect();
        print_table(&["PARTITION", "COUNT", "FIRST_OFFSET", "LAST_OFFSET"], rows);
    }
    Ok(())
}

// ---- consume -------------------------------------------------------------------------------

struct Output {
    json: bool,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Output {
    fn new(json: bool) -> Output {
        Output {
            json,
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    fn message(&mut self, m: &Message) -> Result<()> {
        let key = String::from_utf8_lossy(&m.key);
        let value = String::from_utf8_lossy(&m.value);
        if self.json {
            let v = json!({
                "partition": m.partition,
                "offset": m.offset,
                "timestamp_ms": m.timestamp_ms,
                "key": key,
                "value": value,
            });
            writeln!(self.out, "{v}")?;
        } else if m.key.is_empty() {
            writeln!(self.out, "{}:{}\t{}", m.partition, m.offset, value)?;
        } else {
            writeln!(self.out, "{}:{}\t{}\t{}", m.partition, m.offset, key, value)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing stdout")
    }
}

async fn consume(
    addr: &str,
    topic: &str,
    partitions: Vec<u32>,
    offset: &str,
    follow: bool,
    max: Option<u64>,
    mut out: Output,
) -> Result<()> {
    let mut c = connect(addr).await?;
    let n = c
        .partition_count(topic)
        .await
        .with_context(|| format!("consuming {topic}"))?;
    let partitions: Vec<u32> = if partitions.is_empty() {
        (0..n).collect()
    } else {
        partitions
    };
    let mut positions = BTreeMap::new();
    for &p in &partitions {
        if p >= n {
            bail!("topic {topic} has no partition {p} (it has {n})");
        }
        let pos = match offset {
            "earliest" => {
                c.partition_offsets(topic, p)
                    .await
                    .with_context(|| format!("reading partition {p} of {topic}"))?
                    .0
            }
            "latest" => high_watermark(&mut c, topic, p).await?,
            o => o
                .parse()
                .with_context(|| format!("--offset {o}: expected a number, earliest or latest"))?,
        };
        positions.insert(p, pos);
    }
    let mut seen = 0u64;
    let mut turn = 0usize;
    loop {
        let mut got_any = false;
        let mut caught_up = true;
        for &p in &partitions {
            let pos = positions[&p];
            let f = c
                .fetch_wait(topic, p, pos, 1000, 1 << 20, Duration::ZERO)
                .await
                .with_context(|| format!("fetching {topic}/{p} at {pos}"))?;
            for m in &f.messages {
                out.message(m)?;
                seen += 1;
                positions.insert(p, m.offset + 1);
                if max.is_some_and(|mx| seen >= mx) {
                    return out.flush();
                }
            }
            got_any |= !f.messages.is_empty();
            caught_up &= positions[&p] >= f.high_watermark;
        }
        out.flush()?;
        if got_any {
            continue;
        }
        if caught_up && !follow {
            return Ok(());
        }
        // Caught up and following: long poll one partition (rotating), then sweep again.
        let p = partitions[turn % partitions.len()];
        turn = turn.wrapping_add(1);
        let pos = positions[&p];
        let f = c
            .fetch_wait(topic, p, pos, 1000, 1 << 20, Duration::from_millis(500))
            .await
            .with_context(|| format!("fetching {topic}/{p} at {pos}"))?;
        for m in &f.messages {
            out.message(m)?;
            seen += 1;
            positions.insert(p, m.offset + 1);
            if max.is_some_and(|mx| seen >= mx) {
                return out.flush();
            }
        }
        out.flush()?;
    }
}

async fn consume_group(
    addr: &str,
    cfg: ConsumerConfig,
    follow: bool,
    max: Option<u64>,
    mut out: Output,
) -> Result<()> {
    let (group, topic) = (cfg.group.clone(), cfg.topic.clone());
    let mut consumer = GroupConsumer::join(addr, cfg)
        .await
        .with_context(|| format!("joining group {group} on {topic}"))?;
    let mut seen = 0u64;
    let result: Result<()> = async {
        loop {
            let batch = tokio::select! {
                b = consumer.poll() => b.with_context(|| format!("consuming {topic} as {group}"))?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            if batch.is_empty() && !follow {
                return Ok(());
            }
            for (i, m) in batch.iter().enumerate() {
                out.message(m)?;
                seen += 1;
                if max.is_some_and(|mx| seen >= mx) {
                    // poll() moved the positions past the whole batch: rewind each partition
                    // to its first message not printed, so that close() commits only what
                    // was printed.
                    for rest in &batch[i + 1..] {
                        let pos = consumer.positions().get(&rest.partition).copied();
                        if pos.is_some_and(|p| rest.offset < p) {
                            consumer.seek(rest.partition, rest.offset);
                        }
                    }
                    break;
                }
            }
            out.flush()?;
            if max.is_some_and(|mx| seen >= mx) {
                return Ok(());
            }
        }
    }
    .await;
    consumer
        .close()
        .await
        .with_context(|| format!("leaving group {group}"))?;
    result
}

// ---- groups --------------------------------------------------------------------------------

async fn groups(addr: &str, cmd: GroupsCmd, json: bool) -> Result<()> {
    let mut c = connect(addr).await?;
    let (group, topic, lag) = match cmd {
        GroupsCmd::Offsets { group, topic } => (group, topic, false),
        GroupsCmd::Lag { group, topic } => (group, topic, true),
    };
    let n = c
        .partition_count(&topic)
        .await
        .with_context(|| format!("reading topic {topic}"))?;
    let mut rows = Vec::new();
    for p in 0..n {
        let committed = c
            .fetch_offset(&group, &topic, p)
            .await
            .with_context(|| format!("reading the offset of {group} on {topic}/{p}"))?;
        let hw = if lag {
            Some(high_watermark(&mut c, &topic, p).await?)
        } else {
            None
        };
        rows.push((p, committed, hw));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(p, committed, hw)| {
                let mut o = json!({"partition": p, "committed": committed});
                if let Some(hw) = hw {
                    o["high_watermark"] = json!(hw);
                    o["lag"] = json!(hw.saturating_sub(committed.unwrap_or(0)));
                }
                o
            })
            .collect();
        let total: u64 = rows
            .iter()
            .filter_map(|(_, c, hw)| hw.map(|hw| hw.saturating_sub(c.unwrap_or(0))))
            .sum();
        let mut doc = json!({"group": group, "topic": topic, "partitions": v});
        if lag {
            doc["total_lag"] = json!(total);
        }
        println!("{doc}");
    } else {
        let fmt = |c: &Option<u64>| c.map_or("-".to_string(), |o| o.to_string());
        if lag {
            let mut total = 0;
            let table = rows
                .iter()
                .map(|(p, c, hw)| {
                    let hw = hw.unwrap_or(0);
                    let l = hw.saturating_sub(c.unwrap_or(0));
                    total += l;
                    vec![p.to_string(), fmt(c), hw.to_string(), l.to_string()]
                })
                .collect();
            print_table(&["PARTITION", "COMMITTED", "HIGH_WATERMARK", "LAG"], table);
            println!("group {group} on {topic}: total lag {total}");
        } else {
            let table = rows
                .iter()
                .map(|(p, c, _)| vec![p.to_string(), fmt(c)])
                .collect();
            print_table(&["PARTITION", "COMMITTED"], table);
        }
    }
    Ok(())
}

/// Prints left-aligned columns sized to their widest cell.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_the_first_tab() {
        assert_eq!(split_line(b"k\tv"), (Bytes::from("k"), Bytes::from("v")));
        assert_eq!(
            split_line(b"k\tv\tw"),
            (Bytes::from("k"), Bytes::from("v\tw"))
        );
        assert_eq!(
            split_line(b"just value"),
            (Bytes::new(), Bytes::from("just value"))
        );
        assert_eq!(split_line(b""), (Bytes::new(), Bytes::new()));
        assert_eq!(
            split_line(b"\xff\tbin"),
            (Bytes::from(&b"\xff"[..]), Bytes::from("bin"))
        );
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["stream-cli", "--json", "consume", "t", "-g", "g1", "-f"])
            .unwrap();
        assert!(c.json);
        assert!(matches!(c.command, Command::Consume { follow: true, .. }));
    }
}
