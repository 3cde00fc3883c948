//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup over the group state machine
//! (`kafka/group/`): a JoinGroup waits until the rebalance completes, a follower's SyncGroup
//! until the leader's assignment arrives. Static membership (`group.instance.id`) is treated
//! as dynamic.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{group_id_error, ready, request, Answer, Ctx};
use crate::budget::Charge;
use crate::kafka::frame::RequestHead;
use crate::kafka::group::{self, Join, JoinResult, SyncResult};

/// From this version a new member is first given an id, then rejoins with it (KIP-394).
const KNOWN_MEMBER_ID_FROM: i16 = 4;
/// From this version LeaveGroup names several members.
const BATCHED_LEAVE_FROM: i16 = 3;

fn str(s: Option<String>) -> Option<StrBytes> {
    s.map(StrBytes::from_string)
}

fn join_response(r: JoinResult) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_type(str(r.protocol_type))
        .with_protocol_name(str(r.protocol))
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

fn sync_response(r: SyncResult) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(str(r.protocol_type))
        .with_protocol_name(str(r.protocol))
        .with_assignment(r.assignment)
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

pub(super) fn join(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: JoinGroupRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.0.to_string();
    if let Some(code) = group_id_error(&group_id) {
        return ready(
            head,
            &JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1),
        );
    }
    let client_id = head.client_id.clone().unwrap_or_default();
    let join = Join {
        member_id: req.member_id.to_string(),
        client_id: client_id.clone(),
        client_host: format!("/{}", ctx.peer_ip),
        session_timeout: millis(req.session_timeout_ms),
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout: millis(if head.api_version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        }),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        requires_known_member_id: head.api_version >= KNOWN_MEMBER_ID_FROM,
    };
    let member_id = join.member_id.clone();
    let new_id = || ctx.kafka.new_member_id(&client_id);
    match ctx.kafka.groups.join(&group_id, join, new_id) {
        group::Answer::Now(r) => ready(head, &join_response(r)),
        group::Answer::Later(rx) => {
            let head = head.clone();
            Answer::Later(Box::pin(async move {
                let r = rx.await.unwrap_or_else(|_| JoinResult {
                    error: ResponseError::UnknownMemberId.code(),
                    generation: -1,
                    protocol_type: None,
                    protocol: None,
                    leader: String::new(),
                    member_id,
                    members: Vec::new(),
                });
                (ready(&head, &join_response(r)), Charge::none())
            }))
        }
    }
}

pub(super) fn sync(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: SyncGroupRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.0.to_string();
    if let Some(code) = group_id_error(&group_id) {
        return ready(head, &SyncGroupResponse::default().with_error_code(code));
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let answer = ctx
        .kafka
        .groups
        .sync(&group_id, &req.member_id, req.generation_id, assignments);
    match answer {
        group::Answer::Now(r) => ready(head, &sync_response(r)),
        group::Answer::Later(rx) => {
            let head = head.clone();
            Answer::Later(Box::pin(async move {
                let r = rx.await.unwrap_or_else(|_| SyncResult {
                    error: ResponseError::UnknownMemberId.code(),
                    protocol_type: None,
                    protocol: None,
                    assignment: Bytes::new(),
                });
                (ready(&head, &sync_response(r)), Charge::none())
            }))
        }
    }
}

pub(super) fn heartbeat(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: HeartbeatRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let code = group_id_error(&req.group_id.0).unwrap_or_else(|| {
        ctx.kafka
            .groups
            .heartbeat(&req.group_id.0, &req.member_id, req.generation_id)
    });
    ready(head, &HeartbeatResponse::default().with_error_code(code))
}

pub(super) fn leave(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: LeaveGroupRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.0.to_string();
    if let Some(code) = group_id_error(&group_id) {
        return ready(head, &LeaveGroupResponse::default().with_error_code(code));
    }
    let groups = &ctx.kafka.groups;
    let resp = if head.api_version >= BATCHED_LEAVE_FROM {
        let members = req
            .members
            .iter()
            .map(|m| {
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(groups.leave(&group_id, &m.member_id))
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    } else {
        LeaveGroupResponse::default().with_error_code(groups.leave(&group_id, &req.member_id))
    };
    ready(head, &resp)
}
