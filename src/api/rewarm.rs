//! Moving a recurrent session to another model version. A session's recurrent state only means
//! something to the weights that produced it, so a session that must change versions (its
//! version was rolled back or retired, a deploy migrates sessions, or its canary answered
//! something unusable) gets a state from the new version: the session's recent observations
//! (`sessions.replay_window` of them) are replayed through the new version from the zero state,
//! as if the session had started that many steps ago. Without recent observations (a window of
//! 0, or a snapshot written before they were kept) the state is carried over unchanged.

use std::time::Instant;

use crate::actors::{InferError, ModelHost};

/// The state `host` reaches by stepping `recent_obs` from zeros (`carried` when there are
/// none).
pub async fn rewarm(
    host: &ModelHost,
    recent_obs: &[Vec<f32>],
    carried: Vec<f32>,
    request_id: &str,
    deadline: Instant,
) -> Result<Vec<f32>, InferError> {
    if recent_obs.is_empty() {
        return Ok(carried);
    }
    let mut state = vec![0.0; host.spec().state_dim];
    for (i, obs) in recent_obs.iter().enumerate() {
        let out = host
            .infer(
                format!("{request_id}-rewarm-{i}"),
                1,
                obs.clone(),
                state,
                deadline,
            )
            .await?;
        state = out.state;
    }
    Ok(state)
}
