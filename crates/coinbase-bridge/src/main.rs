//! `coinbase-bridge`: Coinbase Exchange FIX to stream-server topics.

use anyhow::Context as _;
use coinbase_bridge::backoff::Backoff;
use coinbase_bridge::config::{Config, ExecSource, PublisherAddress};
use coinbase_bridge::gateway::{self, GatewayParams, Role};
use coinbase_bridge::kafka::KafkaPublisher;
use coinbase_bridge::marketdata::MarketData;
use coinbase_bridge::publish::{self, Publisher, Record, Stats};
use coinbase_bridge::stream::StreamPublisher;
use coinbase_bridge::tls;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

// The Kafka publisher's decoders may reserve a length an answer claims before its bytes are
// there (see process_limits::huge_alloc).
#[global_allocator]
static ALLOC: process_limits::LazyHugeAlloc = process_limits::LazyHugeAlloc;

fn main() -> ExitCode {
    // .env (of the working directory only, not its parents: predictable in services) first,
    // so clap's env fallbacks see it; variables already in the environment win.
    let dotenv = dotenvy::from_path(".env");
    let unset = coinbase_bridge::config::unset_empty_env_vars();
    let cfg: Config = cli_support::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match dotenv {
        Ok(()) => tracing::info!("loaded .env"),
        Err(e) if e.not_found() => {}
        Err(e) => tracing::warn!("ignoring unreadable .env: {e}"),
    }
    if !unset.is_empty() {
        tracing::info!(?unset, "empty environment variables treated as unset");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    cfg.validate()?;
    // Debug output of the config redacts the secret and passphrase.
    tracing::info!(config = ?cfg, "coinbase-bridge starting");
    if cfg.sender() != cfg.api_key {
        tracing::warn!("SenderCompID differs from the API key; Coinbase expects them equal");
    }
    let tls = tls::client_config(cfg.ca_file.as_deref())?;

    let stats = Arc::new(Stats::default());
    let (sink, rx) = publish::channel(cfg.buffer_capacity, stats.clone());
    tracing::info!(addr = %cfg.stream_addr, "publishing");
    let pump = match &cfg.stream_addr {
        PublisherAddress::Strp(addr) => spawn_pump(StreamPublisher::new(addr), rx, &cfg, &stats),
        PublisherAddress::Kafka(addr) => spawn_pump(KafkaPublisher::new(addr), rx, &cfg, &stats),
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let params = |endpoint| GatewayParams {
        endpoint,
        tls: tls.clone(),
        tls_server_name: cfg.tls_server_name.clone(),
        api_key: cfg.api_key.clone(),
        api_secret: cfg.api_secret.clone(),
        passphrase: cfg.passphrase.clone(),
        sender_comp_id: cfg.sender().to_owned(),
        target_comp_id: cfg.target_comp_id.clone(),
        heartbeat: cfg.heartbeat(),
        cancel_on_disconnect: None,
        drop_copy_flag: false,
        backoff: Backoff::new(
            Duration::from_millis(cfg.reconnect_min_ms),
            Duration::from_millis(cfg.reconnect_max_ms),
        ),
    };
    let mut sessions = Vec::new();
    if let Some(ep) = cfg.md_endpoint() {
        tracing::info!(addr = %ep, symbols = ?cfg.symbols, "market data session");
        sessions.push(tokio::spawn(gateway::run(
            params(ep),
            Role::MarketData(Box::new(MarketData::new(&cfg.symbols))),
            sink.clone(),
            shutdown_rx.clone(),
        )));
    }
    if let Some(ep) = cfg.exec_endpoint() {
        tracing::info!(addr = %ep, source = ?cfg.executions, "execution report session");
        let mut p = params(ep);
        let (key, secret, passphrase, sender) = cfg.exec_credentials();
        p.api_key = key;
        p.api_secret = secret;
        p.passphrase = passphrase;
        p.sender_comp_id = sender;
        p.cancel_on_disconnect = cfg.cancel_on_disconnect.clone();
        p.drop_copy_flag = cfg.executions == ExecSource::DropCopy;
        sessions.push(tokio::spawn(gateway::run(
            p,
            Role::Executions,
            sink.clone(),
            shutdown_rx.clone(),
        )));
    }
    drop(sink);
    anyhow::ensure!(
        !sessions.is_empty(),
        "nothing to do: market data and executions are both disabled"
    );

    let stats_task = tokio::spawn(log_stats_periodically(stats.clone()));

    wait_for_signal().await?;
    stats_task.abort();
    tracing::info!("shutting down: logging out");
    let _ = shutdown_tx.send(true);
    for s in sessions {
        if tokio::time::timeout(Duration::from_secs(15), s)
            .await
            .is_err()
        {
            tracing::warn!("a session did not log out in time");
        }
    }
    // The sessions' sinks are gone; give the pump a moment to drain what is buffered.
    let mut pump = pump;
    if tokio::time::timeout(Duration::from_secs(5), &mut pump)
        .await
        .is_err()
    {
        pump.abort();
    }
    let lost = stats.outstanding();
    if lost > 0 {
        tracing::error!(lost, "records still buffered at exit were not published");
    }
    tracing::info!(
        published = stats.published.load(Ordering::Relaxed),
        dropped = stats.dropped.load(Ordering::Relaxed),
        rejected = stats.rejected.load(Ordering::Relaxed),
        lost,
        "coinbase-bridge stopped"
    );
    Ok(())
}

/// Starts the pump task over `publisher`; generic, so each protocol gets its own pump type.
fn spawn_pump<P: Publisher + 'static>(
    publisher: P,
    rx: mpsc::Receiver<Record>,
    cfg: &Config,
    stats: &Arc<Stats>,
) -> JoinHandle<()> {
    tokio::spawn(publish::run_pump(
        publisher,
        rx,
        stats.clone(),
        cfg.topic_partitions,
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
    ))
}

/// Logs the publishing counters every minute when they changed, so drops during a long
/// stream-server outage show up as totals, not only as the sampled per-drop lines.
async fn log_stats_periodically(stats: Arc<Stats>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    let mut last = (0, 0, 0);
    loop {
        tick.tick().await;
        let now = (
            stats.published.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
            stats.rejected.load(Ordering::Relaxed),
        );
        if now != last {
            let buffered = stats.outstanding();
            if now.1 > last.1 {
                tracing::warn!(
                    published = now.0,
                    dropped = now.1,
                    rejected = now.2,
                    buffered,
                    "publishing stats: records were dropped in the last minute"
                );
            } else {
                tracing::info!(
                    published = now.0,
                    dropped = now.1,
                    rejected = now.2,
                    buffered,
                    "publishing stats"
                );
            }
            last = now;
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
