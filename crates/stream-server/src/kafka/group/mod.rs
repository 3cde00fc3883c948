//! Kafka consumer groups: the membership state machine of one group ([`state`]) and the
//! registry of all groups with the requests waiting on them ([`coordinator`]). Committed
//! offsets are not here: they are the broker's offset store, shared with STRP.

pub mod coordinator;
pub mod state;

pub use coordinator::{Answer, Groups};
pub use state::{Group, GroupState, Join, JoinResult, MemberId, SyncResult};
