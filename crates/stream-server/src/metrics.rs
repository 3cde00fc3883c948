//! Prometheus metrics: per-request-type rates and latencies, bytes in/out, connections,
//! partition sizes and consumer-group lag, served on `/metrics` by a tiny HTTP handler.
//!
//! The handler is ours (not the exporter's built-in listener) so that port 0 works and the
//! bound address can be logged, like the main listener's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use stream_proto::RequestType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Metrics connections served at once; more are closed at accept. Prometheus needs one.
pub const MAX_SCRAPERS: usize = 16;

/// Longest the endpoint spends writing one page to a scraper.
pub const SCRAPE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handles to the per-request-type metrics, created once so that the hot path does no
/// registry lookups.
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Vec<Counter>,
    errors: Vec<Counter>,
    latency: Vec<Histogram>,
    unknown: Counter,
    /// Request bytes received (headers included).
    pub bytes_in: Counter,
    /// Response bytes sent (headers included).
    pub bytes_out: Counter,
    /// Messages appended by PRODUCE and BATCH_PRODUCE.
    pub messages_in: Counter,
    /// Messages returned by FETCH and FETCH_WAIT.
    pub messages_out: Counter,
    /// Connections refused because of --max-connections.
    pub refused: Counter,
    /// Connections closed after a protocol error.
    pub protocol_errors: Counter,
}

/// Index of a type id in the per-type vectors (last slot = unknown types).
pub fn type_index(type_id: u32) -> usize {
    RequestType::ALL
        .iter()
        .position(|t| t.id() == type_id)
        .unwrap_or(RequestType::ALL.len())
}

impl RequestMetrics {
    /// Registers the metrics with the global recorder (a no-op recorder if none installed).
    pub fn new() -> RequestMetrics {
        let names = RequestType::ALL.iter().map(|t| t.name());
        let mut requests = Vec::new();
        let mut errors = Vec::new();
        let mut latency = Vec::new();
        for n in names.chain(std::iter::once("UNKNOWN")) {
            requests.push(metrics::counter!("strp_requests_total", "type" => n));
            errors.push(metrics::counter!("strp_request_errors_total", "type" => n));
            latency.push(metrics::histogram!("strp_request_duration_seconds", "type" => n));
        }
        RequestMetrics {
            requests,
            errors,
            latency,
            unknown: metrics::counter!("strp_unknown_requests_total"),
            bytes_in: metrics::counter!("strp_bytes_in_total"),
            bytes_out: metrics::counter!("strp_bytes_out_total"),
            messages_in: metrics::counter!("strp_messages_in_total"),
            messages_out: metrics::counter!("strp_messages_out_total"),
            refused: metrics::counter!("strp_connections_refused_total"),
            protocol_errors: metrics::counter!("strp_protocol_errors_total"),
        }
    }

    /// Records one answered request.
    pub fn record(&self, type_idx: usize, error: bool, latency: Duration) {
        let i = type_idx.min(self.requests.len() - 1);
        self.requests[i].increment(1);
        if error {
            self.errors[i].increment(1);
        }
        if i == self.requests.len() - 1 {
            self.unknown.increment(1);
        }
        self.latency[i].record(latency.as_secs_f64());
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Installs the Prometheus recorder and serves `/metrics` on `addr`; returns the bound address
/// and the handle (whose `run_upkeep` the caller runs periodically).
pub async fn serve(addr: SocketAddr) -> anyhow::Result<(SocketAddr, PrometheusHandle)> {
    // Bind first: without an endpoint no recorder is installed (nothing to keep up).
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint to {addr}"))?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    let bound = listener.local_addr().context("metrics local_addr")?;
    let h = handle.clone();
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    tokio::spawn(async move {
        let mut refused = 0u64;
        loop {
            let Ok((sock, peer)) = listener.accept().await else {
                // e.g. out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                refused += 1;
                if refused == 1 || refused.is_multiple_of(1000) {
                    tracing::warn!(%peer, refused,
                        "metrics: refusing a scraper: {MAX_SCRAPERS} connections are open");
                }
                continue; // dropping the socket closes it
            };
            let mut sock = sock;
            let h = h.clone();
            tokio::spawn(async move {
                let _slot = slot;
                // Read the request head (bounded); answer /metrics, 404 otherwise.
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    true
                })
                .await;
                if !matches!(read, Ok(true)) {
                    return;
                }
                let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line);
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (status, ctype, body) = if method == "GET" && path.starts_with("/metrics") {
                    ("200 OK", "text/plain; version=0.0.4", h.render())
                } else if method == "GET" && path == "/health" {
                    ("200 OK", "text/plain", "ok\n".to_string())
                } else {
                    ("404 Not Found", "text/plain", "not found\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                // A scraper that does not read cannot pin the page (or the slot) for long.
                let _ = tokio::time::timeout(SCRAPE_WRITE_TIMEOUT, async {
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                })
                .await;
            });
        }
    });
    Ok((bound, handle))
}
