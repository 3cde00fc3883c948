//! InitProducerId: a producer id for an idempotent producer (epoch 0), or the next epoch of
//! the id it already has (KIP-360). Transactional ids are refused: transactions are not
//! supported.

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{ready, request, Answer, Ctx};
use crate::kafka::frame::RequestHead;

pub(super) fn handle(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: InitProducerIdRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let resp = InitProducerIdResponse::default();
    let resp = if req.transactional_id.is_some() {
        resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    } else if req.producer_id.0 >= 0 && (0..i16::MAX - 1).contains(&req.producer_epoch) {
        resp.with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1)
    } else {
        resp.with_producer_id(ProducerId(ctx.kafka.producers.new_producer_id()))
            .with_producer_epoch(0)
    };
    ready(head, &resp)
}
