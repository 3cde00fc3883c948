//! [`GroupConsumer`]: a consumer-group member.
//!
//! Heartbeats run on their own connection in a background task, on a timer, so that a slow
//! message handler never makes the member miss its session timeout. The heartbeat answer is
//! how the member learns of a rebalance (`RebalanceInProgress`, or `ConsumerNotFound` after an
//! eviction): the task raises a flag, and the next [`GroupConsumer::poll`] commits what it can,
//! rejoins and repositions on the committed offsets. Delivery is at-least-once: the positions
//! reached by a poll are committed at the start of the next poll (after the caller handled
//! the messages), or by [`GroupConsumer::commit`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stream_proto::{ErrorCode, Message};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::client::{fetch_wait_answer, fetch_wait_request, group_commit_request, StreamClient};
use crate::error::ClientError;

/// Where a member starts on a partition the group has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest message.
    Earliest,
    /// The next message to be written.
    Latest,
}

/// Settings of a [`GroupConsumer`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group id.
    pub group: String,
    /// Topic the group consumes.
    pub topic: String,
    /// How long the server keeps this member without a heartbeat.
    pub session_timeout: Duration,
    /// Time between heartbeats (a third of the session timeout or less).
    pub heartbeat_interval: Duration,
    /// Most messages per partition per fetch.
    pub max_messages: u32,
    /// Most record bytes per partition per fetch.
    pub max_bytes: u32,
    /// How long a poll waits for new data when every partition is caught up.
    pub poll_wait: Duration,
    /// Start position without a committed offset.
    pub start: StartFrom,
    /// Commit the positions of the previous poll at the start of each poll and on close.
    pub auto_commit: bool,
}

