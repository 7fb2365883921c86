//! What the session-store integration tests share: store options with short timeouts, a
//! deterministic counting policy, and step requests for it.

#![allow(dead_code)]

use std::time::Duration;

use fudo::sessions::{
    RedisStoreOptions, SessionTable, StepComputed, StepOutcome, StepOutput, StepRequest,
};

/// State width of the sessions these tests step.
pub const DIM: usize = 3;

/// Store options with timeouts and backoff short enough for tests.
pub fn fast_options() -> RedisStoreOptions {
    RedisStoreOptions {
        connect_timeout: Duration::from_millis(200),
        response_timeout: Duration::from_millis(500),
        load_timeout: Duration::from_millis(300),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..RedisStoreOptions::default()
    }
}

/// Counting policy: action = steps so far, value = half of it, next state = state + 1.
pub async fn count(prev: Vec<f32>) -> Result<StepComputed, String> {
    Ok(StepComputed {
        output: StepOutput {
            logits: prev.clone(),
            value: prev[0] / 2.0,
            action: prev[0] as i64,
        },
        next_state: prev.iter().map(|x| x + 1.0).collect(),
        moved_to: None,
        observed: Vec::new(),
    })
}

/// A step of session `session` on model `lstm` version `v3` (`seq` None: the next one).
pub fn req(session: &str, seq: Option<u64>, start: bool) -> StepRequest {
    StepRequest {
        model: "lstm".into(),
        model_version: "v3".into(),
        new_version: String::new(),
        session_id: session.into(),
        seq,
        start,
        end: false,
        state_dim: DIM,
        min_epoch: 0,
    }
}

/// Runs one step with the counting policy.
pub async fn step(t: &SessionTable, r: StepRequest) -> StepOutcome {
    t.step(r, count).await.expect("step")
}
