//! Produce: each partition's record batches are checked (CRC-32C, format) and appended in one
//! append; `acks` decides when the answer goes: `0` never, `1` once appended (in the page
//! cache), `all` (-1) once durable under the server's durability policy (after the group
//! commit's fsync under `group-commit`). Batches of an idempotent producer are checked
//! against its sequence numbers first (`idempotence.rs`): a retry of a stored batch is
//! answered with its offset and not stored again. Compressed batches are decompressed first
//! (`records::inflate`), within one bound for the whole request and charged to the memory
//! budget until the partition's records are appended.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use stream_log::{Durability, PartitionLog, Record};

use super::{message, partition_log, ready, request, topic_name, Answer, Ctx};
use crate::broker::now_ms;
use crate::budget::Charge;
use crate::kafka::errors::{kafka_code, records_code};
use crate::kafka::frame::RequestHead;
use crate::kafka::idempotence::{BatchSeq, Verdict};
use crate::kafka::records::{decode_batches, inflate, RecordsError, Room};

/// A partition's answer and, when appended, the offset that must be durable before it goes.
struct Appended {
    topic: usize,
    response: PartitionProduceResponse,
    wait: Option<(Arc<PartitionLog>, u64)>,
}

pub(super) async fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: ProduceRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let acks = req.acks;
    let refuse_all = if req.transactional_id.is_some() {
        Some((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "transactions are not supported".to_string(),
        ))
    } else if !(-1..=1).contains(&acks) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            format!("acks={acks}: only 0, 1 and -1 (all) are valid"),
        ))
    } else {
        None
    };
    let now = now_ms();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    let mut parts: Vec<Appended> = Vec::new();
    let mut records: Vec<Record<'_>> = Vec::new();
    let mut batches: Vec<BatchSeq> = Vec::new();
    let mut room = Room::new(&ctx.budget);
    for (ti, t) in req.topic_data.iter().enumerate() {
        let name = t.name.0.as_str();
        topics.push(TopicProduceResponse::default().with_name(topic_name(name)));
        let handle = match &refuse_all {
            Some(_) => None,
            None => match ctx.broker.topic(name) {
                Ok(h) => Some(h),
                Err(_) if ctx.kafka.config.auto_create_topics => {
                    // Kafka creates a topic on its first produce when auto-creation is on.
                    let _ = ctx
                        .broker
                        .create_topic(name.to_string(), ctx.kafka.config.auto_create_partitions)
                        .await;
                    ctx.broker.topic(name).ok()
                }
                Err(_) => None,
            },
        };
        for p in &t.partition_data {
            let response = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_log_append_time_ms(-1);
            if let Some((code, m)) = &refuse_all {
                parts.push(failed(ti, response, *code, m.clone()));
                continue;
            }
            let Some(log) = partition_log(handle.as_ref(), p.index) else {
                parts.push(failed(
                    ti,
                    response,
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("no partition {} of topic {name:?}", p.index),
                ));
                continue;
            };
            let target = Target {
                ctx,
                topic: ti,
                name,
                index: p.index,
                log,
                now,
            };
            let bytes = p.records.as_deref().unwrap_or_default();
            let inflated = match inflate(bytes, &mut room) {
                Ok(i) => i,
                Err(e) => {
                    parts.push(target.refused(response, &e));
                    continue;
                }
            };
            // `records` lives for the whole request, so it may borrow the request's bytes
            // only; a partition with decompressed bodies decodes into a vector of its own,
            // dropped with them (and their charge) once appended.
            parts.push(if inflated.is_empty() {
                records.clear();
                target.store(response, bytes, &[], &mut records, &mut batches)
            } else {
                let mut own = Vec::with_capacity(inflated.records());
                target.store(response, bytes, inflated.bodies(), &mut own, &mut batches)
            });
        }
    }
    if acks == 0 {
        return Answer::Nothing;
    }
    let head = head.clone();
    let finish = move |parts: Vec<Appended>, mut topics: Vec<TopicProduceResponse>| {
        for a in parts {
            topics[a.topic].partition_responses.push(a.response);
        }
        ready(&head, &ProduceResponse::default().with_responses(topics))
    };
    let waits_for_disk = acks == -1
        && ctx.broker.durability() == Durability::GroupCommit
        && parts.iter().any(|a| a.wait.is_some());
    if !waits_for_disk {
        return finish(parts, topics);
    }
    // Every partition's fsync starts now, not when the wait before it is over.
    for (log, offset) in parts.iter().filter_map(|a| a.wait.as_ref()) {
        log.request_durable(*offset);
    }
    Answer::Later(Box::pin(async move {
        let mut parts = parts;
        for a in &mut parts {
            if let Some((log, offset)) = a.wait.take() {
                if let Err(e) = log.wait_durable(offset).await {
                    let (code, m) = crate::broker::errors::not_durable(e);
                    a.response.error_code = kafka_code(code);
                    a.response.error_message = message(m);
                }
            }
        }
        (finish(parts, topics), Charge::none())
    }))
}

