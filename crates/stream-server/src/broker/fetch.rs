//! FETCH and FETCH_WAIT (with its long poll).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stream_log::PartitionLog;
use stream_proto::{ErrorCode, FetchResponse, Response};

use super::errors::{fail, Failure};
use super::memory::{answer_cost, fetch_answer_bound};
use super::{Broker, ConnState, Pending, Waiting, WaitingFor, FETCH_MAX_BYTES, MAX_WAIT};
use crate::budget::{Charge, ConnBudget};

/// A FETCH_WAIT request's fields.
pub(super) struct FetchWait {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub max_messages: u32,
    pub max_bytes: u32,
    pub max_wait_ms: u32,
}

impl Broker {
    pub(super) fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: u32,
    ) -> Result<Response, Failure> {
        let log = self.partition(topic, partition)?;
        let (f, _) = self.read(&log, offset, max_messages, FETCH_MAX_BYTES);
        Ok(Response::Fetch(f))
    }

    pub(super) fn fetch_wait(
        self: &Arc<Self>,
        req: FetchWait,
        conn: &ConnState,
    ) -> Result<Pending, Failure> {
        let log = self.partition(&req.topic, req.partition)?;
        let max_bytes = if req.max_bytes == 0 {
            FETCH_MAX_BYTES
        } else {
            req.max_bytes.min(FETCH_MAX_BYTES)
        };
        let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_WAIT);
        if wait.is_zero() || req.max_messages == 0 || req.offset != log.high_watermark() {
            let (fetch, start) = self.read(&log, req.offset, req.max_messages, max_bytes);
            return Ok(Pending::Ready(Response::FetchWait {
                log_start_offset: start,
                fetch,
            }));
        }
        let b = self.clone();
        let budget = conn.budget.clone();
        let task = tokio::spawn(async move {
            b.long_poll(log, req.offset, req.max_messages, max_bytes, wait, budget)
                .await
        });
        Ok(Pending::Waiting(Waiting(WaitingFor::Task(task))))
    }

    /// Reads for FETCH / FETCH_WAIT. Returns the answer and the log start offset; a failed
    /// read is an answer with the error.
    fn read(
        &self,
        log: &PartitionLog,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
    ) -> (FetchResponse, u64) {
        let hw = log.high_watermark();
        let start = log.log_start_offset();
        let empty = |error, message: String| FetchResponse {
            error,
            message,
            high_watermark: hw,
            count: 0,
            records: Bytes::new(),
        };
        if offset > hw || offset < start {
            let msg = format!("offset {offset} out of range [{start}, {hw}]");
            return (empty(ErrorCode::InvalidOffset, msg), start);
        }
        if offset == hw || max_messages == 0 {
            return (empty(ErrorCode::None, String::new()), start);
        }
        match log.read(offset, max_messages, max_bytes) {
            Ok(b) => {
                self.metrics.messages_out.increment(u64::from(b.count));
                let f = FetchResponse {
                    error: ErrorCode::None,
                    message: String::new(),
                    high_watermark: b.high_watermark,
                    count: b.count,
                    records: b.bytes,
                };
                (f, start)
            }
            Err(e) => {
                let (code, msg) = fail(e);
                (empty(code, msg), log.log_start_offset())
            }
        }
    }

    /// Waits for a message past `offset`, then reads. The records are charged to the
    /// connection's budget without waiting for it (this task runs after the connection handed
    /// the request on, and later answers of the connection may hold the budget): when it is
    /// spent, the answer carries no records and the client asks again.
    async fn long_poll(
        self: Arc<Self>,
        log: Arc<PartitionLog>,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
        wait: Duration,
        budget: ConnBudget,
    ) -> (Response, Charge) {
        // Subscribe before checking, so that an append in between is not missed.
        let mut rx = log.subscribe();
        let mut shutdown = self.shutdown.clone();
        let deadline = tokio::time::Instant::now() + wait;
        while log.high_watermark() <= offset && !*shutdown.borrow() {
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
        }
        let answer = |fetch, start| Response::FetchWait {
            log_start_offset: start,
            fetch,
        };
        let Some(mut charge) = budget.try_acquire(fetch_answer_bound(max_bytes)) else {
            let (empty, start) = self.read(&log, offset, 0, 0);
            return (answer(empty, start), Charge::none());
        };
        let (fetch, start) = self.read(&log, offset, max_messages, max_bytes);
        let resp = answer(fetch, start);
        // At least one message is returned even past max_bytes: charge what was read.
        if budget.settle(&mut charge, answer_cost(&resp)) {
            return (resp, charge);
        }
        drop(resp);
        let (empty, start) = self.read(&log, offset, 0, 0);
        (answer(empty, start), Charge::none())
    }
}
