//! One inference request as the router queues it: its rows, where the answer goes, and the
//! bookkeeping (deadline, attempts) that re-dispatch and admission need.

use std::time::Instant;

use tokio::sync::oneshot;

use super::InferError;

/// The answer to one job: its rows of the batch's output, row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobOutput {
    /// `rows * n_actions` logits.
    pub logits: Vec<f32>,
    /// `rows` values.
    pub values: Vec<f32>,
    /// `rows` greedy actions.
    pub actions: Vec<i64>,
    /// `rows * state_dim` next recurrent state (empty for stateless policies).
    pub state: Vec<f32>,
    /// Name of the shard that computed it.
    pub served_by: String,
}

/// A queued inference request.
#[derive(Debug)]
pub struct Job {
    /// Request id, for tracing.
    pub request_id: String,
    /// Number of observation rows.
    pub rows: usize,
    /// `rows * obs_dim` observations.
    pub obs: Vec<f32>,
    /// `rows * state_dim` recurrent state in (empty for stateless policies).
    pub state: Vec<f32>,
    /// When it was queued.
    pub enqueued_at: Instant,
    /// When its answer stops being useful.
    pub deadline: Instant,
    /// Dispatches so far (re-dispatch after a shard failure adds one).
    pub attempts: u32,
    reply: oneshot::Sender<Result<JobOutput, InferError>>,
}

impl Job {
    /// A job and the receiver its answer arrives on.
    pub fn new(
        request_id: String,
        rows: usize,
        obs: Vec<f32>,
        state: Vec<f32>,
        deadline: Instant,
    ) -> (Self, oneshot::Receiver<Result<JobOutput, InferError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Self {
            request_id,
            rows,
            obs,
            state,
            enqueued_at: Instant::now(),
            deadline,
            attempts: 0,
            reply,
        };
        (job, rx)
    }

    /// Whether nobody waits for the answer any more (the caller gave up or was cancelled).
    pub fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Sends the answer; a caller that went away is not an error.
    pub fn answer(self, result: Result<JobOutput, InferError>) {
        let _ = self.reply.send(result);
    }
}
