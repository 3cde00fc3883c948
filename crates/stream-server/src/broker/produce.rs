//! BATCH_PRODUCE and the append every produce goes through: partition choice, appends, and
//! answers that wait for the group-commit fsync (single PRODUCEs are staged first, see
//! `staged.rs`).

use std::mem::size_of;
use std::time::{SystemTime, UNIX_EPOCH};

use stream_log::{Appended, Durability, LogError, PartitionLog, Record, FRAME_FIXED_BYTES};
use stream_proto::{BatchRecord, BatchView, ErrorCode, ProducedOffset, Response, PARTITION_ANY};

use super::errors::{fail, Failure};
use super::topics::no_partition;
use super::{Broker, Pending, MAX_BATCH_RECORDS};

/// Bytes a BATCH_PRODUCE answer carries per message (`u32 partition, u64 offset`).
const ANSWER_BYTES_PER_RECORD: usize = 12;

/// Memory the server allocates per BATCH_PRODUCE message beyond its key and value while
/// appending and answering it: its place in the batch handed to storage, its partition, its
/// stored frame's fixed part, its answer entry and the answer's bytes.
pub const BATCH_RECORD_OVERHEAD: usize = size_of::<Record<'static>>()
    + size_of::<u32>()
    + FRAME_FIXED_BYTES
    + size_of::<ProducedOffset>()
    + ANSWER_BYTES_PER_RECORD;

/// Wall-clock milliseconds: the timestamp stored with a produced message.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The BATCH_PRODUCE count limit, checked from the payload's first bytes (before the rest is
/// read) and again when the batch is served.
pub fn check_batch_count(count: u64) -> Result<(), Failure> {
    if count > MAX_BATCH_RECORDS as u64 {
        // The answer (12 bytes per message) must fit a 16 MiB frame.
        return Err((
            ErrorCode::RequestTooLarge,
            format!("{count} messages in one batch; at most {MAX_BATCH_RECORDS}"),
        ));
    }
    Ok(())
}

/// The record to append for a batch's message.
fn record(r: BatchRecord<'_>, timestamp_ms: u64) -> Record<'_> {
    Record {
        timestamp_ms,
        key: r.key,
        value: r.value,
        priority: r.priority,
        codec: 0,
    }
}

impl Broker {
    /// Appends `records` to `log`, off the async workers under every-write.
    pub(crate) fn append(
        &self,
        log: &PartitionLog,
        records: &[Record<'_>],
    ) -> Result<Appended, LogError> {
        if self.durability == Durability::EveryWrite {
            // Under every-write the append itself fsyncs: keep it off the async workers' backs.
            tokio::task::block_in_place(|| log.append(records))
        } else {
            log.append(records)
        }
    }

    pub(super) fn batch_produce(&self, batch: &BatchView<'_>) -> Result<Pending, Failure> {
        check_batch_count(batch.count as u64)?;
        let topic = batch.topic;
        let t = self.topic(topic)?;
        let n = t.partitions.len();
        if n == 0 {
            return Err((
                ErrorCode::PartitionNotFound,
                format!("topic {topic:?} has no partitions"),
            ));
        }
        let ts = now_ms();
        let mut waits = Vec::new();
        let offsets = if batch.count == 0 {
            Vec::new()
        } else if batch.partition != PARTITION_ANY {
            let partition = batch.partition;
            let log = t
                .partitions
                .get(partition as usize)
                .ok_or_else(|| no_partition(topic, n, partition))?;
            let recs: Vec<Record<'_>> = batch.records().map(|r| record(r, ts)).collect();
            let a = self.append(log, &recs).map_err(fail)?;
            // The batch handed to storage goes before the answer is built: they are the two
            // largest allocations of a batch of small messages.
            drop(recs);
            waits.push((log.clone(), a.last_offset));
            (0..batch.count as u64)
                .map(|i| ProducedOffset {
                    partition,
                    offset: a.base_offset + i,
                })
                .collect()
        } else {
            // Partition every message, sort the batch by partition (stable: a partition's
            // messages keep their order), one append per partition, answer in request order.
            let parts: Vec<u32> = batch
                .records()
                .map(|r| t.partition_for(r.key).unwrap_or(0))
                .collect();
            let mut start = vec![0usize; n + 1];
            for &p in &parts {
                start[p as usize + 1] += 1;
            }
            for p in 0..n {
                start[p + 1] += start[p];
            }
            let mut sorted = vec![
                Record {
                    timestamp_ms: ts,
                    key: &[],
                    value: &[],
                    priority: 0,
                    codec: 0,
                };
                batch.count
            ];
            let mut next = start.clone();
            for (r, &p) in batch.records().zip(&parts) {
                sorted[next[p as usize]] = record(r, ts);
                next[p as usize] += 1;
            }
            let mut base = vec![0u64; n];
            for p in 0..n {
                let recs = &sorted[start[p]..start[p + 1]];
                if recs.is_empty() {
                    continue;
                }
                let log = &t.partitions[p];
                let a = self.append(log, recs).map_err(|e| {
                    let (code, msg) = fail(e);
                    let done = waits.len();
                    (
                        code,
                        format!("{msg} (messages for {done} other partitions were appended)"),
                    )
                })?;
                base[p] = a.base_offset;
                waits.push((log.clone(), a.last_offset));
            }
            drop(sorted);
            parts
                .iter()
                .map(|&p| {
                    let offset = base[p as usize];
                    base[p as usize] += 1;
                    ProducedOffset {
                        partition: p,
                        offset,
                    }
                })
                .collect()
        };
        self.metrics.messages_in.increment(batch.count as u64);
        let response = Response::BatchProduce {
            error: ErrorCode::None,
            message: String::new(),
            offsets,
        };
        Ok(self.durable(waits, response))
    }
}
