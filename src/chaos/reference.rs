//! The fault-free reference for recurrent sessions: each session's observations are a
//! deterministic function of (seed, session, seq), so the runner replays them through the
//! same policy in-process, one step at a time with nothing failing, and compares every action
//! the cluster answered with the reference action for that seq. Same build, same CPU, same
//! model weights: the actions must be equal.
//!
//! Deploys move sessions between versions (the deploy fixtures' versions share the same
//! weights). A session that changes version is re-warmed by the node: its last
//! `replay_window` observations are replayed from the zero state through the new version.
//! The reference does the same at each step whose computing version (from `served_by`)
//! differs from the previous computed step's, so it checks that re-warming as exactly as the
//! steps themselves.

use std::collections::{BTreeMap, HashMap};

use super::{
    history::{Op, OpKind},
    load::session_pool,
    report::SessionsReport,
};
use crate::{
    bench::request::decode_f32,
    model::{Policy, PolicyError},
};

/// Compares the session steps of `ops` with the reference computed by `policy`.
///
/// # Errors
///
/// A [`PolicyError`] if the reference forward pass fails.
pub fn check_sessions(
    ops: &[Op],
    policy: &dyn Policy,
    seed: u64,
    replay_window: usize,
) -> Result<SessionsReport, PolicyError> {
    let spec = policy.spec().clone();
    // session → seq → actions answered (a retried or replayed seq may appear twice).
    let mut answered: BTreeMap<usize, BTreeMap<u64, Vec<i64>>> = BTreeMap::new();
    // session → seq → the model version that computed it.
    let mut computed_on: HashMap<usize, BTreeMap<u64, String>> = HashMap::new();
    let mut report = SessionsReport::default();
    let mut last_node: HashMap<usize, String> = HashMap::new();
    let mut owners = OwnerCheck::default();
    let mut by_answer: Vec<&Op> = ops
        .iter()
        .filter(|o| o.kind == OpKind::Step && o.ok)
        .collect();
    by_answer.sort_by_key(|o| (o.end_us, o.id));
    for op in by_answer {
        let Some(s) = op
            .process
            .strip_prefix("session-")
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let (Some(seq), Some(action)) = (op.seq, op.action) else {
            continue;
        };
        answered
            .entry(s)
            .or_default()
            .entry(seq)
            .or_default()
            .push(action);
        if op.replayed {
            report.replayed_steps += 1;
        } else if let Some(version) = op.model_version() {
            computed_on
                .entry(s)
                .or_default()
                .entry(seq)
                .or_insert_with(|| version.to_owned());
        }
        if let Some(node) = op.node() {
            if last_node.get(&s).is_some_and(|n| n != node) {
                report.node_moves += 1;
            }
            last_node.insert(s, node.to_owned());
            if let Some(epoch) = op.owner_epoch.filter(|&e| e > 0) {
                report.epoch_steps += 1;
                if !owners.answer(s, epoch, node) {
                    report.double_owner_steps += 1;
                    tracing::warn!(
                        session = s,
                        seq,
                        epoch,
                        node,
                        "step answered by a stale owner"
                    );
                }
            }
        }
    }
    for (s, steps) in &answered {
        report.checked += 1;
        let pool = session_pool(seed, *s, spec.obs_dim);
        let mut state = vec![0.0f32; spec.state_dim];
        let last = steps.keys().next_back().copied().unwrap_or(0);
        let versions = computed_on.remove(s).unwrap_or_default();
        let mut version: Option<&String> = None;
        for seq in 1..=last {
            if let Some(v) = versions.get(&seq) {
                if version.is_some_and(|prev| prev != v) && replay_window > 0 {
                    // The node re-warmed the session on the new version.
                    report.version_moves += 1;
                    state = vec![0.0f32; spec.state_dim];
                    for past in seq.saturating_sub(replay_window as u64).max(1)..seq {
                        state = policy
                            .forward(&decode_f32(pool.payload(past)), 1, &state)?
                            .state;
                    }
                }
                version = Some(v);
            }
            let obs = decode_f32(pool.payload(seq));
            let out = policy.forward(&obs, 1, &state)?;
            state = out.state;
            let Some(actions) = steps.get(&seq) else {
                continue;
            };
            let expected = out.actions.first().copied();
            for a in actions {
                report.steps_checked += 1;
                if Some(*a) != expected {
                    report.divergent_steps += 1;
                    tracing::warn!(session = s, seq, answered = a, reference = ?expected, "divergent step");
                }
            }
        }
    }
    Ok(report)
}

/// Per session, the newest owner epoch that has answered a step, and the node that held it.
#[derive(Debug, Default)]
struct OwnerCheck {
    newest: HashMap<usize, (u64, String)>,
}

