//! One client connection: a reader that decodes and dispatches pipelined requests as they
//! arrive, and a writer that sends the answers back in request order.
//!
//! The reader serves every request already buffered (a burst) before handing their answers to
//! the writer together. A burst's single PRODUCEs are staged and appended together, one append
//! per partition (`broker/staged.rs`), before any other request of the burst is served and
//! before the hand-over, which starts the fsync covering all of them; the writer gets answers
//! that still wait for that fsync, so many in-flight produces share one group commit. Answers
//! that are ready are coalesced into one write while more are queued.
//!
//! Memory: every request is charged to the server's memory budget ([`crate::budget`]) from
//! its header, before its payload is read, and the charge is held until its answer has been
//! written to the socket. When the budget is spent the reader stops reading this connection;
//! a request that could never fit is refused without reading its payload.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use stream_proto::{ErrorCode, FrameDecoder, RequestType, Response, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::broker::memory::{admit, Admission};
use crate::broker::{Broker, ConnState, Pending};
use crate::budget::Charge;
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
    /// Longest the client may take to receive one write of answers (everything coalesced, or
    /// one large answer) before the connection is closed.
    pub write_timeout: Duration,
}

/// Most requests served from one buffer before their answers are handed to the writer.
const MAX_BURST: usize = 256;
/// Read buffer of an idle connection; a request's frame gets room for all of it at once.
pub(crate) const READ_BUF: usize = 16 << 10;
/// The writer sends once this much is coalesced.
const FLUSH_AT: usize = 256 << 10;
/// Output buffer kept after a flush; a larger one (after a large answer) is given back.
const OUT_BUF_KEEP: usize = 512 << 10;

/// What the writer gets per request.
struct Item {
    pending: Pending,
    type_idx: usize,
    started: Instant,
    /// The request's share of the memory budget, given back once the answer is written.
    charge: Charge,
}

/// The reader's side of the hand-over: bursts of answers go to the writer in one message
/// each, and `in_flight` (one permit per request, given back by the writer once the answer is
/// written) bounds how many the reader may have handed over. Per burst rather than per
/// answer, because the two tasks run on different threads and every message between them
/// costs a wake-up and a contended lock.
struct Handover {
    tx: mpsc::UnboundedSender<Vec<Item>>,
    in_flight: Arc<Semaphore>,
    /// The semaphore's permits.
    capacity: usize,
    broker: Arc<Broker>,
}

impl Handover {
    /// Hands the burst's answers to the writer, in order, once there is room for them in
    /// flight. False when the writer is gone.
    ///
    /// The last answer waiting for durability starts its fsync first: it covers every append
    /// of the burst before it, and it would otherwise start only once the writer task is
    /// scheduled and reaches it.
    async fn send(&self, burst: &mut Vec<Item>, state: &mut ConnState) -> bool {
        if burst.is_empty() {
            return !self.tx.is_closed();
        }
        self.append_staged(burst, state);
        // The last answer waiting on each log starts that log's fsync, which covers every
        // append of the burst to it (walking back, a log's first answer is its last).
        let mut started: Vec<&Arc<stream_log::PartitionLog>> = Vec::new();
        for item in burst.iter().rev() {
            if let Pending::Waiting(w) = &item.pending {
                for (log, offset) in w.durable_waits() {
                    if !started.iter().any(|s| Arc::ptr_eq(s, log)) {
                        log.request_durable(*offset);
                        started.push(log);
                    }
                }
            }
        }
        // A burst never holds more than `max_burst` requests (the loop hands it over when it
        // is full), so the permits exist; the clamp only keeps a slip from hanging.
        let n = u32::try_from(burst.len().min(self.capacity)).unwrap_or(u32::MAX);
        tokio::select! {
            permits = self.in_flight.acquire_many(n) => match permits {
                Ok(p) => p.forget(),
                Err(_) => return false,
            },
            _ = self.tx.closed() => return false,
        }
        let answers = std::mem::replace(burst, Vec::with_capacity(burst.capacity()));
        self.tx.send(answers).is_ok()
    }

    async fn closed(&self) {
        self.tx.closed().await
    }

    /// Appends the PRODUCEs staged on this connection and puts their answers in their places
    /// in the burst (staged answers are always in the burst not yet handed over, in order).
    fn append_staged(&self, burst: &mut [Item], state: &mut ConnState) {
        if state.staged.is_empty() {
            return;
        }
        let mut answers = self.broker.append_staged(state).into_iter();
        for item in burst.iter_mut() {
            if matches!(item.pending, Pending::Staged { .. }) {
                if let Some(answer) = answers.next() {
                    item.pending = answer;
                    // The payload is in the log now: only the answer stays charged (a
                    // smaller charge, so settling cannot fail).
                    state
                        .budget
                        .settle(&mut item.charge, item.pending.answer_cost());
                }
            }
        }
    }
}

