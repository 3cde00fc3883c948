//! The consumer-group requests (JOIN_GROUP, JOIN_GROUP_V2, LEAVE_GROUP, HEARTBEAT,
//! COMMIT_OFFSET, GROUP_COMMIT, FETCH_OFFSET) over the coordinator in [`crate::groups`] and the
//! committed offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stream_proto::{ErrorCode, Request, Response, Status};

use super::errors::Failure;
use super::{Broker, ConnState};

impl Broker {
    /// Serves a group request (`dispatch` sends every other type elsewhere).
    pub(super) async fn group_request(
        self: &Arc<Self>,
        req: Request,
        conn: &mut ConnState,
    ) -> Result<Response, Failure> {
        match req {
            Request::JoinGroup { group_id, topic } => {
                let n = self.topic(&topic)?.partitions.len() as u32;
                let j = self.groups.join(
                    &group_id,
                    &topic,
                    n,
                    "",
                    None,
                    Some(conn.id),
                    Instant::now(),
                )?;
                conn.has_legacy_members = true;
                tracing::info!(group = %group_id, member = %j.consumer_id, generation = j.generation, "member joined (legacy JOIN_GROUP)");
                Ok(Response::JoinGroup {
                    error: ErrorCode::None,
                    message: String::new(),
                    consumer_id: j.consumer_id,
                    partitions: j.partitions,
                })
            }
            Request::JoinGroupV2 {
                group_id,
                topic,
                consumer_id,
                session_timeout_ms,
            } => {
                let n = self.topic(&topic)?.partitions.len() as u32;
                let session = (session_timeout_ms > 0)
                    .then(|| Duration::from_millis(u64::from(session_timeout_ms)));
                let j = self.groups.join(
                    &group_id,
                    &topic,
                    n,
                    &consumer_id,
                    session,
                    None,
                    Instant::now(),
                )?;
                if consumer_id.is_empty() {
                    tracing::info!(group = %group_id, member = %j.consumer_id, generation = j.generation, "member joined");
                }
                Ok(Response::JoinGroupV2 {
                    error: ErrorCode::None,
                    message: String::new(),
                    consumer_id: j.consumer_id,
                    generation: j.generation,
                    partitions: j.partitions,
                })
            }
            Request::LeaveGroup {
                group_id,
                consumer_id,
            } => {
                self.groups.leave(&group_id, &consumer_id)?;
                tracing::info!(group = %group_id, member = %consumer_id, "member left");
                Ok(Response::LeaveGroup(Status::ok()))
            }
            Request::CommitOffset {
                group_id,
                topic,
                partition,
                offset,
            } => {
                self.commit(group_id, topic, partition, offset).await?;
                Ok(Response::CommitOffset(Status::ok()))
            }
            Request::GroupCommit {
                group_id,
                consumer_id,
                generation,
                topic,
                partition,
                offset,
            } => {
                self.groups.check_commit(
                    &group_id,
                    &consumer_id,
                    generation,
                    &topic,
                    partition,
                    Instant::now(),
                )?;
                self.commit(group_id, topic, partition, offset).await?;
                Ok(Response::GroupCommit(Status::ok()))
            }
            Request::FetchOffset {
                group_id,
                topic,
                partition,
            } => Ok(match self.offsets.fetch(&group_id, &topic, partition) {
                Some(offset) => Response::FetchOffset {
                    error: ErrorCode::None,
                    offset,
                },
                None => Response::FetchOffset {
                    error: ErrorCode::InvalidOffset,
                    offset: 0,
                },
            }),
            Request::Heartbeat(None) => Ok(Response::Heartbeat(Status::ok())),
            Request::Heartbeat(Some(hb)) => {
                self.groups.heartbeat(
                    &hb.group_id,
                    &hb.consumer_id,
                    hb.generation,
                    Instant::now(),
                )?;
                Ok(Response::Heartbeat(Status::ok()))
            }
            other => Err((
                ErrorCode::Unknown,
                format!("{} is not a group request", other.request_type().name()),
            )),
        }
    }

    /// Durably commits `offset` for (group, topic, partition), checked against the partition.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        group: String,
        topic: String,
        partition: u32,
        offset: u64,
    ) -> Result<(), Failure> {
        let log = self.partition(&topic, partition)?;
        let hw = log.high_watermark();
        if offset > hw {
            return Err((
                ErrorCode::InvalidOffset,
                format!("offset {offset} is past the end of {topic}/{partition} ({hw})"),
            ));
        }
        let (g, t) = (group.clone(), topic.clone());
        self.blocking(move |b| b.offsets.commit(&g, &t, partition, offset))
            .await?;
        Ok(())
    }
}
