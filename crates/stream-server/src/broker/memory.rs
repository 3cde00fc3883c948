//! What a request costs against the memory budget ([`crate::budget`]): decided from its
//! header (and, for BATCH_PRODUCE, the first bytes of its payload) before the payload is
//! read, then settled to what its answer holds once it is served.
//!
//! Costs are upper bounds on the memory the server allocates because of the request, not
//! its wire size: a produce's payload is copied once more into the log's write buffer, a
//! batch of small messages costs [`BATCH_RECORD_OVERHEAD`] per message, and a fetch answer's
//! records are copied into the connection's output buffer before they are sent.

use stream_proto::{
    BatchPrefix, ErrorCode, Header, ProducedOffset, RequestType, Response, MIN_BATCH_RECORD_LEN,
};

use super::produce::check_batch_count;
use super::{Pending, Waiting, WaitingFor, FETCH_MAX_BYTES};

pub use super::produce::BATCH_RECORD_OVERHEAD;

/// Memory of one request beyond its payload and answer bytes: the queued item, the answer's
/// structure, bookkeeping.
pub const REQUEST_OVERHEAD: usize = 1024;

/// Answer bytes charged for requests whose answer size is only known once served (topic and
/// group lists); settled to the real size afterwards.
pub const SMALL_ANSWER_BOUND: usize = 64 << 10;

/// What to do with a request whose header (and payload start) has arrived.
pub enum Admission {
    /// The cost depends on payload bytes that have not arrived yet.
    NeedMore,
    /// Charge this many bytes, then read the payload.
    Charge(usize),
    /// Answer this without reading the payload (it is skipped as it arrives).
    Refuse {
        /// The answer.
        response: Response,
        /// Why (its message, for the log).
        reason: String,
    },
}

/// Decides a request's cost from its header and the payload bytes buffered so far (`head`).
/// A request costing more than `pool_limit`, the whole budget, is refused.
pub fn admit(header: &Header, head: &[u8], pool_limit: usize) -> Admission {
    let len = header.length as usize;
    let cost = match RequestType::from_id(header.type_id) {
        Some(RequestType::BatchProduce) => match BatchPrefix::read(head, len) {
            BatchPrefix::Needs => return Admission::NeedMore,
            // Decoding refuses it without looking at any message.
            BatchPrefix::Malformed => len + REQUEST_OVERHEAD,
            BatchPrefix::Count { count, prefix_len } => {
                if let Err((code, msg)) = check_batch_count(u64::from(count)) {
                    return refuse(header.type_id, code, msg);
                }
                let fits = (len - prefix_len) / MIN_BATCH_RECORD_LEN;
                let messages = (count as usize).min(fits);
                2 * len + messages * BATCH_RECORD_OVERHEAD + REQUEST_OVERHEAD
            }
        },
        Some(RequestType::Produce) => 2 * len + REQUEST_OVERHEAD,
        Some(RequestType::Fetch | RequestType::FetchWait) => {
            len + fetch_answer_bound(FETCH_MAX_BYTES)
        }
        _ => len + SMALL_ANSWER_BOUND + REQUEST_OVERHEAD,
    };
    if cost > pool_limit {
        let name = RequestType::from_id(header.type_id).map_or("request", |t| t.name());
        return refuse(
            header.type_id,
            ErrorCode::RequestTooLarge,
            format!(
                "this {name} needs {cost} bytes of server memory, more than the whole memory \
                 budget of {pool_limit} bytes (--memory-budget-bytes / \
                 STREAM_MEMORY_BUDGET_BYTES); send it in smaller requests"
            ),
        );
    }
    Admission::Charge(cost)
}

fn refuse(type_id: u32, code: ErrorCode, reason: String) -> Admission {
    Admission::Refuse {
        response: Response::error(type_id, code, reason.clone()),
        reason,
    }
}

/// Most memory a fetch answer of up to `max_bytes` record bytes holds: the records read and
/// their copy in the connection's output buffer.
pub fn fetch_answer_bound(max_bytes: u32) -> usize {
    2 * max_bytes as usize + REQUEST_OVERHEAD
}

/// Memory an answer holds until it is written: its structure and its encoded frame.
pub fn answer_cost(resp: &Response) -> usize {
    let body = match resp {
        Response::Fetch(f) | Response::FetchWait { fetch: f, .. } => {
            2 * (f.records.len() + f.message.len())
        }
        Response::BatchProduce {
            message, offsets, ..
        } => offsets.len() * (std::mem::size_of::<ProducedOffset>() + 12) + 2 * message.len(),
        Response::Metadata { topics, .. } => topics.iter().map(|t| 2 * t.name.len() + 64).sum(),
        Response::ListTopics { topics, .. } => topics.iter().map(|t| 2 * t.len() + 64).sum(),
        Response::ApiVersions { versions, .. } => versions.len() * 16,
        Response::JoinGroup {
            message,
            consumer_id,
            partitions,
            ..
        }
        | Response::JoinGroupV2 {
            message,
            consumer_id,
            partitions,
            ..
        } => 2 * (message.len() + consumer_id.len()) + partitions.len() * 8,
        other => 2 * other_message_len(other),
    };
    body + REQUEST_OVERHEAD
}

fn other_message_len(resp: &Response) -> usize {
    match resp {
        Response::Produce { message, .. } => message.len(),
        Response::CreateTopic(s)
        | Response::DeleteTopic(s)
        | Response::LeaveGroup(s)
        | Response::CommitOffset(s)
        | Response::GroupCommit(s)
        | Response::Heartbeat(s)
        | Response::Disconnect(s)
        | Response::Unknown { status: s, .. } => s.message.len(),
        _ => 0,
    }
}

impl Pending {
    /// Memory this answer holds until it is written, as far as known now (a long poll's
    /// records are charged by the long poll).
    pub fn answer_cost(&self) -> usize {
        match self {
            Pending::Ready(r) => answer_cost(r),
            Pending::Waiting(Waiting(WaitingFor::Durable { response, .. })) => {
                answer_cost(response)
            }
            Pending::Waiting(Waiting(WaitingFor::Task(_))) => REQUEST_OVERHEAD,
            // What it was admitted with: the payload stays until the append copies it.
            Pending::Staged { payload_len } => 2 * payload_len + REQUEST_OVERHEAD,
        }
    }
}