impl ConsumerConfig {
    /// Defaults: 10 s session, 1 s heartbeats, 100 ms poll wait, earliest, auto-commit.
    pub fn new(group: &str, topic: &str) -> ConsumerConfig {
        ConsumerConfig {
            group: group.to_string(),
            topic: topic.to_string(),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            max_messages: 1000,
            max_bytes: 1 << 20,
            poll_wait: Duration::from_millis(100),
            start: StartFrom::Earliest,
            auto_commit: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Member {
    consumer_id: String,
    generation: u32,
}

/// A member of a consumer group over one topic. Call [`GroupConsumer::poll`] in a loop.
pub struct GroupConsumer {
    addr: String,
    client: StreamClient,
    /// Set after a connection failure: the next poll reconnects and rejoins.
    reconnect: bool,
    config: ConsumerConfig,
    member: watch::Sender<Member>,
    rebalance: Arc<AtomicBool>,
    wake: Arc<Notify>,
    heartbeat: JoinHandle<()>,
    partitions: Vec<u32>,
    positions: BTreeMap<u32, u64>,
    committed: BTreeMap<u32, u64>,
    turn: usize,
    rebalances: u64,
}

impl GroupConsumer {
    /// Connects to `addr`, joins the group and positions on the committed offsets.
    pub async fn join(addr: &str, config: ConsumerConfig) -> Result<GroupConsumer, ClientError> {
        let client = StreamClient::connect(addr).await?;
        let (member, member_rx) = watch::channel(Member::default());
        let rebalance = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let heartbeat = tokio::spawn(heartbeat_loop(
            addr.to_string(),
            config.group.clone(),
            config.heartbeat_interval,
            member_rx,
            rebalance.clone(),
            wake.clone(),
        ));
        let mut c = GroupConsumer {
            addr: addr.to_string(),
            client,
            reconnect: false,
            config,
            member,
            rebalance,
            wake,
            heartbeat,
            partitions: Vec::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            turn: 0,
            rebalances: 0,
        };
        c.rejoin().await?;
        c.rebalances = 0;
        Ok(c)
    }

    /// This member's id.
    pub fn consumer_id(&self) -> String {
        self.member.borrow().consumer_id.clone()
    }

    /// The generation of the current assignment.
    pub fn generation(&self) -> u32 {
        self.member.borrow().generation
    }

    /// Partitions currently owned.
    pub fn assignment(&self) -> &[u32] {
        &self.partitions
    }

    /// Next offset to consume, per owned partition.
    pub fn positions(&self) -> &BTreeMap<u32, u64> {
        &self.positions
    }

    /// Moves the position of an owned partition (the next poll fetches from `offset`; the
    /// next commit commits it). Ignored for partitions not owned.
    pub fn seek(&mut self, partition: u32, offset: u64) {
        if let Some(pos) = self.positions.get_mut(&partition) {
            *pos = offset;
        }
    }

    /// How many times this member rejoined after a rebalance.
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// The settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Joins again (with our member id; as a new member after an eviction) and repositions
    /// every owned partition on its committed offset.
    async fn rejoin(&mut self) -> Result<(), ClientError> {
        self.rebalance.store(false, Ordering::SeqCst);
        let id = self.consumer_id();
        let (group, topic) = (self.config.group.clone(), self.config.topic.clone());
        let session = Some(self.config.session_timeout);
        let a = match self
            .client
            .join_group_v2(&group, &topic, &id, session)
            .await
        {
            Err(e) if !id.is_empty() && e.code() == Some(ErrorCode::ConsumerNotFound) => {
                self.client
                    .join_group_v2(&group, &topic, "", session)
                    .await?
            }
            r => r?,
        };
        self.member.send_replace(Member {
            consumer_id: a.consumer_id,
            generation: a.generation,
        });
        let mut partitions = a.partitions;
        partitions.sort_unstable();
        let previous = std::mem::take(&mut self.positions);
        self.committed.clear();
        for &p in &partitions {
            let committed = self.client.fetch_offset(&group, &topic, p).await?;
            if let Some(o) = committed {
                self.committed.insert(p, o);
            }
            // A partition kept across the rebalance: our own progress may be ahead of the last
            // commit (a stale generation's commit is refused); the messages up to it were
            // handled, so resume there (the next commit records it).
            let pos = match (committed, previous.get(&p)) {
                (Some(c), Some(&mine)) => c.max(mine),
                (Some(c), None) => c,
                (None, Some(&mine)) => mine,
                (None, None) => self.reset_position(p).await?,
            };
            self.positions.insert(p, pos);
        }
        self.partitions = partitions;
        self.rebalances += 1;
        Ok(())
    }

    /// Where to start on a partition without a usable committed offset.
    async fn reset_position(&mut self, p: u32) -> Result<u64, ClientError> {
        let (start, hw) = self.client.partition_offsets(&self.config.topic, p).await?;
        Ok(match self.config.start {
            StartFrom::Earliest => start,
            StartFrom::Latest => hw,
        })
    }

    /// Commits the position of every owned partition that moved since the last commit.
    /// A stale member gets `IllegalGeneration`/`RebalanceInProgress` and will rejoin on the
    /// next poll.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let r = self.commit_inner().await;
        self.note_failure(r)
    }

    /// Marks the connection for replacement after an I/O or protocol failure.
    fn note_failure<T>(&mut self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        if matches!(r, Err(ClientError::Io(_) | ClientError::Protocol(_))) {
            self.reconnect = true;
        }
        r
    }

    async fn commit_inner(&mut self) -> Result<(), ClientError> {
        let m = self.member.borrow().clone();
        let todo: Vec<(u32, u64)> = self
            .positions
            .iter()
            .filter(|(p, pos)| self.committed.get(p) != Some(pos))
            .map(|(p, pos)| (*p, *pos))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let reqs: Vec<_> = todo
            .iter()
            .map(|&(p, pos)| {
                group_commit_request(
                    &self.config.group,
                    &m.consumer_id,
                    m.generation,
                    &self.config.topic,
                    p,
                    pos,
                )
            })
            .collect();
        let answers = self.client.pipeline(&reqs).await?;
        let mut first_err = None;
        for ((p, pos), resp) in todo.into_iter().zip(answers) {
            let code = resp.error_code();
            if code.is_ok() {
                self.committed.insert(p, pos);
            } else {
                let e = ClientError::server(code, format!("commit of partition {p} at {pos}"));
                if e.needs_rejoin() {
                    self.rebalance.store(true, Ordering::SeqCst);
                }
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Commits, tolerating refusals that only mean "this member is stale".
    async fn commit_quietly(&mut self) -> Result<(), ClientError> {
        match self.commit_inner().await {
            Err(e) if e.needs_rejoin() => Ok(()),
            r => r,
        }
    }

    /// The next messages of the owned partitions (possibly none after `poll_wait`).
    ///
    /// Commits the previous poll's positions first (with `auto_commit`), and handles a
    /// pending rebalance by rejoining. After a connection failure (returned once as an `Io`
    /// error) the next poll reconnects and rejoins, resuming from the committed offsets or
    /// its own positions, whichever is further.
    pub async fn poll(&mut self) -> Result<Vec<Message>, ClientError> {
        if self.reconnect {
            self.client = StreamClient::connect(&self.addr).await?;
            self.reconnect = false;
            let r = self.rejoin().await;
            self.note_failure(r)?;
        }
        let r = self.poll_inner().await;
        self.note_failure(r)
    }

    async fn poll_inner(&mut self) -> Result<Vec<Message>, ClientError> {
        if self.config.auto_commit {
            self.commit_quietly().await?;
        }
        if self.rebalance.load(Ordering::SeqCst) {
            self.commit_quietly().await?;
            if let Err(e) = self.rejoin().await {
                // Still stale: try again on the next poll.
                self.rebalance.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        if self.partitions.is_empty() {
            // More members than partitions: idle until the heartbeat reports a rebalance.
            let _ = tokio::time::timeout(self.config.poll_wait, self.wake.notified()).await;
            return Ok(Vec::new());
        }
        // One pipelined round of non-waiting fetches over every owned partition ...
        let reqs: Vec<_> = self
            .partitions
            .iter()
            .map(|&p| self.fetch_request(p, Duration::ZERO))
            .collect();
        let answers = self.client.pipeline(&reqs).await?;
        let mut out = Vec::new();
        let mut first_err = None;
        let mut out_of_range = Vec::new();
        for (&p, resp) in self.partitions.clone().iter().zip(answers) {
            match fetch_wait_answer(resp) {
                Ok(f) => self.take(p, f.messages, &mut out),
                Err(e) if e.code() == Some(ErrorCode::InvalidOffset) => out_of_range.push(p),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // Below the log start (retention) or past the end (topic recreated): start over per
        // the configured policy.
        for p in out_of_range {
            let pos = self.reset_position(p).await?;
            tracing::warn!(
                partition = p,
                position = pos,
                "position out of range; reset"
            );
            self.positions.insert(p, pos);
        }
        // ... and when all are caught up, a long poll on one of them (rotating).
        if out.is_empty() {
            let p = self.partitions[self.turn % self.partitions.len()];
            self.turn = self.turn.wrapping_add(1);
            let req = self.fetch_request(p, self.config.poll_wait);
            self.client.send(&req)?;
            match fetch_wait_answer(self.recv_long().await?) {
                Ok(f) => self.take(p, f.messages, &mut out),
                Err(e) if e.code() == Some(ErrorCode::InvalidOffset) => {
                    let pos = self.reset_position(p).await?;
                    self.positions.insert(p, pos);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn recv_long(&mut self) -> Result<stream_proto::Response, ClientError> {
        // The answer may take poll_wait on top of the usual round trip.
        self.client.recv_with_extra(self.config.poll_wait).await
    }

    fn fetch_request(&self, p: u32, wait: Duration) -> stream_proto::Request {
        let pos = self.positions.get(&p).copied().unwrap_or(0);
        fetch_wait_request(
            &self.config.topic,
            p,
            pos,
            self.config.max_messages,
            self.config.max_bytes,
            wait,
        )
    }

    fn take(&mut self, p: u32, messages: Vec<Message>, out: &mut Vec<Message>) {
        if let Some(last) = messages.last() {
            self.positions.insert(p, last.offset + 1);
        }
        out.extend(messages);
    }

    /// Commits (with `auto_commit`) and leaves the group, so the others take over at once.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.heartbeat.abort();
        if self.config.auto_commit {
            self.commit_quietly().await?;
        }
        let id = self.consumer_id();
        match self.client.leave_group(&self.config.group, &id).await {
            Err(e) if e.needs_rejoin() || e.code() == Some(ErrorCode::GroupNotFound) => Ok(()),
            r => r,
        }
    }

    /// Stops without committing or leaving, as a crashed process would: the server evicts
    /// the member after its session timeout.
    pub fn abort(self) {
        self.heartbeat.abort();
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Sends group heartbeats every `every` on its own connection; raises `rebalance` when the
/// answer says the member must rejoin.
async fn heartbeat_loop(
    addr: String,
    group: String,
    every: Duration,
    member: watch::Receiver<Member>,
    rebalance: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut client: Option<StreamClient> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let m = member.borrow().clone();
        if m.consumer_id.is_empty() {
            continue;
        }
        if client.is_none() {
            match StreamClient::connect(&addr).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "heartbeat connection failed");
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        match c
            .group_heartbeat(&group, &m.consumer_id, m.generation)
            .await
        {
            Ok(()) => {}
            // An answer about an assignment we already replaced says nothing about the new one.
            Err(e) if e.needs_rejoin() && *member.borrow() == m => {
                rebalance.store(true, Ordering::SeqCst);
                wake.notify_one();
            }
            Err(ClientError::Server { .. }) => {}
            Err(e) => {
                tracing::warn!(%addr, error = %e, "heartbeat failed; reconnecting");
                client = None;
            }
        }
    }
}
