//! Idempotent producers (KIP-98, without transactions): InitProducerId hands out producer
//! ids, and every batch of a producer id carries a sequence number per partition, so that a
//! retried batch the log already holds is answered with its first offset instead of being
//! stored twice, and one that skips ahead is refused.
//!
//! [`SequenceState`] is the rule, with no I/O: [`SequenceState::check`] says what to do with
//! a batch, [`SequenceState::appended`] records one that was stored. [`ProducerRegistry`]
//! holds one state per (producer id, topic, partition), bounded, in memory: after a restart
//! of the server a producer's next batch is taken as it comes (see docs/kafka.md).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;

/// Batches remembered per partition for answering retries (Kafka remembers five, the most a
/// producer has in flight with idempotence on).
pub const REMEMBERED_BATCHES: usize = 5;
/// Most (producer, partition) states kept; past it the least recently used one is dropped.
pub const MAX_PRODUCER_STATES: usize = 100_000;

/// The idempotence fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSeq {
    /// `-1` for a producer without idempotence.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Sequence number of the batch's first record.
    pub base_sequence: i32,
    /// Records in the batch.
    pub count: i32,
}

impl BatchSeq {
    /// Sequence number of the batch's last record (sequences wrap from `i32::MAX` to 0).
    fn last_sequence(&self) -> i32 {
        add_sequence(self.base_sequence, self.count - 1)
    }
}

fn add_sequence(seq: i32, n: i32) -> i32 {
    ((i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it.
    Append,
    /// Already stored, starting at this offset: answer with it, store nothing.
    Duplicate {
        /// Offset of its first record.
        base_offset: u64,
    },
    /// Refuse it with this Kafka error code.
    Refuse(i16),
}

/// One stored batch, remembered for retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    base_sequence: i32,
    last_sequence: i32,
    base_offset: u64,
}

/// The sequence state of one producer on one partition.
#[derive(Debug, Clone, Default)]
pub struct SequenceState {
    epoch: Option<i16>,
    recent: VecDeque<Stored>,
}

impl SequenceState {
    /// What to do with `batch`.
    pub fn check(&self, batch: &BatchSeq) -> Verdict {
        let Some(epoch) = self.epoch else {
            // Nothing known of this producer here (first batch, or after a restart).
            return Verdict::Append;
        };
        if batch.epoch < epoch {
            return Verdict::Refuse(ResponseError::InvalidProducerEpoch.code());
        }
        if batch.epoch > epoch {
            // A new epoch starts its sequences again.
            return if batch.base_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::Refuse(ResponseError::OutOfOrderSequenceNumber.code())
            };
        }
        if let Some(s) = self.recent.iter().find(|s| {
            s.base_sequence == batch.base_sequence && s.last_sequence == batch.last_sequence()
        }) {
            return Verdict::Duplicate {
                base_offset: s.base_offset,
            };
        }
        match self.recent.back() {
            Some(last) if batch.base_sequence == add_sequence(last.last_sequence, 1) => {
                Verdict::Append
            }
            None => Verdict::Append,
            Some(_) => Verdict::Refuse(ResponseError::OutOfOrderSequenceNumber.code()),
        }
    }

    /// What to do with the batches of one partition of a Produce, in order (clients send
    /// one; several must follow each other, and only one alone can be a retry).
    pub fn check_all(&self, batches: &[BatchSeq]) -> Verdict {
        let Some(first) = batches.first() else {
            return Verdict::Append;
        };
        let mixed = batches
            .iter()
            .any(|b| b.producer_id != first.producer_id || b.epoch != first.epoch);
        if mixed {
            return Verdict::Refuse(ResponseError::InvalidRecord.code());
        }
        match self.check(first) {
            Verdict::Duplicate { .. } if batches.len() > 1 => {
                Verdict::Refuse(ResponseError::OutOfOrderSequenceNumber.code())
            }
            Verdict::Append => {
                let in_order = batches
                    .windows(2)
                    .all(|w| w[1].base_sequence == add_sequence(w[0].last_sequence(), 1));
                if in_order {
                    Verdict::Append
                } else {
                    Verdict::Refuse(ResponseError::OutOfOrderSequenceNumber.code())
                }
            }
            v => v,
        }
    }

    /// Records that `batches` were stored, one after the other, from `base_offset` on.
    pub fn appended_all(&mut self, batches: &[BatchSeq], base_offset: u64) {
        let mut offset = base_offset;
        for b in batches {
            self.appended(b, offset);
            offset += b.count.max(0) as u64;
        }
    }

    /// Records that `batch` was stored from `base_offset` on.
    pub fn appended(&mut self, batch: &BatchSeq, base_offset: u64) {
        if self.epoch != Some(batch.epoch) {
            self.recent.clear();
            self.epoch = Some(batch.epoch);
        }
        if self.recent.len() == REMEMBERED_BATCHES {
            self.recent.pop_front();
        }
        self.recent.push_back(Stored {
            base_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            base_offset,
        });
    }
}

/// Key of a [`SequenceState`].
type Key = (i64, String, i32);

/// A state and when it was last used.
struct Entry {
    state: Arc<Mutex<SequenceState>>,
    used: Instant,
}

/// Producer ids and their sequence states, shared by every Kafka connection.
pub struct ProducerRegistry {
    run_id: i64,
    next_id: AtomicI64,
    states: Mutex<HashMap<Key, Entry>>,
    max_states: usize,
}

