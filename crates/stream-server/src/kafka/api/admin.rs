//! CreateTopics, CreatePartitions and DeleteTopics. This is one broker: a replication factor
//! other than 1 (or -1, the default) is refused, and so are replica assignments and topic
//! configs (the server's settings apply to every topic); a partition count of -1 means one.
//! CreatePartitions grows a topic to a new total, never shrinks it.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::ResponseError;

use super::{message, ready, request, topic_name, Answer, Ctx};
use crate::broker::Failure;
use crate::kafka::errors::kafka_code;
use crate::kafka::frame::RequestHead;

pub(super) async fn create_topics(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: CreateTopicsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.to_string();
        let partitions = if t.num_partitions == -1 {
            ctx.kafka.config.auto_create_partitions as i32
        } else {
            t.num_partitions
        };
        let result = CreatableTopicResult::default()
            .with_name(topic_name(&name))
            .with_num_partitions(partitions)
            .with_replication_factor(1);
        let refuse = |e: ResponseError, m: String| {
            result
                .clone()
                .with_error_code(e.code())
                .with_error_message(message(m))
        };
        let r = if !matches!(t.replication_factor, -1 | 1) {
            refuse(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {}: this is a single broker, only 1 is possible",
                    t.replication_factor
                ),
            )
        } else if !t.assignments.is_empty() {
            refuse(
                ResponseError::InvalidReplicaAssignment,
                NO_ASSIGNMENTS.into(),
            )
        } else if let Some(c) = t.configs.first() {
            refuse(
                ResponseError::InvalidConfig,
                format!(
                    "topic config {:?} is not supported: the server's settings apply to every topic",
                    c.name.as_str()
                ),
            )
        } else if partitions < 1 {
            refuse(
                ResponseError::InvalidPartitions,
                format!("{partitions} partitions: at least 1"),
            )
        } else if let Err(e) = stream_log::validate_topic_name(&name) {
            refuse(ResponseError::InvalidTopicException, e.to_string())
        } else if req.validate_only {
            if ctx.broker.topic(&name).is_ok() {
                refuse(
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name:?} already exists"),
                )
            } else {
                result
            }
        } else {
            match ctx
                .broker
                .create_topic(name.clone(), partitions as u32)
                .await
            {
                Ok(_) => result,
                Err((code, m)) => result
                    .with_error_code(kafka_code(code))
                    .with_error_message(message(m)),
            }
        };
        results.push(r);
    }
    ready(head, &CreateTopicsResponse::default().with_topics(results))
}

/// Why a replica assignment is refused.
const NO_ASSIGNMENTS: &str =
    "replica assignments are not supported (one broker holds every partition)";

pub(super) async fn create_partitions(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: CreatePartitionsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    // A topic named twice has no one count to grow to: each of its entries is refused, as
    // Kafka's broker does.
    let mut named: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *named.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(topic_name(&name));
        let refuse = |e: ResponseError, m: String| {
            result
                .clone()
                .with_error_code(e.code())
                .with_error_message(message(m))
        };
        let failed = |(code, m): Failure| {
            result
                .clone()
                .with_error_code(kafka_code(code))
                .with_error_message(message(m))
        };
        let r = if named.get(name.as_str()).is_some_and(|&n| n > 1) {
            refuse(
                ResponseError::InvalidRequest,
                format!("topic {name:?} is named more than once in the request"),
            )
        } else if t.assignments.is_some() {
            refuse(
                ResponseError::InvalidReplicaAssignment,
                NO_ASSIGNMENTS.into(),
            )
        } else {
            match ctx.broker.topic(&name).map(|h| h.partitions.len()) {
                Err(f) => failed(f),
                // Checked here too, for its own code: the store refuses it as an invalid
                // request like the other limits.
                Ok(current) if i64::from(t.count) <= current as i64 => refuse(
                    ResponseError::InvalidPartitions,
                    format!(
                        "topic {name:?} has {current} partitions: the new count must be \
                         greater, not {} (partitions cannot be removed)",
                        t.count
                    ),
                ),
                Ok(_) => match ctx
                    .broker
                    .add_partitions(name.clone(), t.count as u32, req.validate_only)
                    .await
                {
                    Ok(()) => result,
                    Err(f) => failed(f),
                },
            }
        };
        results.push(r);
    }
    ready(
        head,
        &CreatePartitionsResponse::default().with_results(results),
    )
}

pub(super) async fn delete_topics(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: DeleteTopicsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    // Up to v5 a list of names; from v6 a list of (name or id): this server has no topic ids.
    let names: Vec<Option<String>> = if head.api_version >= 6 {
        req.topics
            .iter()
            .map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| Some(n.0.to_string()))
            .collect()
    };
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let Some(name) = name else {
            results.push(
                DeletableTopicResult::default()
                    .with_error_code(ResponseError::UnknownTopicId.code())
                    .with_error_message(message("topics are deleted by name here".into())),
            );
            continue;
        };
        let result = DeletableTopicResult::default().with_name(Some(topic_name(&name)));
        let r = match ctx.broker.delete_topic(name.clone()).await {
            Ok(_) => {
                ctx.kafka.producers.forget_topic(&name);
                result
            }
            Err((code, m)) => result
                .with_error_code(kafka_code(code))
                .with_error_message(message(m)),
        };
        results.push(r);
    }
    ready(
        head,
        &DeleteTopicsResponse::default().with_responses(results),
    )
}
