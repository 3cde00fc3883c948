//! The client's error type.

use stream_proto::ErrorCode;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connection problems (refused, reset, closed, timed out): reconnect and retry. The OS
    /// error is part of the message, not a separate `source()`, so a printed chain says it once.
    #[error("connection error: {0}")]
    Io(std::io::Error),
    /// The server answered with an error code, e.g. `TopicAlreadyExists`.
    #[error("server error {code}: {message}")]
    Server {
        /// The server's code.
        code: ErrorCode,
        /// The server's message (may be empty: some answers carry none).
        message: String,
    },
    /// A malformed or unexpected response (the connection is unusable afterwards).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The server's error code, for [`ClientError::Server`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A server error from a code and message.
    pub fn server(code: ErrorCode, message: impl Into<String>) -> ClientError {
        ClientError::Server {
            code,
            message: message.into(),
        }
    }

    /// An equivalent error (`std::io::Error` is not `Clone`): used to fail every message of a
    /// batch with the batch's error.
    pub fn duplicate(&self) -> ClientError {
        match self {
            ClientError::Io(e) => ClientError::Io(std::io::Error::new(e.kind(), e.to_string())),
            ClientError::Server { code, message } => ClientError::server(*code, message.clone()),
            ClientError::Protocol(m) => ClientError::Protocol(m.clone()),
        }
    }

    /// True when the group membership is stale and the member must rejoin.
    pub fn needs_rejoin(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::RebalanceInProgress
                    | ErrorCode::IllegalGeneration
                    | ErrorCode::ConsumerNotFound
            )
        )
    }
}

impl From<stream_proto::DecodeError> for ClientError {
    fn from(e: stream_proto::DecodeError) -> Self {
        ClientError::Protocol(format!("malformed response: {e}"))
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}