/// Requests that may wait on the blocking pool or an fsync of their own while being served:
/// the answers before them are handed over first so that they are not held up.
fn serves_slowly(type_id: u32) -> bool {
    [
        RequestType::CreateTopic,
        RequestType::DeleteTopic,
        RequestType::CommitOffset,
        RequestType::GroupCommit,
    ]
    .iter()
    .any(|t| t.id() == type_id)
}

/// Why the reader stops waiting for budget.
enum Interrupted {
    Shutdown,
    WriterGone,
}

/// Hands the burst over (its charges can only be given back by the writer), then waits for
/// `bytes` of the connection's budget; `clock` is read again once they are there (the wait
/// is the server's time, not the requests').
async fn wait_for_budget(
    bytes: usize,
    handover: &Handover,
    burst: &mut Vec<Item>,
    state: &mut ConnState,
    shutdown: &mut watch::Receiver<bool>,
    clock: &mut Instant,
) -> Result<Charge, Interrupted> {
    if !handover.send(burst, state).await {
        return Err(Interrupted::WriterGone);
    }
    let charge = tokio::select! {
        c = state.budget.acquire(bytes) => c,
        _ = shutdown.changed() => return Err(Interrupted::Shutdown),
        _ = handover.closed() => return Err(Interrupted::WriterGone),
    };
    *clock = Instant::now();
    Ok(charge)
}

