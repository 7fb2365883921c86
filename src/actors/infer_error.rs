//! Why an inference request did not produce an answer. The API layer maps each variant to
//! one gRPC status (see `api::status`).

use thiserror::Error;

/// Why an inference request did not produce an answer.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum InferError {
    /// The model's queue is full: the request was shed.
    #[error("model `{model}` is overloaded: {queued} rows queued, capacity {capacity}")]
    QueueFull {
        /// The model.
        model: String,
        /// Rows waiting.
        queued: usize,
        /// The queue's capacity in rows.
        capacity: usize,
    },
    /// The queue is so long that the request's deadline cannot be met.
    #[error(
        "deadline cannot be met: {budget_us} µs left but about {estimate_us} µs of queued work is ahead"
    )]
    DeadlineUnmeetable {
        /// Time left before the deadline.
        budget_us: u64,
        /// Estimated time until this request would be answered.
        estimate_us: u64,
    },
    /// The deadline passed before the request was answered.
    #[error("deadline exceeded after {waited_us} µs")]
    DeadlineExceeded {
        /// How long the request waited.
        waited_us: u64,
    },
    /// The node or model is draining and takes no new work.
    #[error("model `{0}` is draining and takes no new requests; retry on another node")]
    Draining(String),
    /// Shards failed under the request more often than the retry budget allows.
    #[error("request was re-dispatched {attempts} times after shard failures and is given up")]
    ShardsFailed {
        /// Attempts made.
        attempts: u32,
    },
    /// The policy returned an error for the batch.
    #[error("model error: {0}")]
    Policy(String),
}
