//! The Kafka APIs this server answers, one file each, and the dispatcher that routes a request
//! to its handler.

mod admin;
mod api_versions;
mod describe_configs;
mod fetch;
mod find_coordinator;
mod group_info;
mod group_membership;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offsets;
mod produce;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::frame::{decode, encode_response, RequestHead};
use super::versions;
use super::Kafka;
use stream_log::PartitionLog;

use crate::broker::{Broker, TopicHandle};
use crate::budget::{Charge, ConnBudget};

/// The one node of this single-broker cluster.
pub const NODE_ID: BrokerId = BrokerId(0);

/// What a handler needs of the server and the connection.
pub struct Ctx {
    /// The broker.
    pub broker: Arc<Broker>,
    /// Kafka listener settings and shared state.
    pub kafka: Arc<Kafka>,
    /// The connection's share of the memory budget.
    pub budget: ConnBudget,
    /// The port advertised in Metadata and FindCoordinator.
    pub port: u16,
    /// The client's address (DescribeGroups).
    pub peer_ip: String,
}

/// An answer still being worked on (a produce waiting for its fsync, a long-poll fetch), with
/// the memory charged for it.
pub type LaterAnswer = Pin<Box<dyn Future<Output = (Answer, Charge)> + Send>>;

/// A handler's result.
pub enum Answer {
    /// The framed answer.
    Ready(BytesMut),
    /// Ready later.
    Later(LaterAnswer),
    /// No answer (a produce with `acks=0`).
    Nothing,
    /// The request cannot be answered: the connection is closed with this logged, as Kafka's
    /// own broker does with a request it cannot parse.
    Close(String),
}

/// Serves one request.
pub async fn dispatch(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    if head.api_key == ApiKey::ApiVersions {
        // Answered at any version: an unsupported one gets the fallback (KIP-511).
        return api_versions::handle(head, body);
    }
    if !versions::is_supported(head.api_key, head.api_version) {
        let served = match versions::supported(head.api_key) {
            Some((min, max)) => format!("versions {min} to {max} are"),
            None => "no version is".to_string(),
        };
        return Answer::Close(format!(
            "{:?} v{} is not supported ({served}; ApiVersions lists what is)",
            head.api_key, head.api_version
        ));
    }
    match head.api_key {
        ApiKey::Metadata => metadata::handle(ctx, head, body).await,
        ApiKey::Produce => produce::handle(ctx, head, body).await,
        ApiKey::Fetch => fetch::handle(ctx, head, body),
        ApiKey::ListOffsets => list_offsets::handle(ctx, head, body).await,
        ApiKey::CreateTopics => admin::create_topics(ctx, head, body).await,
        ApiKey::DeleteTopics => admin::delete_topics(ctx, head, body).await,
        ApiKey::CreatePartitions => admin::create_partitions(ctx, head, body).await,
        ApiKey::InitProducerId => init_producer_id::handle(ctx, head, body),
        ApiKey::FindCoordinator => find_coordinator::handle(ctx, head, body),
        ApiKey::JoinGroup => group_membership::join(ctx, head, body),
        ApiKey::SyncGroup => group_membership::sync(ctx, head, body),
        ApiKey::Heartbeat => group_membership::heartbeat(ctx, head, body),
        ApiKey::LeaveGroup => group_membership::leave(ctx, head, body),
        ApiKey::OffsetCommit => offsets::commit(ctx, head, body).await,
        ApiKey::OffsetFetch => offsets::fetch(ctx, head, body),
        ApiKey::ListGroups => group_info::list(ctx, head, body),
        ApiKey::DescribeGroups => group_info::describe(ctx, head, body),
        ApiKey::DescribeConfigs => describe_configs::handle(ctx, head, body),
        key => Answer::Close(format!("{key:?} is advertised but has no handler")),
    }
}

/// The request body, or the answer that closes the connection.
fn request<M: Decodable>(head: &RequestHead, mut body: Bytes) -> Result<M, Answer> {
    decode(&mut body, head.api_version).map_err(|e| {
        Answer::Close(format!(
            "malformed {:?} v{} request: {e}",
            head.api_key, head.api_version
        ))
    })
}

/// The framed answer at the request's version.
fn ready<M: Encodable>(head: &RequestHead, body: &M) -> Answer {
    match encode_response(head, head.api_version, body) {
        Ok(b) => Answer::Ready(b),
        Err(e) => Answer::Close(e),
    }
}

/// Partition `index` of a topic, if both exist (Kafka's partition indexes are `i32`).
fn partition_log(topic: Option<&Arc<TopicHandle>>, index: i32) -> Option<&Arc<PartitionLog>> {
    let i = usize::try_from(index).ok()?;
    topic?.partitions.get(i)
}

/// The Kafka error for a group id this server refuses (empty, or longer than STRP allows,
/// since both protocols share the offset store), if it does.
fn group_id_error(id: &str) -> Option<i16> {
    (id.is_empty() || id.len() > stream_proto::MAX_GROUP_ID_LEN)
        .then(|| kafka_protocol::ResponseError::InvalidGroupId.code())
}

/// A topic name as Kafka's messages carry it.
fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// An error message field.
fn message(m: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(m))
}