/// Serves one connection until the client closes, errs, idles out or the server shuts down.
/// `prefix`: the connection's first bytes, read to tell its protocol.
pub async fn serve(
    stream: TcpStream,
    prefix: &[u8],
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
    let (tx, rx) = mpsc::unbounded_channel::<Vec<Item>>();
    let max_burst = cfg.max_in_flight.clamp(1, MAX_BURST);
    let capacity = cfg.max_in_flight.max(max_burst);
    let in_flight = Arc::new(Semaphore::new(capacity));
    let writer = tokio::spawn(write_loop(
        wr,
        rx,
        in_flight.clone(),
        broker.clone(),
        cfg.write_timeout,
        peer.clone(),
    ));
    let handover = Handover {
        tx,
        in_flight,
        capacity,
        broker: broker.clone(),
    };
    let budget = broker.memory.connection();
    let mut state = ConnState::new(conn_id, budget.clone());
    let mut buf = BytesMut::with_capacity(READ_BUF);
    buf.extend_from_slice(prefix);
    let mut decoder = FrameDecoder::new();
    let mut burst: Vec<Item> = Vec::with_capacity(max_burst);
    // Bytes of a refused request still to be discarded as they arrive.
    let mut skip = 0usize;
    // The budget charged for the request at the front of `buf`, once its header is in.
    let mut charge: Option<Charge> = None;
    // When the first byte of the request now in `buf` arrived (None while `buf` is empty).
    let mut request_started: Option<Instant> = None;
    // When the server started on what is in `buf`: the requests of one read share the reading
    // of the clock their durations count from, taken again after anything the loop waits on.
    let mut clock = Instant::now();
    'conn: loop {
        loop {
            if skip > 0 {
                let n = skip.min(buf.len());
                buf.advance(n);
                skip -= n;
                if skip > 0 {
                    break;
                }
                request_started = None;
                continue;
            }
            let header = match decoder.peek_header(&buf) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "protocol error; closing connection");
                    broker.metrics.protocol_errors.increment(1);
                    let resp =
                        Response::error(e.header.type_id, ErrorCode::ProtocolError, e.to_string());
                    burst.push(Item {
                        pending: Pending::Ready(resp),
                        type_idx: type_index(e.header.type_id),
                        started: Instant::now(),
                        charge: Charge::none(),
                    });
                    break 'conn;
                }
            };
            let type_id = header.type_id;
            let total = HEADER_LEN + header.length as usize;
            if charge.is_none() {
                match admit(&header, &buf[HEADER_LEN..], budget.pool_limit()) {
                    Admission::NeedMore => break,
                    Admission::Refuse { response, reason } => {
                        tracing::info!(%peer, request = type_id, length = header.length, %reason,
                            "refusing a request before reading its payload");
                        broker.metrics.bytes_in.increment(total as u64);
                        burst.push(Item {
                            pending: Pending::Ready(response),
                            type_idx: type_index(type_id),
                            started: Instant::now(),
                            charge: Charge::none(),
                        });
                        skip = total;
                        // A refusal counts toward the burst like any answer: a burst never
                        // needs more in-flight permits than there are.
                        if burst.len() >= max_burst && !handover.send(&mut burst, &mut state).await
                        {
                            break 'conn;
                        }
                        continue;
                    }
                    Admission::Charge(bytes) => {
                        let c = match budget.try_acquire(bytes) {
                            Some(c) => c,
                            None => {
                                match wait_for_budget(
                                    bytes,
                                    &handover,
                                    &mut burst,
                                    &mut state,
                                    &mut shutdown,
                                    &mut clock,
                                )
                                .await
                                {
                                    Ok(c) => c,
                                    Err(_) => break 'conn,
                                }
                            }
                        };
                        charge = Some(c);
                        // Time spent waiting for the budget is the server's, not the client's.
                        request_started = None;
                        // Room for the whole frame at once, instead of doubling as it arrives.
                        if buf.capacity() < total {
                            buf.reserve(total - buf.len());
                        }
                    }
                }
            }
            if buf.len() < total {
                break;
            }
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(f)) => f,
                // The header was valid and the frame is complete: decode cannot say otherwise.
                Ok(None) | Err(_) => break,
            };
            // Whatever remains is the start of the next request: its clock starts once this
            // loop has handled everything before it, so time this server spends on
            // back-pressure never counts against a client.
            request_started = None;
            let mut c = charge.take().unwrap_or_default();
            let started = clock;
            broker.metrics.bytes_in.increment(total as u64);
            let slow = serves_slowly(type_id);
            if slow && !handover.send(&mut burst, &mut state).await {
                break 'conn;
            }
            if type_id != RequestType::Produce.id() {
                // What this request sees (a fetch, a topic's deletion) comes after the
                // produces before it.
                handover.append_staged(&mut burst, &mut state);
            }
            let pending = broker.handle(frame, &mut state).await;
            if slow {
                clock = Instant::now();
            }
            // The request's payload and working memory are gone now; its answer stays.
            let need = pending.answer_cost();
            if !budget.settle(&mut c, need) {
                drop(c);
                c = match wait_for_budget(
                    need,
                    &handover,
                    &mut burst,
                    &mut state,
                    &mut shutdown,
                    &mut clock,
                )
                .await
                {
                    Ok(c) => c,
                    Err(_) => break 'conn,
                };
            }
            burst.push(Item {
                pending,
                type_idx: type_index(type_id),
                started,
                charge: c,
            });
            if state.staged.is_full() {
                handover.append_staged(&mut burst, &mut state);
            }
            if type_id == RequestType::Disconnect.id() {
                break 'conn;
            }
            if burst.len() >= max_burst && !handover.send(&mut burst, &mut state).await {
                break 'conn;
            }
        }
        if !handover.send(&mut burst, &mut state).await {
            break; // writer gone: the socket failed
        }
        if *shutdown.borrow() {
            break;
        }
        let stop = async {
            tokio::select! {
                _ = shutdown.changed() => {}
                // The writer closed the connection (a client too slow to take its answers).
                _ = handover.closed() => {}
            }
        };
        if !read_more(
            &mut rd,
            &mut buf,
            &mut request_started,
            &cfg,
            &peer,
            &broker,
            stop,
        )
        .await
        {
            break;
        }
        clock = Instant::now();
    }
    let _ = handover.send(&mut burst, &mut state).await;
    // The connection's legacy group members leave now, before the socket closes, so that a
    // client seeing the close also sees the rebalance.
    if state.has_legacy_members {
        broker.groups.connection_closed(conn_id);
    }
    // Let the writer finish what is in flight (answers wait for durability), then close.
    drop(handover);
    let _ = writer.await;
}

/// Reads more of a connection into `buf`, for either protocol. A partial request in `buf`
/// has a deadline (from `request_started`, set here when unset) that its later bytes do not
/// reset; while `buf` is empty the read waits up to the idle timeout. False when the
/// connection is to end: the client closed, idled out or sent too slowly (each logged), the
/// read failed, or `stop` resolved.
pub(crate) async fn read_more(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    request_started: &mut Option<Instant>,
    cfg: &ConnConfig,
    peer: &str,
    broker: &Broker,
    stop: impl Future<Output = ()>,
) -> bool {
    let deadline = if buf.is_empty() {
        *request_started = None;
        None
    } else {
        let started = *request_started.get_or_insert_with(Instant::now);
        Some(started + cfg.request_timeout)
    };
    if buf.capacity() - buf.len() < READ_BUF / 4 {
        buf.reserve(READ_BUF);
    }
    let outcome = tokio::select! {
        r = read_with_timeout(rd.read_buf(buf), cfg.idle_timeout) => r,
        _ = sleep_until_opt(deadline) => ReadOutcome::RequestTimeout,
        _ = stop => return false,
    };
    match outcome {
        ReadOutcome::Data => true,
        ReadOutcome::Closed => false,
        ReadOutcome::Idle => {
            tracing::info!(%peer, "closing idle connection");
            false
        }
        ReadOutcome::RequestTimeout => {
            broker.metrics.protocol_errors.increment(1);
            tracing::warn!(%peer, buffered = buf.len(), timeout = ?cfg.request_timeout,
                "closing connection: a request did not arrive whole in time (slow sender; \
                 --request-timeout-ms / STREAM_REQUEST_TIMEOUT_MS)");
            false
        }
        ReadOutcome::Failed(e) => {
            tracing::debug!(%peer, error = %e, "read failed");
            false
        }
    }
}

