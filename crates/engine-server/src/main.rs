//! `matching_engine`: the exchange matching engine server (the default command), its `replay`
//! tool, and `subscribe`, a watcher of the multicast market-data feed.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use engine_server::config::{
    ServerConfig, DEFAULT_MCAST_GROUP, DEFAULT_MCAST_INTERFACE, DEFAULT_MCAST_PORT,
};
use engine_server::mcast::{self, SeqEvent, SeqTracker};
use engine_server::wire;

/// Command line of `matching_engine`.
#[derive(Parser, Debug)]
#[command(
    name = "matching_engine",
    version,
    about = "Price-time priority matching engine: TCP, UDP and multicast market data",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Server options (used when no subcommand is given).
    #[command(flatten)]
    server: ServerConfig,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read CSV input lines from FILE (or stdin) and print the CSV output lines to stdout.
    Replay {
        /// Input file; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Join the multicast market-data group and print each datagram to stdout as
    /// `<seq> <message as CSV>` (a binary feed is printed as CSV too); gaps and bad datagrams
    /// are reported on stderr.
    Subscribe(SubscribeArgs),
}

/// Options of `matching_engine subscribe`; the feed's address takes the server's variables.
#[derive(clap::Args, Debug)]
struct SubscribeArgs {
    /// Multicast group to join.
    #[arg(long, env = "ENGINE_MCAST_GROUP", default_value_t = DEFAULT_MCAST_GROUP)]
    group: Ipv4Addr,

    /// UDP port of the feed (0 binds a free port; the "subscribed to" line says which).
    #[arg(long, env = "ENGINE_MCAST_PORT", default_value_t = DEFAULT_MCAST_PORT)]
    port: u16,

    /// IPv4 address of the interface to join the group on (0.0.0.0 = the kernel's choice by
    /// route).
    #[arg(long, env = "ENGINE_MCAST_INTERFACE", default_value_t = DEFAULT_MCAST_INTERFACE)]
    interface: Ipv4Addr,

    /// Exit (status 0) after printing N messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Exit with status 1 when no datagram arrives for MS milliseconds (default: wait forever).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: Option<u64>,
}

fn main() -> ExitCode {
    ignore_empty_engine_vars();
    let cli: Cli = cli_support::parse();
    let result = match cli.command {
        Some(Command::Replay { file }) => replay(file),
        Some(Command::Subscribe(args)) => subscribe(args),
        None => {
            init_logging();
            engine_server::server::run(cli.server)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain; returning the error from main would print
            // its Debug form, which under RUST_BACKTRACE=1 buries the cause under a backtrace.
            eprintln!("matching_engine: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// An `ENGINE_*` variable set to the empty string counts as unset: docker-compose passes
/// `ENGINE_X=${ENGINE_X}` through as empty when the host does not set it, and that must mean
/// "the default", not an invalid value.
fn ignore_empty_engine_vars() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("ENGINE_")) && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        // Still single-threaded here: nothing else reads the environment concurrently.
        std::env::remove_var(k);
    }
}

/// Logs go to stderr (stdout is the replay tool's output); RUST_LOG overrides the level.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn replay(file: Option<PathBuf>) -> anyhow::Result<()> {
    let stdout = io::stdout().lock();
    let stderr = io::stderr().lock();
    let stats = match file.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            engine_core::replay::run(io::BufReader::new(f), io::BufWriter::new(stdout), stderr)?
        }
        None => engine_core::replay::run(io::stdin().lock(), io::BufWriter::new(stdout), stderr)?,
    };
    if stats.parse_errors > 0 {
        eprintln!("{} line(s) could not be parsed", stats.parse_errors);
    }
    Ok(())
}

/// `matching_engine subscribe`: prints the feed until `--count` messages, an idle
/// `--timeout-ms` (an error), SIGINT/SIGTERM, or a closed stdout; then a summary on stderr.
fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Handlers before the "subscribed" line: a signal right after it still ends cleanly.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let sock = mcast::join(args.group, args.port, args.interface)?;
        sock.set_nonblocking(true)?;
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        let local = sock.local_addr()?;
        // The readiness line: from here on every datagram sent to the group reaches us.
        eprintln!("subscribed to {local} (interface {})", args.interface);

        let idle = args.timeout_ms.map(Duration::from_millis);
        let mut tracker = SeqTracker::default();
        let mut bad = 0u64;
        let summary = |tracker: &SeqTracker, bad: u64| {
            let mut s = tracker.summary();
            if bad > 0 {
                s.push_str(&format!(", {bad} bad datagrams"));
            }
            eprintln!("{s}");
        };
        let mut out = io::stdout().lock();
        let mut line = Vec::with_capacity(128);
        // Larger than any UDP payload, so no datagram is truncated.
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let (n, from) = tokio::select! {
                r = sock.recv_from(&mut buf) => r?,
                () = sleep_or_forever(idle) => {
                    summary(&tracker, bad);
                    anyhow::bail!(
                        "no datagram on {local} for {} ms (--timeout-ms)",
                        args.timeout_ms.unwrap_or_default()
                    );
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            };
            let decoded = mcast::decode_datagram(&buf[..n])
                .map_err(|e| e.to_string())
                .and_then(|(seq, msg)| {
                    wire::decode_output(msg)
                        .map(|m| (seq, m))
                        .map_err(|e| format!("sequence number {seq}: {e}"))
                });
            let (seq, msg) = match decoded {
                Ok(d) => d,
                Err(e) => {
                    bad += 1;
                    eprintln!("bad datagram from {from} ({n} bytes), skipped: {e}");
                    continue;
                }
            };
            match tracker.observe(seq) {
                SeqEvent::InOrder => {}
                SeqEvent::Gap { missing } => eprintln!(
                    "gap: missing {}..={} ({} datagrams)",
                    missing.start(),
                    missing.end(),
                    missing.end() - missing.start() + 1
                ),
                SeqEvent::Restart { previous } => {
                    eprintln!("sequence restarted at 1 after {previous} (publisher restarted?)")
                }
                SeqEvent::Stale { highest } => eprintln!(
                    "out of order: sequence number {seq} after {highest} (duplicate or reordered)"
                ),
            }
            line.clear();
            line.extend_from_slice(seq.to_string().as_bytes());
            line.push(b' ');
            engine_core::csv::encode_output(&msg, &mut line);
            line.push(b'\n');
            match out.write_all(&line).and_then(|()| out.flush()) {
                Ok(()) => {}
                // The reader went away (`subscribe | head -3`): a normal way to stop.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                Err(e) => return Err(anyhow::Error::new(e).context("write to stdout")),
            }
            if Some(tracker.received()) == args.count {
                break;
            }
        }
        summary(&tracker, bad);
        Ok(())
    })
}

/// Sleeps for `d`, or never returns when there is no timeout.
async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
