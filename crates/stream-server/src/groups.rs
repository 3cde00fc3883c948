//! Consumer-group coordinator: membership, generations, session-timeout eviction and range
//! assignment, like Kafka's (eager rebalance).
//!
//! Every membership change (join of a new member, leave, eviction) bumps the generation and
//! recomputes the target assignment at once. Members learn of it from their next heartbeat
//! (REBALANCE_IN_PROGRESS) and rejoin with their member id to take their new assignment
//! without bumping the generation again. Commits carry the member's generation. Until a
//! member rejoins it may still commit the partitions it was given, as long as no member of
//! the new generation has taken them over (so a revoked member can save its last progress,
//! like Kafka's commit-before-revoke); a commit for a partition that has moved on to a newer
//! owner, or with a generation that is not the member's own, is refused. Members that joined through the original JOIN_GROUP (no member id on the wire
//! afterwards) are kept alive by any traffic on their connection and leave when it closes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stream_proto::ErrorCode;

/// Bounds of a requested session timeout.
pub const MIN_SESSION: Duration = Duration::from_millis(100);
/// Upper bound of a requested session timeout.
pub const MAX_SESSION: Duration = Duration::from_secs(300);

/// A refused group operation: the code and a message for the client.
pub type GroupError = (ErrorCode, String);

/// Result of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Member id.
    pub consumer_id: String,
    /// Current generation.
    pub generation: u32,
    /// Partitions assigned to this member.
    pub partitions: Vec<u32>,
}

/// One group's state, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// Group id.
    pub group: String,
    /// Topic consumed.
    pub topic: String,
    /// Generation.
    pub generation: u32,
    /// Member ids with their partitions.
    pub members: Vec<(String, Vec<u32>)>,
}

#[derive(Debug)]
struct Member {
    session: Duration,
    last_seen: Instant,
    /// Partitions of the current generation's assignment (recomputed on rebalance).
    target: Vec<u32>,
    /// Partitions handed to the member when it last joined, at `generation`.
    owned: Vec<u32>,
    /// The generation the member last joined at.
    generation: u32,
    /// Connection of a member that joined with the original JOIN_GROUP.
    legacy_conn: Option<u64>,
}

#[derive(Debug)]
struct Group {
    topic: String,
    partitions: u32,
    generation: u32,
    members: BTreeMap<String, Member>,
}

impl Group {
    /// Bumps the generation and hands out contiguous ranges to members in id order, the first
    /// `partitions % members` getting one extra (Kafka's range assignor).
    fn rebalance(&mut self) {
        self.generation = self.generation.wrapping_add(1).max(1);
        let n = self.members.len() as u32;
        if n == 0 {
            return;
        }
        let (base, extra) = (self.partitions / n, self.partitions % n);
        let mut next = 0u32;
        for (i, m) in self.members.values_mut().enumerate() {
            let count = base + u32::from((i as u32) < extra);
            m.target = (next..next + count).collect();
            next += count;
        }
    }
}

/// All consumer groups of the broker (in memory; committed offsets are in the OffsetStore).
#[derive(Debug)]
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
    default_session: Duration,
    /// Distinguishes member ids across restarts (groups are not persisted).
    epoch: u64,
}

