//! Request type ids. Responses echo the request's id.

/// A request type. Ids 0..=41 are the original protocol's; 22, 23, 34 and 35 are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RequestType {
    /// Supported type ids and versions.
    ApiVersions = 0,
    /// Topics and partition counts.
    Metadata = 1,
    /// Create a topic.
    CreateTopic = 10,
    /// Delete a topic.
    DeleteTopic = 11,
    /// Topic names.
    ListTopics = 12,
    /// Append one message.
    Produce = 20,
    /// Read messages from a partition.
    Fetch = 21,
    /// Ours: append many messages in one request.
    BatchProduce = 22,
    /// Ours: fetch that waits up to `max_wait_ms` for data, with a byte limit (long poll).
    FetchWait = 23,
    /// Join a consumer group (original layout: no generation).
    JoinGroup = 30,
    /// Leave a consumer group.
    LeaveGroup = 31,
    /// Commit an offset (original layout: no member identity).
    CommitOffset = 32,
    /// Read a committed offset.
    FetchOffset = 33,
    /// Ours: join/rejoin a group with member id and generation.
    JoinGroupV2 = 34,
    /// Ours: commit an offset as a member of a given generation (stale members refused).
    GroupCommit = 35,
    /// Keep-alive (empty payload) or group liveness (our payload).
    Heartbeat = 40,
    /// Say goodbye; the server answers then closes.
    Disconnect = 41,
}

impl RequestType {
    /// Every type, in id order.
    pub const ALL: [RequestType; 17] = [
        RequestType::ApiVersions,
        RequestType::Metadata,
        RequestType::CreateTopic,
        RequestType::DeleteTopic,
        RequestType::ListTopics,
        RequestType::Produce,
        RequestType::Fetch,
        RequestType::BatchProduce,
        RequestType::FetchWait,
        RequestType::JoinGroup,
        RequestType::LeaveGroup,
        RequestType::CommitOffset,
        RequestType::FetchOffset,
        RequestType::JoinGroupV2,
        RequestType::GroupCommit,
        RequestType::Heartbeat,
        RequestType::Disconnect,
    ];

    /// The wire id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The type for a wire id, if known.
    pub fn from_id(id: u32) -> Option<RequestType> {
        RequestType::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// The protocol's upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            RequestType::ApiVersions => "API_VERSIONS",
            RequestType::Metadata => "METADATA",
            RequestType::CreateTopic => "CREATE_TOPIC",
            RequestType::DeleteTopic => "DELETE_TOPIC",
            RequestType::ListTopics => "LIST_TOPICS",
            RequestType::Produce => "PRODUCE",
            RequestType::Fetch => "FETCH",
            RequestType::BatchProduce => "BATCH_PRODUCE",
            RequestType::FetchWait => "FETCH_WAIT",
            RequestType::JoinGroup => "JOIN_GROUP",
            RequestType::LeaveGroup => "LEAVE_GROUP",
            RequestType::CommitOffset => "COMMIT_OFFSET",
            RequestType::FetchOffset => "FETCH_OFFSET",
            RequestType::JoinGroupV2 => "JOIN_GROUP_V2",
            RequestType::GroupCommit => "GROUP_COMMIT",
            RequestType::Heartbeat => "HEARTBEAT",
            RequestType::Disconnect => "DISCONNECT",
        }
    }
}

/// Message priority (the `u8 priority` of PRODUCE and of stored messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Priority {
    /// 0
    Critical = 0,
    /// 1
    High = 1,
    /// 2 (the usual choice)
    Normal = 2,
    /// 3
    Low = 3,
}

impl Priority {
    /// The priority for a wire value, if valid (0..=3).
    pub fn from_u8(v: u8) -> Option<Priority> {
        match v {
            0 => Some(Priority::Critical),
            1 => Some(Priority::High),
            2 => Some(Priority::Normal),
            3 => Some(Priority::Low),
            _ => None,
        }
    }
}
