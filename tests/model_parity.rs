//! The candle policies against the outputs PyTorch produced (`models/<name>/fixtures/`,
//! written by `models/export.py`), to 1e-5 absolute.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use fudo::model::{LoadedModel, Policy, bundled_models, load_model_dir};
use serde::Deserialize;

const TOL: f32 = 1e-5;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn load(name: &str) -> LoadedModel {
    load_model_dir(&models_dir().join(name).join("1"), &Device::Cpu).unwrap()
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = models_dir().join(name).join("fixtures/parity.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL,
            "{what}[{i}]: candle {g}, PyTorch {w}, |diff| {:e}",
            (g - w).abs()
        );
    }
}

/// Greedy actions must match unless PyTorch's top two logits are within the tolerance.
fn assert_actions(what: &str, got: &[i64], want: &[i64], logits: &[Vec<f32>]) {
    for (r, row) in logits.iter().enumerate() {
        let mut sorted = row.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 2.0 * TOL {
            assert_eq!(got[r], want[r], "{what}: action of row {r}");
        }
    }
}

#[derive(Deserialize)]
struct MlpOutputs {
    logits: Vec<Vec<f32>>,
    values: Vec<f32>,
    actions: Vec<i64>,
}

#[derive(Deserialize)]
struct MlpFixture {
    obs: Vec<Vec<f32>>,
    batch1: MlpOutputs,
    full_batch: MlpOutputs,
}

fn check_mlp(policy: &Arc<dyn Policy>) {
    let fx: MlpFixture = fixture("ppo_mlp");
    let n = fx.obs.len();
    assert!(n >= 64);
    // Batch 1, row by row, against PyTorch at batch 1.
    for (r, obs) in fx.obs.iter().enumerate() {
        let out = policy.forward(obs, 1, &[]).unwrap();
        assert_close(
            &format!("batch1 row {r} logits"),
            &out.logits,
            &fx.batch1.logits[r],
        );
        assert_close(
            &format!("batch1 row {r} value"),
            &out.values,
            &fx.batch1.values[r..=r],
        );
        assert_actions(
            "batch1",
            &out.actions,
            &fx.batch1.actions[r..=r],
            &fx.batch1.logits[r..=r],
        );
        assert!(out.state.is_empty());
    }
    // The whole batch at once, against PyTorch's full batch.
    let out = policy.forward(&fx.obs.concat(), n, &[]).unwrap();
    assert_close(
        "full batch logits",
        &out.logits,
        &fx.full_batch.logits.concat(),
    );
    assert_close("full batch values", &out.values, &fx.full_batch.values);
    assert_actions(
        "full batch",
        &out.actions,
        &fx.full_batch.actions,
        &fx.full_batch.logits,
    );
    // The actions are not trivial.
    let distinct: std::collections::BTreeSet<_> = out.actions.iter().collect();
    assert!(
        distinct.len() >= 2,
        "the trained policy always picks {distinct:?}"
    );
}

#[derive(Deserialize)]
struct LstmSequence {
    episode_starts: Vec<bool>,
    obs: Vec<Vec<f32>>,
    logits: Vec<Vec<f32>>,
    values: Vec<f32>,
    actions: Vec<i64>,
    states: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct LstmFixture {
    state_layout: Vec<String>,
    sequences: Vec<LstmSequence>,
}

fn check_lstm(policy: &Arc<dyn Policy>) {
    let fx: LstmFixture = fixture("lstm_policy");
    assert_eq!(
        fx.state_layout,
        ["h_actor", "c_actor", "h_critic", "c_critic"]
    );
    assert!(fx.sequences.len() >= 2);
    let sd = policy.spec().state_dim;
    assert_eq!(sd, 256);

    // Each sequence on its own at batch 1, carrying the state from step to step.
    for (s, seq) in fx.sequences.iter().enumerate() {
        assert!(seq.obs.len() >= 20);
        let mut state = vec![0f32; sd];
        for t in 0..seq.obs.len() {
            if seq.episode_starts[t] {
                state.fill(0.0);
            }
            let out = policy.forward(&seq.obs[t], 1, &state).unwrap();
            let at = format!("sequence {s} step {t}");
            assert_close(&format!("{at} logits"), &out.logits, &seq.logits[t]);
            assert_close(&format!("{at} value"), &out.values, &seq.values[t..=t]);
            assert_close(&format!("{at} state"), &out.state, &seq.states[t]);
            assert_actions(&at, &out.actions, &seq.actions[t..=t], &seq.logits[t..=t]);
            state = out.state;
        }
    }

    // All sequences together as a batch of independent sessions, one state row each.
    let batch = fx.sequences.len();
    let steps = fx.sequences[0].obs.len();
    let mut state = vec![0f32; batch * sd];
    for t in 0..steps {
        let mut obs = Vec::new();
        for (s, seq) in fx.sequences.iter().enumerate() {
            if seq.episode_starts[t] {
                state[s * sd..(s + 1) * sd].fill(0.0);
            }
            obs.extend_from_slice(&seq.obs[t]);
        }
        let out = policy.forward(&obs, batch, &state).unwrap();
        for (s, seq) in fx.sequences.iter().enumerate() {
            let at = format!("batched sequence {s} step {t}");
            let n = seq.logits[t].len();
            assert_close(
                &format!("{at} logits"),
                &out.logits[s * n..(s + 1) * n],
                &seq.logits[t],
            );
            assert_close(
                &format!("{at} value"),
                &out.values[s..=s],
                &seq.values[t..=t],
            );
            assert_close(
                &format!("{at} state"),
                &out.state[s * sd..(s + 1) * sd],
                &seq.states[t],
            );
        }
        state = out.state;
    }
}

#[test]
fn mlp_matches_pytorch() {
    let m = load("ppo_mlp");
    check_mlp(&m.policy);
}

#[test]
fn lstm_matches_pytorch_step_by_step() {
    let m = load("lstm_policy");
    check_lstm(&m.policy);
}

#[test]
fn bundled_models_load_and_match() {
    let models = bundled_models(&Device::Cpu).unwrap();
    let names: Vec<_> = models
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str()))
        .collect();
    assert_eq!(names, [("ppo_mlp", "1"), ("lstm_policy", "1")]);
    // The embedded bytes are the files on disk.
    for m in &models {
        let on_disk = load(&m.name);
        assert_eq!(m.manifest, on_disk.manifest);
        assert_eq!(m.config, on_disk.config);
    }
    check_mlp(&models[0].policy);
    check_lstm(&models[1].policy);
}

#[test]
fn policies_are_shareable_across_threads() {
    let models = bundled_models(&Device::Cpu).unwrap();
    let fx: MlpFixture = fixture("ppo_mlp");
    let policy = models[0].policy.clone();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let policy = policy.clone();
            let obs = fx.obs[i].clone();
            std::thread::spawn(move || policy.forward(&obs, 1, &[]).unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert_close("threaded logits", &out.logits, &fx.batch1.logits[i]);
    }
}
