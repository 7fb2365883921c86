//! Shadow traffic: a copy of a live request, run on the version under test after the client
//! has its answer, and compared with the live version's answer (chosen action, distance between
//! the two action distributions, latency). The shadow never answers anyone; its results only
//! feed that version's gate statistics.
//!
//! A recurrent session's shadow keeps its own state lineage: its first mirrored step starts
//! from the live session's state at that moment, and from then on it steps its own state, so a
//! version whose recurrence drifts shows up as growing divergence.
//!
//! Mirroring is skipped while the shadow's queue is more than half full: a slow or broken
//! version under test must not take CPU from live traffic without bound.

use std::{sync::Arc, time::Instant};

use crate::actors::{JobOutput, ModelHost, ServedModel};

fn busy(shadow: &ModelHost) -> bool {
    shadow.queue.depth() * 2 > shadow.queue.limits().capacity
}

fn compare(shadow: &ModelHost, live: &JobOutput, mirrored: &JobOutput, rows: usize) {
    let n = shadow.spec().n_actions;
    for r in 0..rows {
        let (Some(live_logits), Some(shadow_logits)) = (
            live.logits.get(r * n..(r + 1) * n),
            mirrored.logits.get(r * n..(r + 1) * n),
        ) else {
            return;
        };
        let live_action = live.actions.get(r).copied().unwrap_or(-1);
        let shadow_action = mirrored.actions.get(r).copied().unwrap_or(-2);
        shadow
            .stats
            .record_comparison((live_action, live_logits), (shadow_action, shadow_logits));
    }
}

/// Mirrors a stateless request that `live` answered.
pub fn stateless(
    shadow: Arc<ModelHost>,
    request_id: String,
    rows: usize,
    obs: Vec<f32>,
    live: &JobOutput,
    deadline: Instant,
) {
    if busy(&shadow) {
        return;
    }
    let live = live.clone();
    tokio::spawn(async move {
        if let Ok(out) = shadow
            .infer_counted(
                format!("{request_id}-shadow"),
                rows,
                obs,
                Vec::new(),
                deadline,
            )
            .await
        {
            compare(&shadow, &live, &out, rows);
        }
    });
}

/// Mirrors one session step that `live` answered; `live_state` is the state the live version
/// stepped from.
#[allow(clippy::too_many_arguments)]
pub fn session_step(
    model: Arc<ServedModel>,
    shadow: Arc<ModelHost>,
    session_id: String,
    request_id: String,
    obs: Vec<f32>,
    live_state: Vec<f32>,
    live: &JobOutput,
    deadline: Instant,
) {
    if busy(&shadow) {
        return;
    }
    let live = live.clone();
    let state = model.shadow_state(&session_id).unwrap_or(live_state);
    tokio::spawn(async move {
        if let Ok(out) = shadow
            .infer_counted(format!("{request_id}-shadow"), 1, obs, state, deadline)
            .await
        {
            compare(&shadow, &live, &out, 1);
            model.set_shadow_state(&session_id, out.state);
        }
    });
}
