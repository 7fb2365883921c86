//! What the session-store integration tests share: store options with short timeouts, and a
//! deterministic counting policy.

#![allow(dead_code)]

use std::time::Duration;

use fudo::sessions::{RedisStoreOptions, StepComputed, StepOutput};

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
