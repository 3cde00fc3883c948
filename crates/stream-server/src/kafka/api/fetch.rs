//! Fetch: each partition's records from its fetch offset, as one RecordBatch per partition
//! built from the log (so a fetch from inside what was produced as one batch starts exactly at
//! the offset asked for), within the request's and each partition's byte limits; when less
//! than `min_bytes` is there, a long poll of up to `max_wait_ms` that ends as soon as any of
//! the partitions grows.
//!
//! Memory: the answer's bound is charged to the connection's budget before reading, without
//! waiting (as STRP's long poll does); when it is spent the answer carries no records and
//! the client fetches again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use stream_log::PartitionLog;
use tokio::sync::watch;

use super::{partition_log, ready, request, topic_name, Answer, Ctx};
use crate::broker::{errors::fail, Broker, FETCH_MAX_BYTES, MAX_WAIT};
use crate::budget::{Charge, ConnBudget};
use crate::kafka::errors::kafka_code;
use crate::kafka::frame::RequestHead;
use crate::kafka::records::encode_batch;

/// Bytes of an answer's per-partition fields, for its memory bound.
const PARTITION_OVERHEAD: usize = 64;

/// One partition asked for.
struct Target {
    partition: i32,
    log: Option<Arc<PartitionLog>>,
    offset: i64,
    max_bytes: usize,
}

/// The partitions of one topic asked for.
struct TopicTargets {
    name: String,
    partitions: Vec<Target>,
}

/// The request, resolved to logs.
struct Plan {
    head: RequestHead,
    topics: Vec<TopicTargets>,
    max_bytes: usize,
    min_bytes: usize,
}

pub(super) fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: FetchRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let handle = ctx.broker.topic(&name).ok();
            let partitions = t
                .partitions
                .iter()
                .map(|p| Target {
                    partition: p.partition,
                    log: partition_log(handle.as_ref(), p.partition).cloned(),
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                })
                .collect();
            TopicTargets { name, partitions }
        })
        .collect();
    let plan = Plan {
        head: head.clone(),
        topics,
        max_bytes: (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES as usize),
        min_bytes: req.min_bytes.max(0) as usize,
    };
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    // Subscribed before the first read, so that an append in between is not missed.
    let mut watches: Vec<watch::Receiver<u64>> = plan
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().filter_map(|p| p.log.as_ref()))
        .map(|log| log.subscribe())
        .collect();
    let (first, bytes, charge) = read(&ctx.broker, &plan, &ctx.budget);
    if bytes >= plan.min_bytes || wait.is_zero() || watches.is_empty() || first.1 {
        return with_charge(ready(&plan.head, &first.0), charge);
    }
    drop(charge);
    let broker = ctx.broker.clone();
    let budget = ctx.budget.clone();
    Answer::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + wait;
        let mut shutdown = broker.shutdown_signal();
        loop {
            tokio::select! {
                _ = any_changed(&mut watches) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => {}
            }
            let ((resp, failed), bytes, charge) = read(&broker, &plan, &budget);
            let done = bytes >= plan.min_bytes
                || failed
                || tokio::time::Instant::now() >= deadline
                || *shutdown.borrow();
            if done {
                return (ready(&plan.head, &resp), charge);
            }
        }
    }))
}

/// An answer that is ready now, with its charge (held until it is written).
fn with_charge(answer: Answer, charge: Charge) -> Answer {
    Answer::Later(Box::pin(async move { (answer, charge) }))
}

/// Resolves once any of `watches` sees a new high watermark (or its log is gone).
async fn any_changed(watches: &mut [watch::Receiver<u64>]) {
    let mut changed: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> = watches
        .iter_mut()
        .map(|w| Box::pin(w.changed()) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
        .collect();
    std::future::poll_fn(|cx| {
        for f in changed.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

/// Reads every partition of the plan: the answer, whether any partition failed, the record
/// bytes in it, and their charge.
fn read(
    broker: &Broker,
    plan: &Plan,
    budget: &ConnBudget,
) -> ((FetchResponse, bool), usize, Charge) {
    let partitions: usize = plan.topics.iter().map(|t| t.partitions.len()).sum();
    let bound = plan.max_bytes + partitions * PARTITION_OVERHEAD;
    let charge = budget.try_acquire(bound);
    let mut left = if charge.is_some() { plan.max_bytes } else { 0 };
    let mut total = 0usize;
    let mut failed = false;
    let mut topics = Vec::with_capacity(plan.topics.len());
    for t in &plan.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for target in &t.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(target.partition)
                .with_records(Some(Bytes::new()));
            let Some(log) = &target.log else {
                failed = true;
                parts.push(data.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let hw = log.high_watermark() as i64;
            let start = log.log_start_offset() as i64;
            data = data
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(start);
            if target.offset < start || target.offset > hw {
                failed = true;
                parts.push(data.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            // At least one record is returned even past the limits (KIP-74), as long as
            // there is budget at all.
            let limit = target.max_bytes.min(left);
            if target.offset == hw || charge.is_none() {
                parts.push(data);
                continue;
            }
            match log.read(
                target.offset as u64,
                u32::MAX,
                limit.min(u32::MAX as usize) as u32,
            ) {
                Ok(batch) => {
                    let mut out = BytesMut::with_capacity(batch.bytes.len());
                    let n = encode_batch(&batch.bytes, &mut out);
                    broker.metrics.messages_out.increment(n as u64);
                    left = left.saturating_sub(out.len());
                    total += out.len();
                    parts.push(data.with_records(Some(out.freeze())));
                }
                Err(e) => {
                    let (code, m) = fail(e);
                    tracing::warn!(
                        topic = t.name,
                        partition = target.partition,
                        "fetch failed: {m}"
                    );
                    failed = true;
                    parts.push(data.with_error_code(kafka_code(code)));
                }
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic_name(&t.name))
                .with_partitions(parts),
        );
    }
    let mut charge = charge.unwrap_or_else(Charge::none);
    // What was read can exceed the bound by one record per partition (KIP-74); when that
    // excess is not free it stays uncharged rather than failing a read already made.
    let _ = budget.settle(&mut charge, total + partitions * PARTITION_OVERHEAD);
    (
        (FetchResponse::default().with_responses(topics), failed),
        total,
        charge,
    )
}
