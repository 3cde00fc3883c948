//! One Kafka consumer group's membership, the classic protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) as a state machine with no I/O: each input returns the answer for
//! the caller now or says it waits, plus [`Event`]s that answer members already waiting;
//! [`Group::tick`] applies deadlines (rebalance timeouts, session timeouts).
//!
//! The broker does not assign partitions: the group's leader (its first member) gets every
//! member's subscription in its JoinGroup answer, computes the assignment and hands it over in
//! its SyncGroup, and each member gets its share in its own SyncGroup answer.
//!
//! ```text
//! Empty --join--> PreparingRebalance --all members joined, or the rebalance timeout-->
//!   CompletingRebalance --leader's SyncGroup--> Stable --join/leave/session expiry--> PreparingRebalance
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

/// A member's id.
pub type MemberId = String;

/// Where the group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// Kafka's name for the state (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A JoinGroup's fields.
#[derive(Debug, Clone)]
pub struct Join {
    /// Empty for a member joining for the first time.
    pub member_id: MemberId,
    /// The client's id and host (DescribeGroups).
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Without a heartbeat for this long, the member is removed.
    pub session_timeout: Duration,
    /// How long a rebalance waits for this member to rejoin.
    pub rebalance_timeout: Duration,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The assignors it supports, best first, with its subscription for each.
    pub protocols: Vec<(String, Bytes)>,
    /// A new member must first be given an id and rejoin with it (JoinGroup v4 and later).
    pub requires_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// Kafka error code.
    pub error: i16,
    /// The new generation.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen assignor.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: MemberId,
    /// The member's own id.
    pub member_id: MemberId,
    /// For the leader only: every member with its subscription.
    pub members: Vec<(MemberId, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// Kafka error code.
    pub error: i16,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen assignor.
    pub protocol: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// What the caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    /// Answer now.
    Now(T),
    /// The answer comes as an [`Event`] for this member.
    Later,
}

/// An answer for a member that is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Its JoinGroup is answered.
    Joined(MemberId, JoinResult),
    /// Its SyncGroup is answered.
    Synced(MemberId, SyncResult),
}

/// One member.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its id.
    pub id: MemberId,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation.
    pub assignment: Bytes,
    last_seen: Instant,
    awaiting_join: bool,
    awaiting_sync: bool,
}

impl Member {
    /// Its subscription for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// Most members in one group (GROUP_MAX_SIZE_REACHED past it), as Kafka's
/// `group.max.size` default.
pub const MAX_MEMBERS: usize = 1000;
/// Longest session timeout accepted (Kafka's `group.max.session.timeout.ms` default).
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest rebalance timeout honoured: a rebalance never waits longer for a member.
pub const MAX_REBALANCE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Members given an id (JoinGroup v4+) that have not rejoined with it yet, at most.
const MAX_PENDING: usize = MAX_MEMBERS;

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<MemberId>,
    /// In join order: the first is the leader when one must be chosen.
    members: Vec<Member>,
    /// Ids handed out that must rejoin, with when.
    pending: Vec<(MemberId, Instant)>,
    rebalance_deadline: Option<Instant>,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: Vec::new(),
            rebalance_deadline: None,
        }
    }
}

fn join_error(error: ResponseError, member_id: &str) -> JoinResult {
    JoinResult {
        error: error.code(),
        generation: -1,
        protocol_type: None,
        protocol: None,
        leader: String::new(),
        member_id: member_id.to_string(),
        members: Vec::new(),
    }
}

fn sync_error(error: ResponseError) -> SyncResult {
    SyncResult {
        error: error.code(),
        protocol_type: None,
        protocol: None,
        assignment: Bytes::new(),
    }
}

