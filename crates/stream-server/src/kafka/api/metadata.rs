//! Metadata: this broker as the whole cluster, and the topics asked for (all of them when the
//! list is null, or empty at v0), created on first mention when auto-creation is on.

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ready, request, topic_name, Answer, Ctx, NODE_ID};
use crate::kafka::errors::kafka_code;
use crate::kafka::frame::RequestHead;

/// The cluster id Metadata reports (a single broker is its own cluster).
pub const CLUSTER_ID: &str = "stream-server";

pub(super) async fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: MetadataRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let store = ctx.broker.store();
    let names: Vec<String> = match &req.topics {
        Some(topics) if !(topics.is_empty() && head.api_version == 0) => topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect(),
        _ => store.topics().into_iter().map(|(n, _)| n).collect(),
    };
    // Auto-creation is the request's to ask for from v4 on; before, the broker's default.
    let may_create = ctx.kafka.config.auto_create_topics
        && (head.api_version < 4 || req.allow_auto_topic_creation)
        && req.topics.is_some();
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        topics.push(describe(ctx, &name, may_create).await);
    }
    let broker = MetadataResponseBroker::default()
        .with_node_id(NODE_ID)
        .with_host(StrBytes::from_string(
            ctx.kafka.config.advertised_host.clone(),
        ))
        .with_port(i32::from(ctx.port));
    let resp = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(NODE_ID)
        .with_topics(topics);
    ready(head, &resp)
}

async fn describe(ctx: &Ctx, name: &str, may_create: bool) -> MetadataResponseTopic {
    let topic = MetadataResponseTopic::default().with_name(Some(topic_name(name)));
    if let Err(e) = stream_log::validate_topic_name(name) {
        tracing::debug!(topic = name, "metadata for an invalid topic name: {e}");
        return topic.with_error_code(ResponseError::InvalidTopicException.code());
    }
    let mut handle = ctx.broker.topic(name);
    if handle.is_err() && may_create {
        if let Err((code, msg)) = ctx
            .broker
            .create_topic(name.to_string(), ctx.kafka.config.auto_create_partitions)
            .await
        {
            // Another client may have created it in between.
            if code != stream_proto::ErrorCode::TopicAlreadyExists {
                tracing::warn!(topic = name, "auto-creating a topic failed: {msg}");
                return topic.with_error_code(kafka_code(code));
            }
        }
        handle = ctx.broker.topic(name);
    }
    let handle = match handle {
        Ok(h) => h,
        Err((code, _)) => return topic.with_error_code(kafka_code(code)),
    };
    let partitions = (0..handle.partitions.len() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(NODE_ID)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![NODE_ID])
                .with_isr_nodes(vec![NODE_ID])
        })
        .collect();
    topic.with_partitions(partitions)
}
