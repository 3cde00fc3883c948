//! ListOffsets: a partition's earliest (-2) and latest (-1) offsets, the offset for a
//! timestamp (a target of 0 or more), and from v7 the offset of the largest timestamp (-3,
//! MAX_TIMESTAMP).
//!
//! For a timestamp the answer is Kafka's: the earliest offset whose record has a timestamp at
//! or after the target, with that record's timestamp (timestamps are the producers' and need
//! not grow with offsets). When no record has one, the answer is offset -1 and timestamp -1
//! without an error, as Kafka's broker answers: its Java consumer reads that offset as "no
//! such record" (`offsetsForTimes` gives null), and would refuse an offset paired with
//! timestamp -1. The storage finds the record through the segments' time indexes, reading
//! about one index interval of records (`PartitionLog::offset_for_timestamp`).
//!
//! MAX_TIMESTAMP answers the earliest record carrying the partition's largest timestamp, as
//! Kafka does since KAFKA-16310, or -1 and -1 for an empty partition. It is exact and costs
//! what a lookup by time does: each segment's largest timestamp is in memory, and its record
//! is found by a lookup by that timestamp (`PartitionLog::offset_of_max_timestamp`).
//!
//! Lookups read segment files, whose pages may have to come from the disk, so a request with
//! any runs on the blocking pool rather than on the connection's task. Other negative
//! timestamps (-3 before v7; -4 and -5, which ask about tiered storage, from v8 on) get
//! INVALID_REQUEST, never an offset that might be wrong.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use stream_log::PartitionLog;

use super::{partition_log, ready, request, topic_name, Answer, Ctx};
use crate::broker::errors::fail;
use crate::kafka::errors::kafka_code;
use crate::kafka::frame::RequestHead;

/// The timestamp that asks for the next offset to be written.
const LATEST: i64 = -1;
/// The timestamp that asks for the first offset still kept.
const EARLIEST: i64 = -2;
/// The timestamp that asks for the record with the largest timestamp (v7 and later).
const MAX_TIMESTAMP: i64 = -3;
/// The first version that may ask for [`MAX_TIMESTAMP`].
const MAX_TIMESTAMP_VERSION: i16 = 7;
/// Kafka's UNKNOWN_OFFSET and UNKNOWN_TIMESTAMP: no such record (or no timestamp to give).
const UNKNOWN: i64 = -1;

/// One partition asked for, resolved to its log.
struct Query {
    partition: i32,
    log: Option<Arc<PartitionLog>>,
    timestamp: i64,
}

impl Query {
    /// Whether answering reads segment files.
    fn reads(&self, version: i16) -> bool {
        self.log.is_some()
            && (self.timestamp >= 0
                || (self.timestamp == MAX_TIMESTAMP && version >= MAX_TIMESTAMP_VERSION))
    }

    fn answer(&self, topic: &str, version: i16) -> ListOffsetsPartitionResponse {
        let resp = ListOffsetsPartitionResponse::default()
            .with_partition_index(self.partition)
            .with_timestamp(UNKNOWN)
            .with_offset(UNKNOWN);
        let Some(log) = &self.log else {
            return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        let found = match self.timestamp {
            LATEST => return resp.with_offset(log.high_watermark() as i64),
            EARLIEST => return resp.with_offset(log.log_start_offset() as i64),
            MAX_TIMESTAMP if version >= MAX_TIMESTAMP_VERSION => log.offset_of_max_timestamp(),
            t if t >= 0 => log.offset_for_timestamp(t as u64),
            _ => return resp.with_error_code(ResponseError::InvalidRequest.code()),
        };
        match found {
            // A stored timestamp beyond i64 (an STRP client may write one) is given as the
            // largest Kafka can carry rather than as a negative one, which means "none".
            Ok(Some((offset, ts))) => resp
                .with_offset(offset as i64)
                .with_timestamp(i64::try_from(ts).unwrap_or(i64::MAX)),
            Ok(None) => resp,
            Err(e) => {
                let (code, m) = fail(e);
                tracing::warn!(
                    topic,
                    partition = self.partition,
                    "list offsets failed: {m}"
                );
                resp.with_error_code(kafka_code(code))
            }
        }
    }
}

pub(super) async fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: ListOffsetsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = head.api_version;
    let queries: Vec<(String, Vec<Query>)> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let handle = ctx.broker.topic(&name).ok();
            let partitions = t
                .partitions
                .iter()
                .map(|p| Query {
                    partition: p.partition_index,
                    log: partition_log(handle.as_ref(), p.partition_index).cloned(),
                    timestamp: p.timestamp,
                })
                .collect();
            (name, partitions)
        })
        .collect();
    let reads = queries
        .iter()
        .any(|(_, qs)| qs.iter().any(|q| q.reads(version)));
    let answer = move || -> Vec<ListOffsetsTopicResponse> {
        queries
            .iter()
            .map(|(name, qs)| {
                ListOffsetsTopicResponse::default()
                    .with_name(topic_name(name))
                    .with_partitions(qs.iter().map(|q| q.answer(name, version)).collect())
            })
            .collect()
    };
    let topics = if reads {
        match tokio::task::spawn_blocking(answer).await {
            Ok(t) => t,
            Err(e) => return Answer::Close(format!("ListOffsets lookup failed: {e}")),
        }
    } else {
        answer()
    };
    ready(head, &ListOffsetsResponse::default().with_topics(topics))
}
