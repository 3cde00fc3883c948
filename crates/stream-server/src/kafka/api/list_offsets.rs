//! ListOffsets: a partition's earliest (-2) and latest (-1) offsets. Lookups by timestamp are
//! not served yet: the partition gets INVALID_REQUEST, never an offset that might be wrong.

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::{partition_log, ready, request, topic_name, Answer, Ctx};
use crate::kafka::frame::RequestHead;

/// The timestamp that asks for the next offset to be written.
const LATEST: i64 = -1;
/// The timestamp that asks for the first offset still kept.
const EARLIEST: i64 = -2;

pub(super) fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: ListOffsetsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let handle = ctx.broker.topic(name).ok();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(log) = partition_log(handle.as_ref(), p.partition_index) else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    match p.timestamp {
                        LATEST => resp.with_offset(log.high_watermark() as i64),
                        EARLIEST => resp.with_offset(log.log_start_offset() as i64),
                        _ => resp.with_error_code(ResponseError::InvalidRequest.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    ready(head, &ListOffsetsResponse::default().with_topics(topics))
}
