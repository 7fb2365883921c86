//! Why a call failed, and which failures are worth another node.

use tonic::{Code, Status};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No endpoint could be chosen (only possible with an empty endpoint list).
    #[error("no endpoints")]
    NoEndpoints,
    /// The call's deadline passed before any attempt succeeded.
    #[error("deadline exceeded after {attempts} attempt(s); last error: {last:?}")]
    DeadlineExceeded {
        /// Attempts started (hedges included).
        attempts: u32,
        /// The last retryable error seen, if any.
        last: Option<Status>,
    },
    /// Every attempt failed with a retryable error and no attempts are left.
    #[error("all {attempts} attempt(s) failed; last error: {last}")]
    Exhausted {
        /// Attempts started (hedges included).
        attempts: u32,
        /// The last retryable error.
        last: Status,
    },
    /// A non-retryable status, returned as the server sent it.
    #[error("{0}")]
    Status(Status),
    /// The configuration is invalid.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The status name a report counts this failure under: the gRPC code's canonical name
    /// (`UNAVAILABLE`, ...), `DEADLINE_EXCEEDED` for the call's own deadline, `NO_ENDPOINTS` or
    /// `CLIENT_CONFIG`.
    #[must_use]
    pub fn status_name(&self) -> &'static str {
        match self {
            ClientError::NoEndpoints => "NO_ENDPOINTS",
            ClientError::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
            ClientError::Exhausted { last, .. } => crate::metrics::code_name(last.code()),
            ClientError::Status(s) => crate::metrics::code_name(s.code()),
            ClientError::Config(_) => "CLIENT_CONFIG",
        }
    }
}

/// Whether `status` may succeed on another node (see the module docs).
#[must_use]
pub fn is_retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted => true,
        Code::Unknown => {
            let m = status.message().to_ascii_lowercase();
            m.contains("transport") || m.contains("connect") || from_transport(status)
        }
        Code::Cancelled => from_transport(status),
        _ => false,
    }
}

fn from_transport(status: &Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some())
}
