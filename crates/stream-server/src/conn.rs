//! One client connection: a reader that decodes and dispatches pipelined requests as they
//! arrive, and a writer that sends the answers back in request order.
//!
//! The reader appends produced messages at once and hands the writer a response that still
//! waits for durability, so many in-flight produces share one group-commit fsync. Answers
//! that are ready are coalesced into one write while more are queued.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stream_proto::{
    DecodeError, ErrorCode, FrameDecoder, Request, RequestType, Response, HEADER_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::{Broker, ConnState, Pending};
use crate::metrics::type_index;

/// Connection settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Close after this long without receiving anything.
    pub idle_timeout: Option<Duration>,
    /// Close when a request has not arrived whole this long after its first byte.
    pub request_timeout: Duration,
    /// Requests in flight before reading pauses.
    pub max_in_flight: usize,
    /// Longest a write of answers may block on a client that does not read.
    pub write_timeout: Duration,
}

/// Response bytes (fetched records) one connection may hold unsent before the server stops
/// reading its requests: a client that pipelines fetches without reading the answers cannot
/// make the server buffer without bound.
pub const RESPONSE_BYTES_BUDGET: usize = 64 << 20;

/// What the writer gets per request.
struct Item {
    pending: Pending,
    type_idx: usize,
    started: Instant,
    /// Share of the connection's response budget, released once the answer is written.
    _budget: Option<OwnedSemaphorePermit>,
}

/// Record bytes a ready answer carries (the only large part of any response).
fn response_cost(p: &Pending) -> usize {
    match p {
        Pending::Ready(Response::Fetch(f))
        | Pending::Ready(Response::FetchWait { fetch: f, .. }) => f.records.len(),
        _ => 0,
    }
}

/// Serves one connection until the client closes, errs, idles out or the server shuts down.
pub async fn serve(
    stream: TcpStream,
    broker: Arc<Broker>,
    conn_id: u64,
    cfg: ConnConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Item>(cfg.max_in_flight.max(1));
    let writer = tokio::spawn(write_loop(wr, rx, broker.clone(), cfg.write_timeout));
    let mut state = ConnState {
        id: conn_id,
        has_legacy_members: false,
    };
    let budget = Arc::new(Semaphore::new(RESPONSE_BYTES_BUDGET));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut decoder = FrameDecoder::new();
    // When the first byte of the request now in `buf` arrived (None while `buf` is empty).
    let mut request_started: Option<Instant> = None;
    'conn: loop {
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(f)) => {
                    // Whatever remains is the start of the next request: its clock starts
                    // once this loop has handled everything before it, so time this server
                    // spends on back-pressure never counts against a client.
                    request_started = None;
                    f
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "protocol error; closing connection");
                    broker.metrics.protocol_errors.increment(1);
                    let resp =
                        Response::error(e.header.type_id, ErrorCode::ProtocolError, e.to_string());
                    let _ = tx
                        .send(Item {
                            pending: Pending::Ready(resp),
                            type_idx: type_index(e.header.type_id),
                            started: Instant::now(),
                            _budget: None,
                        })
                        .await;
                    break 'conn;
                }
            };
            let started = Instant::now();
            let type_id = frame.header.type_id;
            broker
                .metrics
                .bytes_in
                .increment((HEADER_LEN + frame.payload.len()) as u64);
            let pending = match Request::decode(type_id, frame.payload) {
                Ok(req) => broker.handle(req, &mut state).await,
                Err(DecodeError::UnknownType(t)) => Pending::Ready(Response::error(
                    t,
                    ErrorCode::InvalidRequest,
                    format!("unknown request type {t}"),
                )),
                Err(e) => Pending::Ready(Response::error(
                    type_id,
                    ErrorCode::InvalidRequest,
                    format!("malformed {} payload: {e}", type_name(type_id)),
                )),
            };
            let cost = response_cost(&pending).min(RESPONSE_BYTES_BUDGET);
            let permit = if cost > 0 {
                // Waits while earlier answers are unsent (the semaphore is never closed).
                tokio::select! {
                    p = budget.clone().acquire_many_owned(cost as u32) => p.ok(),
                    _ = shutdown.changed() => break 'conn,
                }
            } else {
                None
            };
            let item = Item {
                pending,
                type_idx: type_index(type_id),
                started,
                _budget: permit,
            };
            if tx.send(item).await.is_err() {
                break 'conn; // writer gone: the socket failed
            }
            if type_id == RequestType::Disconnect.id() {
                break 'conn;
            }
        }
        if *shutdown.borrow() {
            break;
        }
        // A partial request in the buffer has a deadline that its later bytes do not reset.
        let deadline = if buf.is_empty() {
            request_started = None;
            None
        } else {
            let started = *request_started.get_or_insert_with(Instant::now);
            Some(started + cfg.request_timeout)
        };
        let read = rd.read_buf(&mut buf);
        let outcome = tokio::select! {
            r = read_with_timeout(read, cfg.idle_timeout) => r,
            _ = sleep_until_opt(deadline) => ReadOutcome::RequestTimeout,
            _ = shutdown.changed() => break,
        };
        match outcome {
            ReadOutcome::Data => {}
            ReadOutcome::Closed => break,
            ReadOutcome::Idle => {
                tracing::info!(%peer, "closing idle connection");
                break;
            }
            ReadOutcome::RequestTimeout => {
                broker.metrics.protocol_errors.increment(1);
                tracing::warn!(%peer, buffered = buf.len(), timeout = ?cfg.request_timeout,
                    "closing connection: a request did not arrive whole in time (slow sender; \
                     --request-timeout-ms / STREAM_REQUEST_TIMEOUT_MS)");
                break;
            }
            ReadOutcome::Failed(e) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
        }
    }
    // The connection's legacy group members leave now, before the socket closes, so that a
    // client seeing the close also sees the rebalance.
    if state.has_legacy_members {
        broker.groups.connection_closed(conn_id);
    }
    // Let the writer finish what is in flight (answers wait for durability), then close.
    drop(tx);
    let _ = writer.await;
}

