//! Startup, the accept loop (with --max-connections; the STRP port and, with --kafka-port, the
//! Kafka one), background housekeeping, and graceful
//! shutdown on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stream_log::{OffsetStore, TopicStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::{Config, MetricsPort};
use crate::conn::{self, ConnConfig};
use crate::groups::Coordinator;
use crate::kafka::Kafka;
use crate::sniff::{protocol_of, sniff, Protocol, SniffError};

/// Decrements the open-connection count when a connection task ends, however it ends.
struct ConnGuard(Arc<AtomicUsize>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains and flushes.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    // Installed first, so that a signal sent as soon as the ready line appears is handled.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Created once, before the loop: a signal stream only sees signals sent after it exists.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let log_cfg = cfg.log_config();
    let store_opts = cfg.store_options();
    let dir = cfg.data_dir.clone();
    // Before the store opens: its open-file cache is sized from the soft limit by default.
    // Failures are reported by log_connection_capacity below.
    let _ = process_limits::raise_open_files();
    let opened = Instant::now();
    let (store, offsets) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = TopicStore::open_with(&dir, log_cfg, store_opts)
            .with_context(|| format!("opening topics in {}", dir.display()))?;
        let offsets = OffsetStore::open(&dir)
            .with_context(|| format!("opening committed offsets in {}", dir.display()))?;
        Ok((store, offsets))
    })
    .await
    .context("storage open task")??;
    tracing::info!(
        topics = store.topics().len(),
        partitions = store.total_partitions(),
        max_open_files = store.max_open_files(),
        elapsed_ms = opened.elapsed().as_millis() as u64,
        "storage recovered"
    );

    log_connection_capacity(cfg.max_connections);

    // The recorder must exist before the broker registers its metric handles.
    let metrics_handle = match cfg.metrics_port {
        MetricsPort::Off => None,
        MetricsPort::Port(port) => {
            let addr: SocketAddr = format!("{}:{port}", cfg.bind)
                .parse()
                .or_else(|_| format!("0.0.0.0:{port}").parse())
                .context("metrics address")?;
            // Metrics are an aid, not the service: a taken port (9100 is also node-exporter's
            // default) is logged loudly but does not keep the broker down.
            match crate::metrics::serve(addr).await {
                Ok((bound, handle)) => {
                    tracing::info!("metrics on http://{bound}/metrics");
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!("metrics endpoint disabled: {e:#}");
                    None
                }
            }
        }
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let groups = Coordinator::new(Duration::from_millis(cfg.session_timeout_ms));
    let broker = Arc::new(Broker::new(
        store,
        offsets,
        groups,
        cfg.durability,
        crate::budget::MemoryBudget::new(cfg.memory_budget_bytes),
        shutdown_rx.clone(),
    ));

    let listener = TcpListener::bind((cfg.bind.as_str(), cfg.port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.bind, cfg.port))?;
    let local = listener.local_addr().context("local_addr")?;
    let kafka_listener = match cfg.kafka_port {
        Some(port) => {
            let l = TcpListener::bind((cfg.bind.as_str(), port))
                .await
                .with_context(|| {
                    format!(
                        "binding the Kafka port {}:{port} (--kafka-port / STREAM_KAFKA_PORT)",
                        cfg.bind
                    )
                })?;
            let addr = l.local_addr().context("local_addr")?;
            tracing::info!("Kafka protocol also on {addr}");
            Some(l)
        }
        None => None,
    };
    let kafka = Arc::new(Kafka::new(cfg.kafka_config()));
    // The one readiness line tests and operators wait for: address first (parse_addr takes
    // the first address-looking token).
    tracing::info!(
        "listening on {local} (STRP and Kafka) data_dir={} advertised={}:{} durability={} \
         max_connections={} memory_budget_bytes={}",
        cfg.data_dir.display(),
        kafka.config.advertised_host,
        kafka
            .config
            .advertised_port
            .map_or_else(|| "<port connected to>".to_string(), |p| p.to_string()),
        cfg.durability,
        cfg.max_connections,
        broker.memory.limit()
    );

    spawn_housekeeping(
        broker.clone(),
        kafka.clone(),
        metrics_handle,
        shutdown_rx.clone(),
    );

    let open = Arc::new(AtomicUsize::new(0));
    let next_id = AtomicU64::new(1);
    let conn_cfg = ConnConfig {
        idle_timeout: cfg.idle_timeout(),
        request_timeout: cfg.request_timeout(),
        max_in_flight: cfg.max_in_flight,
        write_timeout: cfg.write_timeout(),
    };
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = accept_any(&listener, kafka_listener.as_ref()) => {
                let (sock, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let n = open.fetch_add(1, Ordering::AcqRel);
                if n >= cfg.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    broker.metrics.refused.increment(1);
                    tracing::warn!(%peer, open = n, max = cfg.max_connections,
                        "refusing connection: max connections reached");
                    drop(sock);
                    continue;
                }
                metrics::gauge!("strp_connections_open").set((n + 1) as f64);
                let guard = ConnGuard(open.clone());
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let (b, rx, k) = (broker.clone(), shutdown_rx.clone(), kafka.clone());
                conns.spawn(async move {
                    let _guard = guard;
                    serve_connection(sock, b, id, conn_cfg, k, rx).await;
                });
            }
        }
    }

    // Stop accepting, let connections finish what they have in flight, flush, exit.
    drop(listener);
    drop(kafka_listener);
    let _ = shutdown_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_millis(cfg.shutdown_timeout_ms), drain)
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing anyway");
        conns.abort_all();
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.store().flush_all())
        .await
        .context("flush task")?
        .context("flushing logs on shutdown")?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The next connection of either listener.