impl Default for ProducerRegistry {
    fn default() -> Self {
        ProducerRegistry::new(MAX_PRODUCER_STATES)
    }
}

impl ProducerRegistry {
    /// A registry keeping at most `max_states` states.
    pub fn new(max_states: usize) -> ProducerRegistry {
        // Ids start from the clock (microseconds), so that a restarted server does not hand
        // out an id a producer of the previous run still uses.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(1);
        ProducerRegistry {
            run_id: start,
            next_id: AtomicI64::new(start),
            states: Mutex::new(HashMap::new()),
            max_states: max_states.max(1),
        }
    }

    /// A number that differs between runs of the server (the clock at start).
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// A new producer id.
    pub fn new_producer_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The state of `producer_id` on a partition, created when new. Hold its lock across the
    /// check and the append, so that the two are one step.
    pub fn state(
        &self,
        producer_id: i64,
        topic: &str,
        partition: i32,
    ) -> Arc<Mutex<SequenceState>> {
        let mut states = crate::kafka::lock(&self.states);
        let now = Instant::now();
        let key = (producer_id, topic.to_string(), partition);
        if let Some(e) = states.get_mut(&key) {
            e.used = now;
            return e.state.clone();
        }
        if states.len() >= self.max_states {
            // Rare (a full registry): one scan for the least recently used.
            if let Some(oldest) = states
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            {
                states.remove(&oldest);
            }
        }
        let state = Arc::new(Mutex::new(SequenceState::default()));
        states.insert(
            key,
            Entry {
                state: state.clone(),
                used: now,
            },
        );
        state
    }

    /// Forgets every state of `topic` (it was deleted).
    pub fn forget_topic(&self, topic: &str) {
        crate::kafka::lock(&self.states).retain(|(_, t, _), _| t != topic);
    }

    /// States held.
    pub fn len(&self) -> usize {
        crate::kafka::lock(&self.states).len()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, base_sequence: i32, count: i32) -> BatchSeq {
        BatchSeq {
            producer_id: 7,
            epoch,
            base_sequence,
            count,
        }
    }

    const OUT_OF_ORDER: i16 = 45;
    const OLD_EPOCH: i16 = 47;

    #[test]
    fn batches_in_sequence_append_and_a_retry_is_a_duplicate() {
        let mut s = SequenceState::default();
        let b0 = batch(0, 0, 3);
        assert_eq!(s.check(&b0), Verdict::Append);
        s.appended(&b0, 100);
        let b1 = batch(0, 3, 2);
        assert_eq!(s.check(&b1), Verdict::Append);
        s.appended(&b1, 103);
        assert_eq!(s.check(&b0), Verdict::Duplicate { base_offset: 100 });
        assert_eq!(s.check(&b1), Verdict::Duplicate { base_offset: 103 });
        assert_eq!(s.check(&batch(0, 6, 1)), Verdict::Refuse(OUT_OF_ORDER));
        assert_eq!(s.check(&batch(0, 5, 1)), Verdict::Append);
    }

    #[test]
    fn epochs_fence_old_producers_and_restart_sequences() {
        let mut s = SequenceState::default();
        s.appended(&batch(1, 0, 1), 0);
        assert_eq!(s.check(&batch(0, 1, 1)), Verdict::Refuse(OLD_EPOCH));
        assert_eq!(s.check(&batch(2, 5, 1)), Verdict::Refuse(OUT_OF_ORDER));
        assert_eq!(s.check(&batch(2, 0, 1)), Verdict::Append);
        s.appended(&batch(2, 0, 1), 1);
        assert_eq!(s.check(&batch(1, 1, 1)), Verdict::Refuse(OLD_EPOCH));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = SequenceState::default();
        for i in 0..6 {
            s.appended(&batch(0, i, 1), i as u64);
        }
        assert_eq!(s.check(&batch(0, 0, 1)), Verdict::Refuse(OUT_OF_ORDER));
        assert_eq!(
            s.check(&batch(0, 1, 1)),
            Verdict::Duplicate { base_offset: 1 }
        );
        let mut w = SequenceState::default();
        w.appended(&batch(0, i32::MAX - 1, 2), 0);
        assert_eq!(w.check(&batch(0, 0, 1)), Verdict::Append);
    }

    #[test]
    fn several_batches_must_follow_each_other() {
        let mut s = SequenceState::default();
        let two = [batch(0, 0, 2), batch(0, 2, 3)];
        assert_eq!(s.check_all(&two), Verdict::Append);
        s.appended_all(&two, 10);
        assert_eq!(s.check(&two[1]), Verdict::Duplicate { base_offset: 12 });
        assert_eq!(s.check_all(&two), Verdict::Refuse(OUT_OF_ORDER));
        let gap = [batch(0, 5, 1), batch(0, 7, 1)];
        assert_eq!(s.check_all(&gap), Verdict::Refuse(OUT_OF_ORDER));
        let mut other = batch(0, 6, 1);
        other.producer_id = 8;
        assert_eq!(s.check_all(&[batch(0, 5, 1), other]), Verdict::Refuse(87));
    }

    #[test]
    fn the_registry_is_bounded() {
        let r = ProducerRegistry::new(2);
        let a = r.new_producer_id();
        assert_ne!(a, r.new_producer_id());
        r.state(1, "t", 0);
        r.state(2, "t", 0);
        r.state(3, "u", 0);
        assert_eq!(r.len(), 2);
        r.forget_topic("t");
        assert_eq!(r.len(), 1);
    }
}