fn type_name(type_id: u32) -> &'static str {
    RequestType::from_id(type_id).map_or("unknown", |t| t.name())
}

enum ReadOutcome {
    Data,
    Closed,
    Idle,
    RequestTimeout,
    Failed(std::io::Error),
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn read_with_timeout(
    read: impl Future<Output = std::io::Result<usize>>,
    idle: Option<Duration>,
) -> ReadOutcome {
    let r = match idle {
        Some(d) => match tokio::time::timeout(d, read).await {
            Ok(r) => r,
            Err(_) => return ReadOutcome::Idle,
        },
        None => read.await,
    };
    match r {
        Ok(0) => ReadOutcome::Closed,
        Ok(_) => ReadOutcome::Data,
        Err(e) => ReadOutcome::Failed(e),
    }
}

/// Polls `fut` once with the task's waker: `Pending` means it registered for a wake-up.
async fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let mut fut = fut;
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// The write side: a coalescing buffer over the socket. Every write is bounded by a timeout
/// so that a client that stops reading cannot pin the connection (and shutdown) forever;
/// after a failed write everything else is dropped.
struct Writer {
    wr: OwnedWriteHalf,
    out: BytesMut,
    timeout: Duration,
    failed: bool,
}

impl Writer {
    async fn flush(&mut self) {
        if self.out.is_empty() || self.failed {
            self.out.clear();
            return;
        }
        // The timeout bounds each step without progress, not the whole write, so a slow but
        // live link still receives a large answer.
        let mut pos = 0;
        while pos < self.out.len() {
            match tokio::time::timeout(self.timeout, self.wr.write(&self.out[pos..])).await {
                Ok(Ok(0)) => {
                    self.failed = true;
                    break;
                }
                Ok(Ok(n)) => pos += n,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "write failed");
                    self.failed = true;
                    break;
                }
                Err(_) => {
                    tracing::info!(timeout = ?self.timeout, "client stopped reading its answers; closing");
                    self.failed = true;
                    break;
                }
            }
        }
        self.out.clear();
    }
}

async fn resolve(pending: Pending, w: &mut Writer) -> Response {
    match pending {
        Pending::Ready(r) => r,
        Pending::Durable { waits, response } => {
            for (log, offset) in &waits {
                let mut fut = pin!(log.wait_durable(*offset));
                let r = match poll_once(fut.as_mut()).await {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        // Send what is ready before sleeping on the fsync.
                        w.flush().await;
                        fut.await
                    }
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "durability wait failed");
                    return Response::error(
                        response.type_id(),
                        ErrorCode::StorageError,
                        format!("not durable: {e}"),
                    );
                }
            }
            response
        }
        Pending::Task(mut handle) => {
            let r = match poll_once(std::pin::Pin::new(&mut handle)).await {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    w.flush().await;
                    handle.await
                }
            };
            r.unwrap_or_else(|e| {
                Response::error(
                    RequestType::FetchWait.id(),
                    ErrorCode::Unknown,
                    format!("internal task failed: {e}"),
                )
            })
        }
    }
}

async fn write_loop(
    wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Item>,
    broker: Arc<Broker>,
    timeout: Duration,
) {
    let mut w = Writer {
        wr,
        out: BytesMut::with_capacity(64 * 1024),
        timeout,
        failed: false,
    };
    while !w.failed {
        let item = match rx.try_recv() {
            Ok(i) => i,
            Err(mpsc::error::TryRecvError::Empty) => {
                w.flush().await;
                match rx.recv().await {
                    Some(i) => i,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let resp = resolve(item.pending, &mut w).await;
        let before = w.out.len();
        resp.encode_frame(&mut w.out);
        broker
            .metrics
            .bytes_out
            .increment((w.out.len() - before) as u64);
        broker.metrics.record(
            item.type_idx,
            !resp.error_code().is_ok(),
            item.started.elapsed(),
        );
        if w.out.len() >= 256 * 1024 {
            w.flush().await;
        }
    }
    w.flush().await;
    let _ = w.wr.shutdown().await;
}
