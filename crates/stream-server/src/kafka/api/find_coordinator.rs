//! FindCoordinator: this broker coordinates every group. Transaction coordinators are refused
//! (transactions are not supported).

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{message, ready, request, Answer, Ctx, NODE_ID};
use crate::kafka::frame::RequestHead;

/// `key_type` of a transactional id.
const TRANSACTION: i8 = 1;
/// From v4 on, several keys per request, each with its own answer.
const BATCHED: i16 = 4;

pub(super) fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: FindCoordinatorRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let host = StrBytes::from_string(ctx.kafka.config.advertised_host.clone());
    let port = i32::from(ctx.port);
    let refusal = (req.key_type == TRANSACTION).then(|| {
        (
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "transactions are not supported".to_string(),
        )
    });
    let resp = if head.api_version >= BATCHED {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match &refusal {
                    Some((code, m)) => c
                        .with_node_id(kafka_protocol::messages::BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(*code)
                        .with_error_message(message(m.clone())),
                    None => c
                        .with_node_id(NODE_ID)
                        .with_host(host.clone())
                        .with_port(port),
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        match refusal {
            Some((code, m)) => FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_error_message(message(m))
                .with_node_id(kafka_protocol::messages::BrokerId(-1))
                .with_port(-1),
            None => FindCoordinatorResponse::default()
                .with_node_id(NODE_ID)
                .with_host(host)
                .with_port(port),
        }
    };
    ready(head, &resp)
}
