//! Single PRODUCEs of one burst, appended together: a client pipelining small produces gets
//! one append (one `pwrite`) per partition per burst instead of one per message, which is most
//! of what serving a pipelined window costs besides its fsync.
//!
//! A PRODUCE is checked and given its partition when it is served, then staged on its
//! connection; its answer waits in the connection's burst as [`Pending::Staged`] until
//! [`Broker::append_staged`] appends everything staged and gives each its offset. The
//! connection appends what is staged before it serves any other kind of request (so a fetch
//! in the same burst sees the messages before it) and before it hands a burst to its writer.
//! A storage failure of one partition's append fails the requests staged for that partition.

use std::sync::Arc;

use bytes::Bytes;
use stream_log::{PartitionLog, Record};
use stream_proto::{ErrorCode, RequestType, Response};

use super::errors::{fail, Failure};
use super::{now_ms, Broker, ConnState, Pending};

/// Staged bytes after which the connection appends at once rather than at the burst's end:
/// larger messages gain nothing from sharing an append, and the batch stays far below a
/// segment.
pub const STAGE_BYTES: usize = 1 << 20;

/// One staged message.
#[derive(Debug)]
struct StagedProduce {
    log: Arc<PartitionLog>,
    partition: u32,
    key: Bytes,
    value: Bytes,
    priority: u8,
}

impl StagedProduce {
    /// The record to store, stamped with its append's time.
    fn record(&self, timestamp_ms: u64) -> Record<'_> {
        Record {
            timestamp_ms,
            key: &self.key,
            value: &self.value,
            priority: self.priority,
            codec: 0,
        }
    }
}

/// A connection's staged messages, in request order.
#[derive(Debug, Default)]
pub struct StagedProduces {
    entries: Vec<StagedProduce>,
    bytes: usize,
}

impl StagedProduces {
    /// Nothing staged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Enough is staged to append it now.
    pub fn is_full(&self) -> bool {
        self.bytes >= STAGE_BYTES
    }
}

impl Broker {
    /// Serves a PRODUCE up to its append: the topic, the partition and the message's size are
    /// checked now, so a failure is this request's answer alone.
    pub(super) fn stage_produce(
        &self,
        topic: &str,
        key: Bytes,
        value: Bytes,
        priority: u8,
        payload_len: usize,
        conn: &mut ConnState,
    ) -> Result<Pending, Failure> {
        let t = self.topic_for(topic, &mut conn.last_topic)?;
        let log = t
            .partition_for(&key)
            .and_then(|p| Some((p, t.partitions.get(p as usize)?)));
        let Some((partition, log)) = log else {
            return Err((
                ErrorCode::PartitionNotFound,
                format!("topic {topic:?} has no partitions"),
            ));
        };
        let staged = StagedProduce {
            log: log.clone(),
            partition,
            key,
            value,
            priority,
        };
        let len = staged.record(0).checked_len().map_err(fail)?;
        conn.staged.entries.push(staged);
        conn.staged.bytes += len;
        Ok(Pending::Staged { payload_len })
    }

    /// Appends everything staged on `conn`, one append per partition (each partition's
    /// messages in request order), and returns the staged requests' answers in the order they
    /// were staged.
    pub fn append_staged(&self, conn: &mut ConnState) -> Vec<Pending> {
        let staged = std::mem::take(&mut conn.staged.entries);
        conn.staged.bytes = 0;
        let mut answers: Vec<Option<Pending>> = Vec::new();
        answers.resize_with(staged.len(), || None);
        let mut done = vec![false; staged.len()];
        let mut members: Vec<usize> = Vec::with_capacity(staged.len());
        let mut records: Vec<Record<'_>> = Vec::with_capacity(staged.len());
        // One clock reading for the burst, as a BATCH_PRODUCE's messages share one.
        let timestamp_ms = now_ms();
        for first in 0..staged.len() {
            if done[first] {
                continue;
            }
            let log = &staged[first].log;
            members.clear();
            records.clear();
            for (i, s) in staged.iter().enumerate().skip(first) {
                if !done[i] && Arc::ptr_eq(&s.log, log) {
                    done[i] = true;
                    members.push(i);
                    records.push(s.record(timestamp_ms));
                }
            }
            match self.append(log, &records) {
                Ok(appended) => {
                    self.metrics.messages_in.increment(members.len() as u64);
                    for (k, &i) in members.iter().enumerate() {
                        let offset = appended.base_offset + k as u64;
                        let response = Response::Produce {
                            error: ErrorCode::None,
                            message: String::new(),
                            partition: staged[i].partition,
                            offset,
                        };
                        answers[i] = Some(self.durable_one(log, offset, response));
                    }
                }
                Err(e) => {
                    let (code, message) = fail(e);
                    for &i in &members {
                        let response =
                            Response::error(RequestType::Produce.id(), code, message.clone());
                        answers[i] = Some(Pending::Ready(response));
                    }
                }
            }
        }
        drop(records);
        // Every entry belongs to exactly one partition's group, so every answer is set.
        let answers = answers.into_iter().flatten().collect();
        let mut entries = staged;
        entries.clear();
        conn.staged.entries = entries;
        answers
    }
}
