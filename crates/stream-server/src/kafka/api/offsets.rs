//! OffsetCommit and OffsetFetch, on the broker's durable offset store: the one STRP's
//! COMMIT_OFFSET and FETCH_OFFSET use, so a group's offsets are the same through either
//! protocol. A commit's metadata string is not kept (OffsetFetch answers an empty one).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{group_id_error, ready, request, topic_name, Answer, Ctx};
use crate::kafka::errors::kafka_code;
use crate::kafka::frame::RequestHead;

/// From this version OffsetFetch asks for several groups at once.
const BATCHED_FETCH_FROM: i16 = 8;

pub(super) async fn commit(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: OffsetCommitRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group = req.group_id.0.to_string();
    let allowed = match group_id_error(&group) {
        Some(code) => Err(code),
        None => {
            ctx.kafka
                .groups
                .may_commit(&group, &req.member_id, req.generation_id_or_member_epoch)
        }
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let code = match (
                &allowed,
                u32::try_from(p.partition_index),
                u64::try_from(p.committed_offset),
            ) {
                (Err(code), _, _) => *code,
                (Ok(()), Err(_), _) => ResponseError::UnknownTopicOrPartition.code(),
                (Ok(()), _, Err(_)) => ResponseError::OffsetOutOfRange.code(),
                (Ok(()), Ok(partition), Ok(offset)) => {
                    match ctx
                        .broker
                        .commit(group.clone(), topic.clone(), partition, offset)
                        .await
                    {
                        Ok(()) => 0,
                        Err((code, m)) => {
                            tracing::info!(%group, %topic, partition, offset, "Kafka offset commit refused: {m}");
                            kafka_code(code)
                        }
                    }
                }
            };
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions),
        );
    }
    ready(head, &OffsetCommitResponse::default().with_topics(topics))
}

/// The committed offsets asked for: by topic, `(partition, offset or -1)`. `None` asks for
/// every offset the group has.
fn committed(
    ctx: &Ctx,
    group: &str,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> BTreeMap<String, Vec<(i32, i64)>> {
    let offsets = ctx.broker.offsets();
    let mut out: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    match asked {
        Some(topics) => {
            for (topic, partitions) in topics {
                let entry = out.entry(topic.clone()).or_default();
                for p in partitions {
                    let offset = u32::try_from(p)
                        .ok()
                        .and_then(|q| offsets.fetch(group, &topic, q))
                        .map_or(-1, |o| o as i64);
                    entry.push((p, offset));
                }
            }
        }
        None => {
            for ((g, topic, partition), offset) in offsets.all() {
                if g == group {
                    out.entry(topic)
                        .or_default()
                        .push((partition as i32, offset as i64));
                }
            }
            for partitions in out.values_mut() {
                partitions.sort_unstable();
            }
        }
    }
    out
}

pub(super) fn fetch(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: OffsetFetchRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let metadata = || Some(StrBytes::from_static_str(""));
    if head.api_version >= BATCHED_FETCH_FROM {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                let id = g.group_id.0.to_string();
                let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                if let Some(code) = group_id_error(&id) {
                    return group.with_error_code(code);
                }
                let asked = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let topics = committed(ctx, &id, asked)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, o)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_metadata(metadata())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                group.with_topics(topics)
            })
            .collect();
        return ready(head, &OffsetFetchResponse::default().with_groups(groups));
    }
    let id = req.group_id.0.to_string();
    if let Some(code) = group_id_error(&id) {
        return ready(head, &OffsetFetchResponse::default().with_error_code(code));
    }
    let asked = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let topics = committed(ctx, &id, asked)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, o)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_metadata(metadata())
                        })
                        .collect(),
                )
        })
        .collect();
    ready(head, &OffsetFetchResponse::default().with_topics(topics))
}
