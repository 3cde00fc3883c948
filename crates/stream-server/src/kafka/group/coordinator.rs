//! The groups of the Kafka listener: one [`Group`] state machine per group id, and the
//! requests waiting for a rebalance to answer them (a JoinGroup until every member rejoined,
//! a follower's SyncGroup until the leader's assignment arrives). Answers travel to waiting
//! requests over one-shot channels; a group without members is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::state::{Event, Group, Join, JoinResult, MemberId, Reply, SyncResult};
use crate::kafka::lock;

/// Most groups with members at once; a JoinGroup for one more gets GROUP_MAX_SIZE_REACHED.
pub const MAX_GROUPS: usize = 10_000;

/// A group and the requests of its members that wait.
#[derive(Default)]
struct Entry {
    group: Group,
    joins: HashMap<MemberId, oneshot::Sender<JoinResult>>,
    syncs: HashMap<MemberId, oneshot::Sender<SyncResult>>,
}

impl Entry {
    /// Answers waiting requests; a member waiting twice (a retried request) gets the answer
    /// on its latest.
    fn deliver(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Joined(id, r) => {
                    if let Some(tx) = self.joins.remove(&id) {
                        let _ = tx.send(r);
                    }
                }
                Event::Synced(id, r) => {
                    if let Some(tx) = self.syncs.remove(&id) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
        // Requests of members no longer in the group will get no event: they end now
        // (their senders drop, and the handler answers UNKNOWN_MEMBER_ID).
        let members = self.group.members();
        self.joins
            .retain(|id, _| members.iter().any(|m| &m.id == id));
        self.syncs
            .retain(|id, _| members.iter().any(|m| &m.id == id));
    }
}

/// How a request is answered.
pub enum Answer<T> {
    /// Now.
    Now(T),
    /// Once the group gets there (the sender dropping means the member was removed).
    Later(oneshot::Receiver<T>),
}

/// Every group of the listener.
#[derive(Default)]
pub struct Groups {
    groups: Mutex<HashMap<String, Entry>>,
}

impl Groups {
    /// A JoinGroup.
    pub fn join(
        &self,
        group_id: &str,
        req: Join,
        new_id: impl FnOnce() -> MemberId,
    ) -> Answer<JoinResult> {
        let mut groups = lock(&self.groups);
        if !groups.contains_key(group_id) && groups.len() >= MAX_GROUPS {
            return Answer::Now(JoinResult {
                error: ResponseError::GroupMaxSizeReached.code(),
                generation: -1,
                protocol_type: None,
                protocol: None,
                leader: String::new(),
                member_id: req.member_id,
                members: Vec::new(),
            });
        }
        let entry = groups.entry(group_id.to_string()).or_default();
        let requested = req.member_id.clone();
        let (reply, events) = entry.group.join(req, Instant::now(), new_id);
        let answer = match reply {
            Reply::Now(r) => Answer::Now(r),
            Reply::Later => {
                // The member id is the request's, or the one just given to a new member: the
                // last member that joined.
                let id = if requested.is_empty() {
                    entry
                        .group
                        .members()
                        .last()
                        .map(|m| m.id.clone())
                        .unwrap_or_default()
                } else {
                    requested
                };
                let (tx, rx) = oneshot::channel();
                entry.joins.insert(id, tx);
                Answer::Later(rx)
            }
        };
        entry.deliver(events);
        Self::drop_if_idle(&mut groups, group_id);
        answer
    }

    /// A SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(MemberId, Bytes)>,
    ) -> Answer<SyncResult> {
        let mut groups = lock(&self.groups);
        let Some(entry) = groups.get_mut(group_id) else {
            return Answer::Now(SyncResult {
                error: ResponseError::UnknownMemberId.code(),
                protocol_type: None,
                protocol: None,
                assignment: Bytes::new(),
            });
        };
        let (reply, events) = entry
            .group
            .sync(member_id, generation, assignments, Instant::now());
        let answer = match reply {
            Reply::Now(r) => Answer::Now(r),
            Reply::Later => {
                let (tx, rx) = oneshot::channel();
                entry.syncs.insert(member_id.to_string(), tx);
                Answer::Later(rx)
            }
        };
        entry.deliver(events);
        answer
    }

    /// A Heartbeat: its error code.
    pub fn heartbeat(&self, group_id: &str, member_id: &str, generation: i32) -> i16 {
        match lock(&self.groups).get_mut(group_id) {
            Some(e) => e.group.heartbeat(member_id, generation, Instant::now()),
            None => ResponseError::UnknownMemberId.code(),
        }
    }

    /// A LeaveGroup of one member: its error code.
    pub fn leave(&self, group_id: &str, member_id: &str) -> i16 {
        let mut groups = lock(&self.groups);
        let Some(entry) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        let (code, events) = entry.group.leave(member_id, Instant::now());
        entry.deliver(events);
        Self::drop_if_idle(&mut groups, group_id);
        code
    }

    /// Whether an OffsetCommit may store offsets (see [`Group::may_commit`]).
    pub fn may_commit(&self, group_id: &str, member_id: &str, generation: i32) -> Result<(), i16> {
        match lock(&self.groups).get_mut(group_id) {
            Some(e) => e.group.may_commit(member_id, generation, Instant::now()),
            // No live group: only a consumer that assigns itself may commit.
            None if generation < 0 => Ok(()),
            None => Err(ResponseError::UnknownMemberId.code()),
        }
    }

    /// Applies every group's deadlines; returns how many members were removed for silence.
    pub fn tick(&self, now: Instant) {
        let mut groups = lock(&self.groups);
        for (id, entry) in groups.iter_mut() {
            let before = entry.group.members().len();
            let events = entry.group.tick(now);
            let after = entry.group.members().len();
            if after < before {
                tracing::info!(group = %id, removed = before - after, members = after,
                    "Kafka group members removed: session or rebalance timeout");
            }
            entry.deliver(events);
        }
        groups.retain(|_, e| !e.group.is_idle());
    }

    /// A copy of a group's state (DescribeGroups), if it has members.
    pub fn describe(&self, group_id: &str) -> Option<Group> {
        lock(&self.groups).get(group_id).map(|e| e.group.clone())
    }

    /// Every live group's id and protocol type (ListGroups).
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        lock(&self.groups)
            .iter()
            .map(|(id, e)| {
                let t = e.group.protocol_type().unwrap_or_default().to_string();
                (id.clone(), t, e.group.state().name())
            })
            .collect()
    }

    fn drop_if_idle(groups: &mut HashMap<String, Entry>, group_id: &str) {
        if groups.get(group_id).is_some_and(|e| e.group.is_idle()) {
            groups.remove(group_id);
        }
    }
}
