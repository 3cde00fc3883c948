//! ApiVersions: the table in `versions.rs`, with the unsupported-version fallback (KIP-511): a
//! request at a version above ours is answered at v0 with UNSUPPORTED_VERSION and our list,
//! so that the client retries at one we speak.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{ready, request, Answer};
use crate::kafka::frame::{encode_response, RequestHead};
use crate::kafka::versions::{self, SUPPORTED};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub(super) fn handle(head: &RequestHead, body: Bytes) -> Answer {
    if !versions::is_supported(ApiKey::ApiVersions, head.api_version) {
        let resp = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys());
        return match encode_response(head, 0, &resp) {
            Ok(b) => Answer::Ready(b),
            Err(e) => Answer::Close(e),
        };
    }
    // Only v3 has fields (the client's software name and version); they must parse.
    if let Err(close) = request::<ApiVersionsRequest>(head, body) {
        return close;
    }
    let resp = ApiVersionsResponse::default().with_api_keys(api_keys());
    ready(head, &resp)
}
