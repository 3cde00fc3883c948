//! DescribeConfigs: the settings every topic has here (the server's own: retention, segment
//! size, message size; topics have no settings of their own), for a topic or the broker.

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{message, ready, request, Answer, Ctx};
use crate::kafka::frame::RequestHead;

/// Resource types (Kafka's `ConfigResource.Type`).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// `config_source`: set by the server's own configuration.
const STATIC_BROKER_CONFIG: i8 = 4;

pub(super) fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: DescribeConfigsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let results = req
        .resources
        .iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let refuse = |e: ResponseError, m: String| {
                result
                    .clone()
                    .with_error_code(e.code())
                    .with_error_message(message(m))
            };
            match r.resource_type {
                TOPIC if ctx.broker.topic(&r.resource_name).is_err() => refuse(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {:?} not found", r.resource_name.as_str()),
                ),
                TOPIC | BROKER => {
                    let configs = ctx
                        .kafka
                        .config
                        .topic_configs
                        .iter()
                        .filter(|(k, _)| {
                            r.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|want| want.as_str() == k))
                        })
                        .map(|(k, v)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                                .with_read_only(true)
                                .with_config_source(STATIC_BROKER_CONFIG)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                t => refuse(
                    ResponseError::InvalidRequest,
                    format!("resource type {t}: only topics (2) and the broker (4) are described"),
                ),
            }
        })
        .collect();
    ready(
        head,
        &DescribeConfigsResponse::default().with_results(results),
    )
}