async fn accept_any(
    main: &TcpListener,
    kafka: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match kafka {
        Some(k) => tokio::select! {
            r = main.accept() => r,
            r = k.accept() => r,
        },
        None => main.accept().await,
    }
}

/// Tells the connection's protocol from its first bytes and serves it.
async fn serve_connection(
    mut sock: TcpStream,
    broker: Arc<Broker>,
    id: u64,
    cfg: ConnConfig,
    kafka: Arc<Kafka>,
    mut shutdown: watch::Receiver<bool>,
) {
    let first = tokio::select! {
        r = sniff(&mut sock, cfg.idle_timeout, cfg.request_timeout) => r,
        _ = shutdown.changed() => return,
    };
    let first = match first {
        Ok(f) => f,
        Err(SniffError::Closed) => return,
        Err(SniffError::Idle) => {
            tracing::info!(peer = ?sock.peer_addr().ok(), "closing idle connection");
            return;
        }
        Err(SniffError::Slow) => {
            broker.metrics.protocol_errors.increment(1);
            tracing::warn!(peer = ?sock.peer_addr().ok(), timeout = ?cfg.request_timeout,
                "closing connection: its first bytes did not arrive in time (slow sender; \
                 --request-timeout-ms / STREAM_REQUEST_TIMEOUT_MS)");
            return;
        }
    };
    match protocol_of(&first) {
        Protocol::Strp => conn::serve(sock, &first, broker, id, cfg, shutdown).await,
        Protocol::Kafka => crate::kafka::serve(sock, &first, broker, cfg, kafka, shutdown).await,
    }
}

/// Descriptors kept free for what a running broker opens besides connections (new segments,
/// index files, the metrics endpoint's sockets).
const FD_HEADROOM: u64 = 64;

/// Raises the soft open-files limit to the hard one (so no deployment needs a `ulimit` setting
/// a host may refuse) and says how many connections that leaves room for; warns when
/// `--max-connections` promises more.
fn log_connection_capacity(max_connections: usize) {
    let limit = match process_limits::raise_open_files() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot read or raise the open-files limit: {e}");
            return;
        }
    };
    let in_use = process_limits::open_descriptors().unwrap_or(0);
    let room = limit.connections(in_use + FD_HEADROOM);
    tracing::info!(
        "{limit}: room for {room} connections ({in_use} descriptors in use by storage and the runtime)"
    );
    if max_connections as u64 > room {
        tracing::warn!(
            "--max-connections / STREAM_MAX_CONNECTIONS is {max_connections}, but the open-files \
             limit leaves room for {room}: connections beyond that fail with 'too many open \
             files'; raise the hard limit (ulimit -Hn, docker run --ulimit nofile=N:N) or lower \
             the setting"
        );
    }
}

fn spawn_housekeeping(
    broker: Arc<Broker>,
    kafka: Arc<Kafka>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_gauges = Instant::now();
        let mut last_retention = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            for (group, member) in broker.groups.evict_expired(Instant::now()) {
                tracing::info!(%group, %member, "member evicted: session timed out");
            }
            kafka.groups.tick(Instant::now());
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = Instant::now();
                if let Some(h) = &metrics {
                    broker.refresh_gauges();
                    h.run_upkeep();
                }
            }
            if last_retention.elapsed() >= Duration::from_secs(60) {
                last_retention = Instant::now();
                let b = broker.clone();
                let r = tokio::task::spawn_blocking(move || b.store().enforce_retention()).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "retention failed");
                }
            }
        }
    });
}
