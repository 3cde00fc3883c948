//! ListGroups and DescribeGroups: the groups with members, and those that only have committed
//! offsets (state `Empty`, as Kafka lists them).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{ready, request, Answer, Ctx};
use crate::kafka::frame::RequestHead;

/// The group type ListGroups v5 reports: the classic protocol is the one served.
const CLASSIC: &str = "classic";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Every group: `id -> (protocol type, state)`.
fn all_groups(ctx: &Ctx) -> BTreeMap<String, (String, &'static str)> {
    let mut groups: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    for ((group, _, _), _) in ctx.broker.offsets().all() {
        groups
            .entry(group)
            .or_insert_with(|| ("consumer".to_string(), "Empty"));
    }
    for (id, protocol_type, state) in ctx.kafka.groups.list() {
        groups.insert(id, (protocol_type, state));
    }
    groups
}

pub(super) fn list(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: ListGroupsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let wanted = |filter: &[StrBytes], v: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(v))
    };
    let groups = all_groups(ctx)
        .into_iter()
        .filter(|(_, (_, state))| wanted(&req.states_filter, state))
        .filter(|_| wanted(&req.types_filter, CLASSIC))
        .map(|(id, (protocol_type, state))| {
            let g = ListedGroup::default()
                .with_group_id(GroupId(s(&id)))
                .with_protocol_type(s(&protocol_type));
            let g = if head.api_version >= 4 {
                g.with_group_state(s(state))
            } else {
                g
            };
            if head.api_version >= 5 {
                g.with_group_type(s(CLASSIC))
            } else {
                g
            }
        })
        .collect();
    ready(head, &ListGroupsResponse::default().with_groups(groups))
}

pub(super) fn describe(ctx: &Ctx, head: &RequestHead, body: Bytes) -> Answer {
    let req: DescribeGroupsRequest = match request(head, body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let known = all_groups(ctx);
    let groups = req
        .groups
        .iter()
        .map(|id| {
            let d = DescribedGroup::default().with_group_id(id.clone());
            match ctx.kafka.groups.describe(&id.0) {
                Some(g) => {
                    let protocol = g.protocol().unwrap_or_default().to_string();
                    let members = g
                        .members()
                        .iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(&m.id))
                                .with_client_id(s(&m.client_id))
                                .with_client_host(s(&m.client_host))
                                .with_member_metadata(m.metadata(&protocol))
                                .with_member_assignment(m.assignment.clone())
                        })
                        .collect();
                    d.with_group_state(s(g.state().name()))
                        .with_protocol_type(s(g.protocol_type().unwrap_or_default()))
                        .with_protocol_data(s(&protocol))
                        .with_members(members)
                }
                None if known.contains_key(id.0.as_str()) => d
                    .with_group_state(s("Empty"))
                    .with_protocol_type(s("consumer")),
                None => d.with_group_state(s("Dead")),
            }
        })
        .collect();
    ready(head, &DescribeGroupsResponse::default().with_groups(groups))
}