impl Coordinator {
    /// A coordinator whose members get `default_session` unless they ask for another.
    pub fn new(default_session: Duration) -> Coordinator {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Coordinator {
            groups: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
            default_session: default_session.clamp(MIN_SESSION, MAX_SESSION),
            epoch,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        // A panic while holding the lock cannot leave a group half-updated in a way that
        // matters more than losing the broker: keep serving with the data as it is.
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `group` (consuming `topic`, which has `partitions` partitions). `consumer_id`
    /// empty = a new member; otherwise a rejoin, refused with CONSUMER_NOT_FOUND when that
    /// member is unknown (evicted): the client then joins as new.
    // The arguments are the join request's fields; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &self,
        group: &str,
        topic: &str,
        partitions: u32,
        consumer_id: &str,
        session: Option<Duration>,
        legacy_conn: Option<u64>,
        now: Instant,
    ) -> Result<Joined, GroupError> {
        if group.is_empty() {
            return Err((ErrorCode::InvalidRequest, "group_id is empty".into()));
        }
        let session = session
            .unwrap_or(self.default_session)
            .clamp(MIN_SESSION, MAX_SESSION);
        let mut groups = self.lock();
        let g = groups.entry(group.to_string()).or_insert_with(|| Group {
            topic: topic.to_string(),
            partitions,
            generation: 0,
            members: BTreeMap::new(),
        });
        if g.topic != topic {
            if g.members.is_empty() {
                g.topic = topic.to_string();
            } else {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!(
                        "group {group:?} consumes topic {:?}, not {topic:?}",
                        g.topic
                    ),
                ));
            }
        }
        let partitions_changed = g.partitions != partitions;
        g.partitions = partitions;
        // An original-protocol client has no way to say who it is when it joins again: one
        // legacy member per (connection, group), so repeated JOIN_GROUPs do not pile up.
        let legacy_existing = legacy_conn.and_then(|c| {
            g.members
                .iter()
                .find(|(_, m)| m.legacy_conn == Some(c))
                .map(|(id, _)| id.clone())
        });
        let consumer_id = match (&legacy_existing, consumer_id.is_empty()) {
            (Some(id), true) => id.as_str(),
            _ => consumer_id,
        };
        let id = if consumer_id.is_empty() {
            let n = self.next_member.fetch_add(1, Ordering::Relaxed);
            let id = format!("{group}-{:x}-{n:06}", self.epoch);
            g.members.insert(
                id.clone(),
                Member {
                    session,
                    last_seen: now,
                    target: Vec::new(),
                    owned: Vec::new(),
                    generation: 0,
                    legacy_conn,
                },
            );
            g.rebalance();
            id
        } else {
            let Some(m) = g.members.get_mut(consumer_id) else {
                return Err((
                    ErrorCode::ConsumerNotFound,
                    format!("member {consumer_id:?} is not in group {group:?} (evicted?): join with an empty consumer_id"),
                ));
            };
            m.last_seen = now;
            m.session = session;
            if partitions_changed {
                g.rebalance();
            }
            consumer_id.to_string()
        };
        let generation = g.generation;
        let partitions = match g.members.get_mut(&id) {
            Some(m) => {
                m.owned = m.target.clone();
                m.generation = generation;
                m.owned.clone()
            }
            None => Vec::new(),
        };
        Ok(Joined {
            consumer_id: id,
            generation: g.generation,
            partitions,
        })
    }

    fn member<'a>(
        groups: &'a mut HashMap<String, Group>,
        group: &str,
        consumer_id: &str,
    ) -> Result<(&'a mut Member, u32), GroupError> {
        let g = groups.get_mut(group).ok_or_else(|| {
            (
                ErrorCode::GroupNotFound,
                format!("group {group:?} not found"),
            )
        })?;
        let generation = g.generation;
        let m = g.members.get_mut(consumer_id).ok_or_else(|| {
            (
                ErrorCode::ConsumerNotFound,
                format!("member {consumer_id:?} is not in group {group:?} (evicted?): rejoin"),
            )
        })?;
        Ok((m, generation))
    }

    /// A member's heartbeat: keeps it alive; REBALANCE_IN_PROGRESS when its generation is
    /// not the current one (it must rejoin).
    pub fn heartbeat(
        &self,
        group: &str,
        consumer_id: &str,
        generation: u32,
        now: Instant,
    ) -> Result<(), GroupError> {
        let mut groups = self.lock();
        let (m, current) = Self::member(&mut groups, group, consumer_id)?;
        m.last_seen = now;
        if generation != current {
            return Err((
                ErrorCode::RebalanceInProgress,
                format!(
                    "group {group:?} is at generation {current} (you have {generation}): rejoin"
                ),
            ));
        }
        Ok(())
    }

    /// Removes a member (rebalancing the rest).
    pub fn leave(&self, group: &str, consumer_id: &str) -> Result<(), GroupError> {
        let mut groups = self.lock();
        Self::member(&mut groups, group, consumer_id)?;
        if let Some(g) = groups.get_mut(group) {
            g.members.remove(consumer_id);
            g.rebalance();
        }
        Ok(())
    }

    /// Checks that a member of `generation` may commit `topic`/`partition`: it must exist, be
    /// of the current generation and own the partition. Also counts as a heartbeat.
    pub fn check_commit(
        &self,
        group: &str,
        consumer_id: &str,
        generation: u32,
        topic: &str,
        partition: u32,
        now: Instant,
    ) -> Result<(), GroupError> {
        let mut groups = self.lock();
        let group_topic = groups.get(group).map(|g| g.topic.clone());
        let (m, current) = Self::member(&mut groups, group, consumer_id)?;
        m.last_seen = now;
        if generation != m.generation {
            return Err((
                ErrorCode::IllegalGeneration,
                format!(
                    "commit refused: generation {generation} is not the member's ({}; group is at {current})",
                    m.generation
                ),
            ));
        }
        if group_topic.as_deref() != Some(topic) {
            return Err((
                ErrorCode::InvalidRequest,
                format!("group {group:?} does not consume topic {topic:?}"),
            ));
        }
        if !m.owned.contains(&partition) {
            return Err((
                ErrorCode::IllegalGeneration,
                format!("commit refused: partition {partition} is not assigned to {consumer_id:?}"),
            ));
        }
        let member_generation = m.generation;
        if member_generation != current {
            // A member that has not rejoined yet: fine unless a member of the current
            // generation already took the partition over.
            let g = groups.get(group);
            let taken = g.and_then(|g| {
                g.members
                    .iter()
                    .find(|(id, o)| {
                        id.as_str() != consumer_id
                            && o.generation == current
                            && o.owned.contains(&partition)
                    })
                    .map(|(id, _)| id.clone())
            });
            if let Some(owner) = taken {
                return Err((
                    ErrorCode::IllegalGeneration,
                    format!("commit refused: partition {partition} now belongs to {owner:?} (generation {current}): rejoin"),
                ));
            }
        }
        Ok(())
    }

    /// Any traffic on a connection keeps its legacy (original JOIN_GROUP) members alive.
    pub fn touch_connection(&self, conn: u64, now: Instant) {
        let mut groups = self.lock();
        for g in groups.values_mut() {
            for m in g.members.values_mut() {
                if m.legacy_conn == Some(conn) {
                    m.last_seen = now;
                }
            }
        }
    }

    /// A connection closed: its legacy members leave.
    pub fn connection_closed(&self, conn: u64) {
        let mut groups = self.lock();
        for g in groups.values_mut() {
            let before = g.members.len();
            g.members.retain(|_, m| m.legacy_conn != Some(conn));
            if g.members.len() != before {
                g.rebalance();
            }
        }
    }

    /// Evicts members whose session expired; returns `(group, member)` of each.
    pub fn evict_expired(&self, now: Instant) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut groups = self.lock();
        for (name, g) in groups.iter_mut() {
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| now.saturating_duration_since(m.last_seen) > m.session)
                .map(|(id, _)| id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in expired {
                g.members.remove(&id);
                out.push((name.clone(), id));
            }
            g.rebalance();
        }
        out
    }

    /// A topic grew to `partitions` partitions: every group consuming it rebalances at once,
    /// so its members learn of the new partitions from their next heartbeat instead of only
    /// when one of them happens to join again.
    pub fn topic_grown(&self, topic: &str, partitions: u32) {
        for g in self.lock().values_mut() {
            if g.topic == topic && g.partitions != partitions {
                g.partitions = partitions;
                g.rebalance();
            }
        }
    }

    /// Removes every group consuming a deleted topic.
    pub fn topic_deleted(&self, topic: &str) {
        self.lock().retain(|_, g| g.topic != topic);
    }

    /// State of every group, sorted by name.
    pub fn summaries(&self) -> Vec<GroupSummary> {
        let groups = self.lock();
        let mut v: Vec<GroupSummary> = groups
            .iter()
            .map(|(name, g)| GroupSummary {
                group: name.clone(),
                topic: g.topic.clone(),
                generation: g.generation,
                members: g
                    .members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.target.clone()))
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| a.group.cmp(&b.group));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord() -> Coordinator {
        Coordinator::new(Duration::from_secs(1))
    }

    #[test]
    fn a_grown_topic_rebalances_its_groups() {
        let c = coord();
        let t0 = Instant::now();
        let a = c.join("g", "t", 1, "", None, None, t0).unwrap();
        let other = c.join("h", "u", 1, "", None, None, t0).unwrap();
        assert_eq!(a.partitions, vec![0]);
        c.topic_grown("t", 3);
        assert_eq!(
            c.heartbeat("g", &a.consumer_id, a.generation, t0)
                .unwrap_err()
                .0,
            ErrorCode::RebalanceInProgress
        );
        let a2 = c.join("g", "t", 3, &a.consumer_id, None, None, t0).unwrap();
        assert_eq!(a2.partitions, vec![0, 1, 2]);
        assert_eq!(a2.generation, a.generation + 1, "one rebalance, not two");
        // A group of another topic is left alone.
        c.heartbeat("h", &other.consumer_id, other.generation, t0)
            .unwrap();
    }

    #[test]
    fn two_members_split_and_rebalance_on_eviction() {
        let c = coord();
        let t0 = Instant::now();
        let a = c.join("g", "t", 4, "", None, None, t0).unwrap();
        assert_eq!(a.partitions, vec![0, 1, 2, 3]);
        assert_eq!(a.generation, 1);
        let b = c.join("g", "t", 4, "", None, None, t0).unwrap();
        assert_eq!(b.generation, 2);
        // a learns of the rebalance from its heartbeat, rejoins, and the two split 2/2.
        assert_eq!(
            c.heartbeat("g", &a.consumer_id, 1, t0).unwrap_err().0,
            ErrorCode::RebalanceInProgress
        );
        let a2 = c.join("g", "t", 4, &a.consumer_id, None, None, t0).unwrap();
        assert_eq!(a2.generation, 2);
        let mut all = [a2.partitions.clone(), b.partitions.clone()].concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3]);
        assert_eq!(a2.partitions.len(), 2);
        // a's old-generation commit (after its rejoin) is refused, its current one accepted.
        assert_eq!(
            c.check_commit("g", &a.consumer_id, 1, "t", a2.partitions[0], t0)
                .unwrap_err()
                .0,
            ErrorCode::IllegalGeneration
        );
        c.check_commit("g", &a.consumer_id, 2, "t", a2.partitions[0], t0)
            .unwrap();
        assert_eq!(
            c.check_commit("g", &a.consumer_id, 2, "t", b.partitions[0], t0)
                .unwrap_err()
                .0,
            ErrorCode::IllegalGeneration
        );
        // b stops heartbeating; a keeps going; after the session b is evicted.
        let t1 = t0 + Duration::from_millis(800);
        c.heartbeat("g", &a.consumer_id, 2, t1).unwrap();
        let t2 = t0 + Duration::from_millis(1500);
        let evicted = c.evict_expired(t2);
        assert_eq!(evicted, vec![("g".to_string(), b.consumer_id.clone())]);
        let a3 = c.join("g", "t", 4, &a.consumer_id, None, None, t2).unwrap();
        assert_eq!(a3.partitions, vec![0, 1, 2, 3]);
        assert_eq!(a3.generation, 3);
        assert_eq!(
            c.heartbeat("g", &b.consumer_id, 2, t2).unwrap_err().0,
            ErrorCode::ConsumerNotFound
        );
        assert_eq!(
            c.join("g", "t", 4, &b.consumer_id, None, None, t2)
                .unwrap_err()
                .0,
            ErrorCode::ConsumerNotFound
        );
    }

    #[test]
    fn revoked_member_may_commit_until_the_new_owner_joins() {
        let c = coord();
        let t = Instant::now();
        let a = c.join("g", "t", 2, "", None, None, t).unwrap();
        assert_eq!(a.partitions, vec![0, 1]);
        let b = c.join("g", "t", 2, "", None, None, t).unwrap();
        assert_eq!(b.partitions, vec![1]);
        // b took partition 1 at generation 2; a (still at 1) may commit 0 but not 1 any more.
        c.check_commit("g", &a.consumer_id, 1, "t", 0, t).unwrap();
        assert_eq!(
            c.check_commit("g", &a.consumer_id, 1, "t", 1, t)
                .unwrap_err()
                .0,
            ErrorCode::IllegalGeneration
        );
        c.check_commit("g", &b.consumer_id, 2, "t", 1, t).unwrap();
        // Once a rejoins at generation 2 (owning 0), its generation-1 commits are refused.
        let a2 = c.join("g", "t", 2, &a.consumer_id, None, None, t).unwrap();
        assert_eq!(a2.partitions, vec![0]);
        assert_eq!(
            c.check_commit("g", &a.consumer_id, 1, "t", 0, t)
                .unwrap_err()
                .0,
            ErrorCode::IllegalGeneration
        );
        c.check_commit("g", &a.consumer_id, 2, "t", 0, t).unwrap();
    }

    #[test]
    fn range_assignment_gives_extras_to_first_members() {
        let c = coord();
        let t = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|_| c.join("g", "t", 7, "", None, None, t).unwrap().consumer_id)
            .collect();
        let s = &c.summaries()[0];
        let sizes: Vec<usize> = s.members.iter().map(|(_, p)| p.len()).collect();
        assert_eq!(sizes, vec![3, 2, 2]);
        assert_eq!(s.members.len(), ids.len());
        let flat: Vec<u32> = s.members.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(flat, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn legacy_members_follow_their_connection() {
        let c = coord();
        let t = Instant::now();
        let a = c.join("g", "t", 2, "", None, Some(7), t).unwrap();
        c.touch_connection(7, t + Duration::from_millis(900));
        assert!(c.evict_expired(t + Duration::from_millis(1500)).is_empty());
        // Joining again on the same connection keeps the one member.
        let again = c.join("g", "t", 2, "", None, Some(7), t).unwrap();
        assert_eq!(again.consumer_id, a.consumer_id);
        assert_eq!(c.summaries()[0].members.len(), 1);
        c.connection_closed(7);
        assert!(c.summaries()[0].members.is_empty());
        assert_eq!(
            c.leave("g", &a.consumer_id).unwrap_err().0,
            ErrorCode::ConsumerNotFound
        );
        assert_eq!(c.leave("x", "y").unwrap_err().0, ErrorCode::GroupNotFound);
    }

    #[test]
    fn wrong_topic_is_refused() {
        let c = coord();
        let t = Instant::now();
        c.join("g", "t", 2, "", None, None, t).unwrap();
        assert_eq!(
            c.join("g", "u", 2, "", None, None, t).unwrap_err().0,
            ErrorCode::InvalidRequest
        );
    }
}