impl OwnerCheck {
    /// Records an answer of session `s` by `node` under `epoch` (answers in the order they
    /// arrived); `false` when a newer owner had already answered, or the same epoch came
    /// from another node.
    fn answer(&mut self, s: usize, epoch: u64, node: &str) -> bool {
        match self.newest.get(&s) {
            Some((newest, _)) if epoch < *newest => false,
            Some((newest, holder)) if epoch == *newest && holder != node => false,
            _ => {
                self.newest.insert(s, (epoch, node.to_owned()));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bundled_models;

    fn lstm() -> std::sync::Arc<dyn Policy> {
        let models = bundled_models(&candle_core::Device::Cpu).expect("bundled models load");
        models
            .into_iter()
            .find(|m| m.spec().is_recurrent())
            .expect("a recurrent bundled model")
            .policy
    }

    fn step_op(session: usize, seq: u64, action: i64) -> Op {
        Op {
            id: seq,
            process: format!("session-{session}"),
            kind: OpKind::Step,
            seq: Some(seq),
            start_us: 0,
            end_us: 1,
            ok: true,
            status: "OK".into(),
            error: None,
            served_by: Some(format!("n{}/lstm/shard-0", seq % 2)),
            action: Some(action),
            replayed: false,
            owner_epoch: None,
        }
    }

    #[test]
    fn the_reference_itself_matches_and_a_changed_action_diverges() {
        let policy = lstm();
        let spec = policy.spec().clone();
        let pool = session_pool(7, 3, spec.obs_dim);
        let mut state = vec![0.0; spec.state_dim];
        let mut ops = Vec::new();
        for seq in 1..=20 {
            let out = policy
                .forward(&decode_f32(pool.payload(seq)), 1, &state)
                .expect("forward");
            state = out.state;
            ops.push(step_op(3, seq, out.actions[0]));
        }
        let r = check_sessions(&ops, policy.as_ref(), 7, 16).expect("check");
        assert_eq!((r.checked, r.steps_checked, r.divergent_steps), (1, 20, 0));
        assert_eq!(r.node_moves, 19);
        ops[10].action = ops[10].action.map(|a| (a + 1) % spec.n_actions as i64);
        let r = check_sessions(&ops, policy.as_ref(), 7, 16).expect("check");
        assert_eq!(r.divergent_steps, 1);
        assert_eq!(r.double_owner_steps, 0);
        // A different seed is a different run: almost every step diverges.
        let r = check_sessions(&ops, policy.as_ref(), 8, 16).expect("check");
        assert!(r.divergent_steps > 0);
    }

    /// Session steps as a node answers them when the session moves from version 1 to 2 at
    /// seq 31 and is re-warmed over its last `window` observations.
    fn moved_session(policy: &dyn Policy, window: u64) -> Vec<Op> {
        let spec = policy.spec().clone();
        let pool = session_pool(7, 3, spec.obs_dim);
        let obs = |seq: u64| decode_f32(pool.payload(seq));
        let mut state = vec![0.0; spec.state_dim];
        let mut ops = Vec::new();
        for seq in 1..=40u64 {
            if seq == 31 {
                state = vec![0.0; spec.state_dim];
                for past in (31 - window)..31 {
                    state = policy
                        .forward(&obs(past), 1, &state)
                        .expect("forward")
                        .state;
                }
            }
            let out = policy.forward(&obs(seq), 1, &state).expect("forward");
            state = out.state;
            let mut op = step_op(3, seq, out.actions[0]);
            let version = if seq < 31 { 1 } else { 2 };
            op.served_by = Some(format!("n1/lstm@{version}/shard-0"));
            ops.push(op);
        }
        ops
    }

    /// The reference re-warms a session that changed version the way the node does, and only
    /// on a version change (the steps are all on one node here).
    #[test]
    fn a_version_move_is_re_warmed_like_the_node_does() {
        let policy = lstm();
        for window in [1, 16] {
            let ops = moved_session(policy.as_ref(), window);
            let r = check_sessions(&ops, policy.as_ref(), 7, window as usize).expect("check");
            assert_eq!(
                (
                    r.steps_checked,
                    r.divergent_steps,
                    r.version_moves,
                    r.node_moves
                ),
                (40, 0, 1, 0),
                "window {window}"
            );
        }
        // With a window of 1 the re-warmed state changes an action: a reference that carried
        // the state over instead would see it (the bundled LSTM forgets within a few steps,
        // so longer windows agree with the full history on every action).
        let ops = moved_session(policy.as_ref(), 1);
        let carried = check_sessions(&ops, policy.as_ref(), 7, 0).expect("check");
        assert!(carried.divergent_steps > 0);
    }
}

#[cfg(test)]
mod owner_tests {
    use super::OwnerCheck;

    #[test]
    fn a_stale_epoch_after_a_newer_one_is_a_double_owner_step() {
        let mut c = OwnerCheck::default();
        assert!(c.answer(1, 1, "a"));
        assert!(c.answer(1, 1, "a"));
        assert!(c.answer(1, 2, "b"), "b took the session over");
        assert!(!c.answer(1, 1, "a"), "a answered after b's takeover");
        assert!(!c.answer(1, 2, "c"), "one epoch, two nodes");
        assert!(c.answer(1, 3, "a"), "a re-acquired");
        assert!(c.answer(2, 1, "z"), "sessions are independent");
    }
}