/// How a read of a connection ended.
enum ReadOutcome {
    /// Bytes arrived.
    Data,
    /// The client closed.
    Closed,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A request did not arrive whole in time.
    RequestTimeout,
    /// The read failed.
    Failed(std::io::Error),
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Reads, or gives up after `idle` without a byte.
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

/// The write side: a coalescing buffer over the socket. Every write must complete within the
/// write timeout, so that a client that stops reading, or reads too slowly, cannot pin the
/// connection's memory (and shutdown) for long; after a failed write everything else is
/// dropped.
struct Writer {
    wr: OwnedWriteHalf,
    out: BytesMut,
    /// Budget of the answers in `out`: given back once they are written.
    held: Charge,
    /// Answers in `out`: their in-flight permits go back once they are written.
    answers: usize,
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    failed: bool,
    peer: String,
    /// The clock as of the last wait: answers ready without waiting share it.
    now: Instant,
}

impl Writer {
    async fn flush(&mut self) {
        if !self.out.is_empty() && !self.failed {
            // The timeout bounds the whole write, not each step of it: a reader taking a few
            // bytes now and then must not hold the answers forever.
            match tokio::time::timeout(self.timeout, self.wr.write_all(&self.out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed");
                    self.failed = true;
                }
                Err(_) => {
                    tracing::info!(peer = %self.peer, unsent = self.out.len(), timeout = ?self.timeout,
                        "client stopped reading its answers (or took them too slowly to receive \
                         this write in time; --write-timeout-ms / STREAM_WRITE_TIMEOUT_MS); closing");
                    self.failed = true;
                }
            }
        }
        self.out.clear();
        if self.out.capacity() > OUT_BUF_KEEP {
            self.out = BytesMut::new();
        }
        self.held = Charge::none();
        self.in_flight
            .add_permits(std::mem::take(&mut self.answers));
    }
}

/// The final answer: at once when ready; otherwise what is coalesced is sent first, before
/// sleeping on the fsync or the long poll.
async fn resolve(pending: Pending, w: &mut Writer) -> (Response, Charge) {
    match pending {
        Pending::Ready(r) => (r, Charge::none()),
        // `Handover::send` appends them first; never reached.
        Pending::Staged { .. } => (
            Response::error(
                RequestType::Produce.id(),
                ErrorCode::Unknown,
                "internal error: a produce was not appended",
            ),
            Charge::none(),
        ),
        Pending::Waiting(waiting) => {
            let mut fut = pin!(waiting.resolve());
            match poll_once(fut.as_mut()).await {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    w.flush().await;
                    let answer = fut.await;
                    w.now = Instant::now();
                    answer
                }
            }
        }
    }
}

async fn write_loop(
    wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<Item>>,
    in_flight: Arc<Semaphore>,
    broker: Arc<Broker>,
    timeout: Duration,
    peer: String,
) {
    let mut w = Writer {
        wr,
        out: BytesMut::new(),
        held: Charge::none(),
        answers: 0,
        in_flight,
        timeout,
        failed: false,
        peer,
        now: Instant::now(),
    };
    while !w.failed {
        let answers = match rx.try_recv() {
            Ok(b) => b,
            Err(mpsc::error::TryRecvError::Empty) => {
                w.flush().await;
                match rx.recv().await {
                    Some(b) => b,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        w.now = Instant::now();
        for item in answers {
            if w.failed {
                break;
            }
            let (resp, records_charge) = resolve(item.pending, &mut w).await;
            let before = w.out.len();
            resp.encode_frame(&mut w.out);
            broker
                .metrics
                .bytes_out
                .increment((w.out.len() - before) as u64);
            broker.metrics.record(
                item.type_idx,
                !resp.error_code().is_ok(),
                w.now.saturating_duration_since(item.started),
            );
            // Encoded: the answer's own memory goes now, its bytes stay charged until written.
            drop(resp);
            w.held.merge(item.charge);
            w.held.merge(records_charge);
            w.answers += 1;
            if w.out.len() >= FLUSH_AT {
                w.flush().await;
            }
        }
    }
    w.flush().await;
    let _ = w.wr.shutdown().await;
}