/// A partition's answer with an error.
fn failed(topic: usize, response: PartitionProduceResponse, code: i16, m: String) -> Appended {
    Appended {
        topic,
        response: response
            .with_error_code(code)
            .with_error_message(message(m)),
        wait: None,
    }
}

/// One partition of a Produce, found.
struct Target<'c> {
    ctx: &'c Ctx,
    topic: usize,
    name: &'c str,
    index: i32,
    log: &'c Arc<PartitionLog>,
    now: u64,
}

impl Target<'_> {
    /// The answer refusing records that do not decode.
    fn refused(&self, response: PartitionProduceResponse, e: &RecordsError) -> Appended {
        tracing::info!(
            topic = self.name,
            partition = self.index,
            "produce refused: {e}"
        );
        failed(self.topic, response, records_code(e), e.to_string())
    }

    /// Decodes the partition's batches (`wire`, and the decompressed `bodies` of its
    /// compressed ones) into `records`, checks them against the producer's sequence numbers
    /// and appends them: the partition's answer.
    fn store<'a>(
        &self,
        response: PartitionProduceResponse,
        wire: &'a [u8],
        bodies: &'a [Vec<u8>],
        records: &mut Vec<Record<'a>>,
        batches: &mut Vec<BatchSeq>,
    ) -> Appended {
        let (ctx, name, index, log) = (self.ctx, self.name, self.index, self.log);
        batches.clear();
        if let Err(e) = decode_batches(wire, bodies, self.now, records, batches) {
            return self.refused(response, &e);
        }
        // An idempotent producer's batches: checked and stored as one step.
        let sequences = batches
            .iter()
            .find(|b| b.producer_id >= 0)
            .map(|b| ctx.kafka.producers.state(b.producer_id, name, index));
        let mut sequences = sequences.as_ref().map(|s| crate::kafka::lock(s));
        if let Some(state) = &sequences {
            match state.check_all(batches) {
                Verdict::Append => {}
                Verdict::Duplicate { base_offset } => {
                    let last = base_offset + records.len() as u64 - 1;
                    return Appended {
                        topic: self.topic,
                        response: response.with_base_offset(base_offset as i64),
                        wait: Some((log.clone(), last)),
                    };
                }
                Verdict::Refuse(code) => {
                    let m = format!(
                        "batch of producer {} at sequence {} refused",
                        batches[0].producer_id, batches[0].base_sequence
                    );
                    tracing::info!(topic = name, partition = index, code, "{m}");
                    return failed(self.topic, response, code, m);
                }
            }
        }
        if records.is_empty() {
            return Appended {
                topic: self.topic,
                response: response.with_base_offset(log.high_watermark() as i64),
                wait: None,
            };
        }
        match ctx.broker.append(log, records) {
            Ok(a) => {
                if let Some(state) = sequences.as_mut() {
                    state.appended_all(batches, a.base_offset);
                }
                ctx.broker
                    .metrics
                    .messages_in
                    .increment(records.len() as u64);
                Appended {
                    topic: self.topic,
                    response: response
                        .with_base_offset(a.base_offset as i64)
                        .with_log_start_offset(log.log_start_offset() as i64),
                    wait: Some((log.clone(), a.last_offset)),
                }
            }
            Err(e) => {
                let (code, m) = crate::broker::errors::fail(e);
                tracing::warn!(topic = name, partition = index, "produce failed: {m}");
                failed(self.topic, response, kafka_code(code), m)
            }
        }
    }
}