impl Group {
    /// The state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol type, once a member joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The chosen assignor of the current generation.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether the group has no members and no member is about to join: it can be dropped.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// A JoinGroup. `new_id` makes a member id for a member joining for the first time.
    pub fn join(
        &mut self,
        req: Join,
        now: Instant,
        new_id: impl FnOnce() -> MemberId,
    ) -> (Reply<JoinResult>, Vec<Event>) {
        let now_reply = |r| (Reply::Now(r), Vec::new());
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return now_reply(join_error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        if req.session_timeout.is_zero() || req.session_timeout > MAX_SESSION_TIMEOUT {
            return now_reply(join_error(
                ResponseError::InvalidSessionTimeout,
                &req.member_id,
            ));
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != req.protocol_type)
            && !self.members.is_empty()
        {
            return now_reply(join_error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        let known = self.members.iter().any(|m| m.id == req.member_id);
        let pending = self.pending.iter().position(|(id, _)| *id == req.member_id);
        let member_id = if req.member_id.is_empty() {
            let id = new_id();
            if req.requires_known_member_id {
                if self.pending.len() >= MAX_PENDING {
                    self.pending.remove(0);
                }
                self.pending.push((id.clone(), now));
                return now_reply(join_error(ResponseError::MemberIdRequired, &id));
            }
            id
        } else if known {
            req.member_id.clone()
        } else if let Some(i) = pending {
            self.pending.remove(i);
            req.member_id.clone()
        } else {
            return now_reply(join_error(ResponseError::UnknownMemberId, &req.member_id));
        };
        if !known && self.members.len() >= MAX_MEMBERS {
            return now_reply(join_error(ResponseError::GroupMaxSizeReached, &member_id));
        }
        // Every member must share one assignor with the others.
        let shares_protocol = |protocols: &[(String, Bytes)]| {
            protocols.iter().any(|(p, _)| {
                self.members
                    .iter()
                    .filter(|m| m.id != member_id)
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
        };
        if !shares_protocol(&req.protocols) {
            return now_reply(join_error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        if known && self.state == GroupState::Stable {
            // A follower rejoining unchanged gets the current generation without a rebalance.
            let is_leader = self.leader.as_deref() == Some(member_id.as_str());
            let protocol = self.protocol.clone();
            let unchanged = self.member_mut(&member_id).is_some_and(|m| {
                m.last_seen = now;
                m.protocols == req.protocols
            });
            if !is_leader && unchanged {
                let result = JoinResult {
                    error: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol,
                    leader: self.leader.clone().unwrap_or_default(),
                    member_id,
                    members: Vec::new(),
                };
                return now_reply(result);
            }
        }
        let member = Member {
            id: member_id.clone(),
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout.min(MAX_REBALANCE_TIMEOUT),
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_seen: now,
            awaiting_join: true,
            awaiting_sync: false,
        };
        match self.members.iter_mut().find(|m| m.id == member_id) {
            Some(m) => *m = member,
            None => self.members.push(member),
        }
        self.protocol_type = Some(req.protocol_type);
        let mut events = Vec::new();
        if self.state != GroupState::PreparingRebalance {
            events.extend(self.prepare_rebalance(now));
        }
        if self.members.iter().all(|m| m.awaiting_join) {
            events.extend(self.complete_join(now));
        }
        (Reply::Later, events)
    }

    /// Starts a rebalance: members waiting for their assignment learn it is off.
    fn prepare_rebalance(&mut self, now: Instant) -> Vec<Event> {
        self.state = GroupState::PreparingRebalance;
        let timeout = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        self.members
            .iter_mut()
            .filter(|m| m.awaiting_sync)
            .map(|m| {
                m.awaiting_sync = false;
                Event::Synced(m.id.clone(), sync_error(ResponseError::RebalanceInProgress))
            })
            .collect()
    }

    /// Ends the join phase: who did not rejoin is out, the rest get the new generation.
    fn complete_join(&mut self, now: Instant) -> Vec<Event> {
        self.members.retain(|m| m.awaiting_join);
        self.rebalance_deadline = None;
        self.generation = self.generation.wrapping_add(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol = None;
            return Vec::new();
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.iter().any(|m| &m.id == l))
        {
            self.leader = Some(self.members[0].id.clone());
        }
        let leader = self.leader.clone().unwrap_or_default();
        // The leader's most preferred assignor that every member supports.
        let lead = self.members.iter().find(|m| m.id == leader);
        self.protocol = lead.and_then(|l| {
            l.protocols
                .iter()
                .map(|(p, _)| p)
                .find(|p| {
                    self.members
                        .iter()
                        .all(|m| m.protocols.iter().any(|(q, _)| q == *p))
                })
                .cloned()
        });
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let everyone: Vec<(MemberId, Bytes)> = self
            .members
            .iter()
            .map(|m| (m.id.clone(), m.metadata(&protocol)))
            .collect();
        let mut events = Vec::with_capacity(self.members.len());
        for m in &mut self.members {
            m.awaiting_join = false;
            m.last_seen = now;
            m.assignment = Bytes::new();
            let result = JoinResult {
                error: 0,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol: self.protocol.clone(),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader {
                    everyone.clone()
                } else {
                    Vec::new()
                },
            };
            events.push(Event::Joined(m.id.clone(), result));
        }
        events
    }

    /// A SyncGroup; `assignments` come from the leader.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(MemberId, Bytes)>,
        now: Instant,
    ) -> (Reply<SyncResult>, Vec<Event>) {
        let now_reply = |r| (Reply::Now(r), Vec::new());
        let (state, current) = (self.state, self.generation);
        let (protocol_type, protocol) = (self.protocol_type.clone(), self.protocol.clone());
        let is_leader = self.leader.as_deref() == Some(member_id);
        let Some(m) = self.member_mut(member_id) else {
            return now_reply(sync_error(ResponseError::UnknownMemberId));
        };
        m.last_seen = now;
        if generation != current {
            return now_reply(sync_error(ResponseError::IllegalGeneration));
        }
        match state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                now_reply(sync_error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => now_reply(SyncResult {
                error: 0,
                protocol_type,
                protocol,
                assignment: m.assignment.clone(),
            }),
            GroupState::CompletingRebalance if !is_leader => {
                m.awaiting_sync = true;
                (Reply::Later, Vec::new())
            }
            GroupState::CompletingRebalance => {
                for m in &mut self.members {
                    m.assignment = assignments
                        .iter()
                        .find(|(id, _)| *id == m.id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_default();
                }
                self.state = GroupState::Stable;
                let mut mine = Bytes::new();
                let mut events = Vec::new();
                for m in &mut self.members {
                    let result = SyncResult {
                        error: 0,
                        protocol_type: protocol_type.clone(),
                        protocol: protocol.clone(),
                        assignment: m.assignment.clone(),
                    };
                    if m.id == member_id {
                        mine = m.assignment.clone();
                    } else if m.awaiting_sync {
                        m.awaiting_sync = false;
                        events.push(Event::Synced(m.id.clone(), result));
                    }
                }
                let reply = SyncResult {
                    error: 0,
                    protocol_type,
                    protocol,
                    assignment: mine,
                };
                (Reply::Now(reply), events)
            }
        }
    }

    /// A Heartbeat: its Kafka error code.
    pub fn heartbeat(&mut self, member_id: &str, generation: i32, now: Instant) -> i16 {
        let (state, current) = (self.state, self.generation);
        let Some(m) = self.member_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        m.last_seen = now;
        if state == GroupState::PreparingRebalance {
            return ResponseError::RebalanceInProgress.code();
        }
        if generation != current {
            return ResponseError::IllegalGeneration.code();
        }
        0
    }

    /// Whether an OffsetCommit of `member_id` at `generation` may store offsets: Ok, or the
    /// Kafka error code. A commit with generation -1 (a consumer that assigns partitions
    /// itself) is allowed while the group has no members.
    pub fn may_commit(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), i16> {
        if generation < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration.code())
            };
        }
        let (state, current) = (self.state, self.generation);
        let Some(m) = self.member_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        m.last_seen = now;
        if generation != current {
            return Err(ResponseError::IllegalGeneration.code());
        }
        match state {
            GroupState::Stable => Ok(()),
            _ => Err(ResponseError::RebalanceInProgress.code()),
        }
    }

    /// A LeaveGroup of `member_id`: its error code, and answers for members waiting.
    pub fn leave(&mut self, member_id: &str, now: Instant) -> (i16, Vec<Event>) {
        let Some(i) = self.members.iter().position(|m| m.id == member_id) else {
            return (ResponseError::UnknownMemberId.code(), Vec::new());
        };
        self.members.remove(i);
        (0, self.after_removal(now))
    }

    /// Applies deadlines: a rebalance that waited long enough completes without who did not
    /// rejoin; a member silent past its session timeout is removed. Ids handed out but never
    /// used are forgotten after the longest session timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        self.pending
            .retain(|(_, at)| now.duration_since(*at) < MAX_SESSION_TIMEOUT);
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| now >= d)
        {
            return self.complete_join(now);
        }
        let before = self.members.len();
        self.members
            .retain(|m| m.awaiting_join || now.duration_since(m.last_seen) < m.session_timeout);
        if self.members.len() == before {
            return Vec::new();
        }
        self.after_removal(now)
    }

    /// After members left or expired: a rebalance for the others, or an empty group.
    fn after_removal(&mut self, now: Instant) -> Vec<Event> {
        if self.members.is_empty() {
            let events = Vec::new();
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol = None;
            self.rebalance_deadline = None;
            self.generation = self.generation.wrapping_add(1);
            return events;
        }
        let mut events = Vec::new();
        if self.state != GroupState::PreparingRebalance {
            events.extend(self.prepare_rebalance(now));
        }
        if self.members.iter().all(|m| m.awaiting_join) {
            events.extend(self.complete_join(now));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(id: &str) -> Join {
        Join {
            member_id: id.to_string(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            requires_known_member_id: false,
        }
    }

    fn joined(events: &[Event], id: &str) -> JoinResult {
        events
            .iter()
            .find_map(|e| match e {
                Event::Joined(m, r) if m == id => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no join answer for {id} in {events:?}"))
    }

    #[test]
    fn one_member_joins_syncs_and_is_stable() {
        let now = Instant::now();
        let mut g = Group::default();
        let (reply, events) = g.join(join(""), now, || "m1".into());
        assert_eq!(reply, Reply::Later);
        let r = joined(&events, "m1");
        assert_eq!(
            (r.generation, r.leader.as_str(), r.members.len()),
            (1, "m1", 1)
        );
        assert_eq!(r.protocol.as_deref(), Some("range"));
        let (reply, _) = g.sync("m1", 1, vec![("m1".into(), Bytes::from_static(b"a"))], now);
        assert!(
            matches!(reply, Reply::Now(SyncResult { error: 0, ref assignment, .. }) if assignment == "a")
        );
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(g.heartbeat("m1", 1, now), 0);
        assert_eq!(g.may_commit("m1", 1, now), Ok(()));
    }

    #[test]
    fn a_second_member_rebalances_the_group_and_followers_wait_for_the_leader() {
        let now = Instant::now();
        let mut g = Group::default();
        g.join(join(""), now, || "m1".into());
        g.sync("m1", 1, vec![], now);
        let (reply, events) = g.join(join(""), now, || "m2".into());
        assert_eq!(reply, Reply::Later);
        assert!(events.is_empty(), "m1 has not rejoined yet");
        assert_eq!(g.heartbeat("m1", 1, now), 27, "REBALANCE_IN_PROGRESS");
        let (_, events) = g.join(join("m1"), now, || unreachable!());
        let leader = joined(&events, "m1");
        let follower = joined(&events, "m2");
        assert_eq!(leader.generation, 2);
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        let (reply, _) = g.sync("m2", 2, vec![], now);
        assert_eq!(reply, Reply::Later);
        let assignments = vec![
            ("m1".into(), Bytes::from_static(b"p0")),
            ("m2".into(), Bytes::from_static(b"p1")),
        ];
        let (reply, events) = g.sync("m1", 2, assignments, now);
        assert!(
            matches!(reply, Reply::Now(SyncResult { ref assignment, .. }) if assignment == "p0")
        );
        assert!(
            matches!(&events[..], [Event::Synced(id, SyncResult { assignment, .. })] if id == "m2" && assignment == "p1")
        );
    }

    #[test]
    fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
        let now = Instant::now();
        let mut g = Group::default();
        g.join(join(""), now, || "m1".into());
        g.sync("m1", 1, vec![], now);
        let mut quick = join("");
        quick.rebalance_timeout = Duration::from_secs(5);
        g.members[0].rebalance_timeout = Duration::from_secs(5);
        g.join(quick, now, || "m2".into());
        // Within m1's session (10 s), but past the rebalance timeout (5 s).
        assert!(g.tick(now + Duration::from_secs(4)).is_empty());
        let events = g.tick(now + Duration::from_secs(6));
        let r = joined(&events, "m2");
        assert_eq!((r.leader.as_str(), r.members.len()), ("m2", 1));
        assert_eq!(g.heartbeat("m1", 2, now), 25, "UNKNOWN_MEMBER_ID");
    }

    #[test]
    fn a_silent_member_expires_and_the_others_rebalance() {
        let now = Instant::now();
        let mut g = Group::default();
        g.join(join(""), now, || "m1".into());
        g.join(join(""), now, || "m2".into());
        g.join(join("m1"), now, || unreachable!());
        g.sync("m1", 2, vec![], now);
        let later = now + Duration::from_secs(5);
        assert_eq!(g.heartbeat("m2", 2, later), 0);
        let events = g.tick(now + Duration::from_secs(11));
        assert!(events.is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance, "m1 expired");
        assert_eq!(g.members().len(), 1);
        assert_eq!(g.heartbeat("m2", 2, later), 27);
    }

    #[test]
    fn v4_members_get_an_id_first_and_unknown_ids_are_refused() {
        let now = Instant::now();
        let mut g = Group::default();
        let mut j = join("");
        j.requires_known_member_id = true;
        let (reply, _) = g.join(j.clone(), now, || "m1".into());
        assert!(
            matches!(reply, Reply::Now(JoinResult { error: 79, ref member_id, .. }) if member_id == "m1")
        );
        j.member_id = "m1".into();
        let (reply, events) = g.join(j.clone(), now, || unreachable!());
        assert_eq!(reply, Reply::Later);
        assert_eq!(joined(&events, "m1").generation, 1);
        j.member_id = "nobody".into();
        let (reply, _) = g.join(j, now, || unreachable!());
        assert!(matches!(reply, Reply::Now(JoinResult { error: 25, .. })));
    }

    #[test]
    fn leaving_empties_the_group_and_standalone_commits_are_then_allowed() {
        let now = Instant::now();
        let mut g = Group::default();
        g.join(join(""), now, || "m1".into());
        assert_eq!(g.may_commit("", -1, now), Err(22));
        assert_eq!(g.leave("m1", now).0, 0);
        assert_eq!(g.state(), GroupState::Empty);
        assert!(g.is_idle());
        assert_eq!(g.may_commit("", -1, now), Ok(()));
        assert_eq!(g.leave("m1", now).0, 25);
    }

    #[test]
    fn members_must_share_an_assignor() {
        let now = Instant::now();
        let mut g = Group::default();
        g.join(join(""), now, || "m1".into());
        let mut other = join("");
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        let (reply, _) = g.join(other, now, || "m2".into());
        assert!(matches!(reply, Reply::Now(JoinResult { error: 23, .. })));
    }
}
