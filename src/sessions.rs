//! Recurrent session state: idempotent, deterministic steps and durable snapshots.
//!
//! A recurrent policy's step is `(state[t-1], obs[t]) -> (action[t], state[t])`. The recurrent
//! state does not live in the inference shard but here, in the [`SessionTable`], keyed by
//! session id. Every step is identified by `(session_id, seq)`:
//!
//! - `seq == last + 1` steps the session exactly once (the caller's `infer` closure receives the
//!   previous state and returns the output and the next state);
//! - `seq <= last` and still retained returns the recorded result (`replayed: true`) without
//!   stepping again, so retries and hedged requests are safe;
//! - anything else is a typed [`SessionError`] that tells the client what to send instead.
//!
//! Each recorded step is written through to a [`SessionStore`]: the in-process
//! [`MemoryStore`] (acknowledged immediately) or the [`RedisStore`], whose writer task
//! coalesces snapshots per session and pipelines them to Redis. Redis is not on the critical
//! path: when it is unreachable the store turns `degraded`, keeps the latest snapshot of every
//! session buffered, retries with backoff and flushes everything on reconnection. Each
//! [`StepOutcome`] carries the session's durable watermark (the highest seq the store has
//! acknowledged) so the client library knows which steps it may drop from its replay buffer.
//!
//! Layout: [`table`] (the state machine and the per-session locking), [`snapshot`] (what is
//! stored and its binary encoding), [`store`] (the store enum and the memory store),
//! [`redis_store`] (the Redis write-through writer), `redis_conn` (its connection, direct or
//! through Sentinel discovery), [`redis_target`] (the parsed `sessions.redis_url`, and the
//! redaction of its password), [`redis_tls`] (`rediss://` and the private CA of
//! `sessions.redis_ca_file`), [`error`].

pub mod error;
mod redis_conn;
pub mod redis_store;
pub mod redis_target;
pub mod redis_tls;
pub mod snapshot;
pub mod store;
pub mod table;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{SessionError, StepError, StoreError};
pub use redis_store::{RedisStore, RedisStoreOptions};
pub use redis_target::{REDACTED, RedisTarget, redact_url};
pub use redis_tls::{ca_for, load_ca_file};
pub use snapshot::{SessionSnapshot, StepRecord};
pub use store::{MemoryStore, SessionStore, StoreHealth};
pub use table::SessionTable;

/// Tuning of a [`SessionTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// How many past step results each session keeps for replaying retried seqs (at least 1;
    /// smaller values are raised to 1). Default 32.
    pub retained_results: usize,
    /// Sessions idle for this long are evicted from memory (they stay in the durable store and
    /// are loaded again on their next step). Sessions with writes the store has not yet
    /// acknowledged are never evicted. Default 10 minutes.
    pub idle_ttl: Duration,
    /// How many recent observations each session keeps, to re-warm its state on another model
    /// version by replaying them (0: none; a moved session then keeps its state). Default 16.
    pub replay_window: usize,
}

/// Recent observations a session keeps by default (see [`SessionConfig::replay_window`]).
pub const DEFAULT_REPLAY_WINDOW: usize = 16;

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            retained_results: 32,
            idle_ttl: Duration::from_secs(600),
            replay_window: DEFAULT_REPLAY_WINDOW,
        }
    }
}

/// One step of a recurrent session, as the table sees it (the observation itself goes to the
/// `infer` closure, not here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRequest {
    /// Model name; a session is pinned to the model and version it started on.
    pub model: String,
    /// Model version the request names ("": whichever version the session is pinned to). A
    /// step of a session pinned to another version fails with a version mismatch.
    pub model_version: String,
    /// The version a session that starts with this step is pinned to when the request names
    /// none (the routing rule's choice, e.g. a canary); "": `model_version`.
    pub new_version: String,
    /// Client-chosen session id (the key of the session table and of the durable store).
    pub session_id: String,
    /// Sequence number of this step; `None` means "the next one" (`last + 1`, or 1 for a new
    /// session). Sequence numbers should start at 1.
    pub seq: Option<u64>,
    /// Begin the session (again) from the zero state at this seq.
    pub start: bool,
    /// Close the session after this step.
    pub end: bool,
    /// Size of the recurrent state vector of the model.
    pub state_dim: usize,
    /// The newest owner epoch the client has seen for this session (0: none). A node holding
    /// the session under an older epoch is not its owner any more: it takes the session over
    /// again from the store before it answers, or fails the step (retryable) if it cannot.
    pub min_epoch: u64,
}

impl StepRequest {
    /// The version a session starting with this step is pinned to.
    pub fn pinned_version_of_new_session(&self) -> &str {
        if self.new_version.is_empty() {
            &self.model_version
        } else {
            &self.new_version
        }
    }
}

/// What a policy step produced for the client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    /// Action-head logits.
    pub logits: Vec<f32>,
    /// Value-head estimate.
    pub value: f32,
    /// The chosen action.
    pub action: i64,
}

/// What the `infer` closure returns: the output plus the next recurrent state.
#[derive(Clone, Debug, PartialEq)]
pub struct StepComputed {
    /// The step's output, recorded for replays.
    pub output: StepOutput,
    /// `state[t]`; must have `state_dim` elements.
    pub next_state: Vec<f32>,
    /// The model version that computed the step, when it is not the one the session is
    /// pinned to (that version is no longer loaded): the session moves to it.
    pub moved_to: Option<String>,
    /// The observation the step consumed, kept in the session's replay window.
    pub observed: Vec<f32>,
}

/// What the `infer` closure of [`SessionTable::step_with`] is given.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInput {
    /// `state[t-1]` (zeros for a session's first step).
    pub state: Vec<f32>,
    /// The model version the session is pinned to: the one it started on, or for a first
    /// step the one the request asked for.
    pub version: String,
    /// The session's recent observations, oldest first (empty for a first step): replaying
    /// them from the zero state re-warms the session on another version.
    pub recent_obs: Vec<Vec<f32>>,
}

/// The result of [`SessionTable::step`].
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    /// The seq this result belongs to (resolved when the request had none).
    pub seq: u64,
    /// The step's output (recorded one when `replayed`).
    pub output: StepOutput,
    /// `true` when the seq had already been stepped and the recorded result was returned.
    pub replayed: bool,
    /// Highest seq of this session whose state the store has acknowledged (0: none yet). The
    /// client may drop buffered steps up to and including it.
    pub durable_watermark: u64,
    /// The owner epoch (lease fencing token) under which this node holds the session; 0 for
    /// the in-process store, which has no leases. Epochs of one session only grow, so a client
    /// (or the chaos checker) that sees a smaller epoch after a larger one has met a stale
    /// owner.
    pub owner_epoch: u64,
}
