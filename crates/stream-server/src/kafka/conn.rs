//! One Kafka client connection: a reader that frames, charges and serves requests as they
//! arrive, and a writer that sends the answers in request order (Kafka's rule), so that a
//! client may pipeline (librdkafka keeps several produces in flight per connection). At
//! most `--max-in-flight` answers wait for the writer; then reading pauses.
//!
//! Memory: a request is charged to the server's memory budget from its size prefix and API
//! key, before its bytes are read (a Produce also for the records it decodes into), and the
//! charge is held until its answer is written. A request that could never fit closes the
//! connection, as Kafka's broker does past `socket.request.max.bytes`. What a Produce's
//! compressed batches decompress to is not known here: the handler charges it as it is made
//! (`records::inflate`, bounded by `records::MAX_INFLATED_BYTES`) and gives it back once the
//! partition's records are appended.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::api::{dispatch, Answer, Ctx};
use super::frame::{parse_request, peek_api_key, request_size, MAX_REQUEST_BYTES, SIZE_LEN};
use super::records::decode_overhead;
use super::Kafka;
use crate::broker::Broker;
use crate::budget::Charge;
use crate::conn::{read_more, ConnConfig, READ_BUF};

/// Most answers queued for the writer.
const MAX_QUEUED: usize = 1024;

/// Serves one Kafka connection whose first bytes (`prefix`) were read to tell its protocol.
pub async fn serve(
    stream: TcpStream,
    prefix: &[u8],
    broker: Arc<Broker>,
    cfg: ConnConfig,
    kafka: Arc<Kafka>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let port = kafka
        .config
        .advertised_port
        .unwrap_or_else(|| stream.local_addr().map(|a| a.port()).unwrap_or(0));
    let peer_ip = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<(Answer, Charge)>(cfg.max_in_flight.clamp(1, MAX_QUEUED));
    let writer = tokio::spawn(write_loop(wr, rx, cfg, peer.clone()));
    let budget = broker.memory.connection();
    let ctx = Ctx {
        broker: broker.clone(),
        kafka,
        budget: budget.clone(),
        port,
        peer_ip,
    };
    let max_size = MAX_REQUEST_BYTES.min(budget.pool_limit());
    let mut buf = BytesMut::with_capacity(READ_BUF);
    buf.extend_from_slice(prefix);
    let mut charge: Option<Charge> = None;
    let mut request_started: Option<Instant> = Some(Instant::now());
    loop {
        // Serve every whole request already buffered.
        loop {
            let size = match request_size(&buf, max_size) {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => return close(&broker, &peer, &format!("{e}"), tx, writer).await,
            };
            let total = SIZE_LEN + size;
            if charge.is_none() {
                let Some(key) = peek_api_key(&buf) else { break };
                let mut cost = total;
                if key == ApiKey::Produce as i16 {
                    cost += decode_overhead(size);
                }
                if cost > budget.pool_limit() {
                    let why = format!(
                        "a {size}-byte produce needs {cost} bytes of memory, more than the {} the \
                         budget allows one request (--memory-budget-bytes)",
                        budget.pool_limit()
                    );
                    return close(&broker, &peer, &why, tx, writer).await;
                }
                let c = match budget.try_acquire(cost) {
                    Some(c) => c,
                    None => tokio::select! {
                        c = budget.acquire(cost) => c,
                        _ = shutdown.changed() => break,
                        _ = tx.closed() => break,
                    },
                };
                charge = Some(c);
                if buf.capacity() < total {
                    buf.reserve(total - buf.len());
                }
            }
            if buf.len() < total {
                break;
            }
            let frame = buf.split_to(total).freeze().slice(SIZE_LEN..);
            request_started = (!buf.is_empty()).then(Instant::now);
            let c = charge.take().unwrap_or_else(Charge::none);
            broker.metrics.bytes_in.increment(total as u64);
            let (head, body) = match parse_request(frame) {
                Ok(x) => x,
                Err(e) => return close(&broker, &peer, &e.to_string(), tx, writer).await,
            };
            match dispatch(&ctx, &head, body).await {
                Answer::Close(why) => {
                    let why = format!(
                        "{why} (correlation id {}, client {:?})",
                        head.correlation_id,
                        head.client_id.as_deref().unwrap_or("-")
                    );
                    return close(&broker, &peer, &why, tx, writer).await;
                }
                Answer::Nothing => {}
                answer => {
                    if tx.send((answer, c)).await.is_err() {
                        break;
                    }
                }
            }
        }
        if *shutdown.borrow() || tx.is_closed() {
            break;
        }
        let stop = async {
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tx.closed() => {}
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
    }
    // Let the writer finish what is in flight (answers wait for durability), then close.
    drop(tx);
    let _ = writer.await;
}

/// Closes the connection over input it cannot serve, after the answers before it.
async fn close(
    broker: &Broker,
    peer: &str,
    why: &str,
    tx: mpsc::Sender<(Answer, Charge)>,
    writer: tokio::task::JoinHandle<()>,
) {
    broker.metrics.protocol_errors.increment(1);
    tracing::warn!(%peer, "closing Kafka connection: {why}");
    drop(tx);
    let _ = writer.await;
}

/// Writes the answers in request order, each within the write timeout.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Answer, Charge)>,
    cfg: ConnConfig,
    peer: String,
) {
    while let Some((answer, charge)) = rx.recv().await {
        let (answer, later_charge) = match answer {
            Answer::Later(f) => {
                let (a, c) = f.await;
                (a, Some(c))
            }
            a => (a, None),
        };
        match answer {
            Answer::Ready(bytes) => {
                match tokio::time::timeout(cfg.write_timeout, wr.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "write failed");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, timeout = ?cfg.write_timeout,
                            "closing Kafka connection: the client does not take its answers \
                             (--write-timeout-ms / STREAM_WRITE_TIMEOUT_MS)");
                        return;
                    }
                }
            }
            Answer::Nothing => {}
            Answer::Close(why) => {
                tracing::warn!(%peer, "closing Kafka connection: {why}");
                return;
            }
            Answer::Later(_) => {
                tracing::error!(%peer, "closing Kafka connection: an answer resolved to another wait");
                return;
            }
        }
        drop(charge);
        drop(later_charge);
    }
}
