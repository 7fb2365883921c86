//! Writes a new model version into a repository, in the layout and with the checks the loader
//! applies: `config.json`, `model.safetensors`, `golden.json` (inputs and the outputs this
//! version computes for them) and, last, `manifest.json` with the sha256 of each. The version is
//! assembled in a hidden folder and renamed into place, so a half-written version is never
//! visible, then loaded back through the full verification.
//!
//! Golden outputs written here pin what the version computes at the moment it is written, so a
//! later change to its files or to the runtime's arithmetic is caught at load. Parity with
//! PyTorch itself is what `models/export.py` and the parity fixtures establish for each
//! architecture.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use candle_core::{DType, Device, Tensor};
use serde_json::json;

use super::{
    LoadedModel, ModelConfig, ModelError, ModelRepository, Policy,
    config::Architecture,
    loader::{CONFIG_FILE, GOLDEN_FILE, load_model_dir},
    lstm::LstmActorCritic,
    manifest::{FileEntry, MANIFEST_FILE, MANIFEST_FORMAT_VERSION, Manifest, sha256_hex},
    mlp::MlpActorCritic,
    weights::WEIGHTS_FILE,
};

/// Rows of golden inputs a written version carries.
pub const GOLDEN_ROWS: usize = 4;

/// A version to write.
#[derive(Debug)]
pub struct NewVersion {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its weights, by SB3 `state_dict` name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Provenance recorded in the manifest's `trained_by`.
    pub trained_by: String,
    /// Tool versions recorded in the manifest.
    pub frameworks: BTreeMap<String, String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        file: path.display().to_string(),
        source,
    }
}

fn candle(file: &str) -> impl FnOnce(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::Safetensors {
        file: file.to_owned(),
        reason: e.to_string(),
    }
}

/// Deterministic golden inputs (a fixed pseudo-random sequence, roughly N(0, 1)).
pub fn golden_inputs(rows: usize, width: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        // xorshift64*, then the sum of four uniforms (Irwin-Hall) centred and scaled.
        let mut s = 0.0;
        for _ in 0..4 {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let u = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f64 / (1u64 << 24) as f64;
            s += u;
        }
        ((s - 2.0) * 3f64.sqrt()) as f32
    };
    (0..rows)
        .map(|_| (0..width).map(|_| (next() * 1e4).round() / 1e4).collect())
        .collect()
}

fn policy(config: &ModelConfig, weights: &[u8]) -> Result<Box<dyn Policy>, ModelError> {
    Ok(match config.architecture {
        Architecture::MlpActorCritic => Box::new(MlpActorCritic::from_safetensors(
            config,
            weights,
            &Device::Cpu,
        )?),
        Architecture::LstmActorCritic => Box::new(LstmActorCritic::from_safetensors(
            config,
            weights,
            &Device::Cpu,
        )?),
    })
}

fn rows(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
    flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

/// The `golden.json` of a policy: its outputs for [`golden_inputs`].
fn golden(policy: &dyn Policy, seed: u64) -> Result<Vec<u8>, ModelError> {
    let spec = policy.spec().clone();
    let obs = golden_inputs(GOLDEN_ROWS, spec.obs_dim, seed);
    let state = golden_inputs(GOLDEN_ROWS, spec.state_dim, seed ^ 0x5eed)
        .into_iter()
        .map(|r| r.into_iter().map(|v| v * 0.1).collect::<Vec<f32>>())
        .collect::<Vec<_>>();
    let flat_state: Vec<f32> = if spec.is_recurrent() {
        state.concat()
    } else {
        Vec::new()
    };
    let out = policy
        .forward(&obs.concat(), GOLDEN_ROWS, &flat_state)
        .map_err(|e| ModelError::Golden(format!("computing golden outputs: {e}")))?;
    let mut doc = json!({
        "batch": GOLDEN_ROWS,
        "obs": obs,
        "logits": rows(&out.logits, spec.n_actions),
        "values": out.values,
        "actions": out.actions,
    });
    if spec.is_recurrent() {
        doc["state"] = json!(state);
        doc["next_state"] = json!(rows(&out.state, spec.state_dim));
    }
    serde_json::to_vec(&doc).map_err(|e| ModelError::Golden(e.to_string()))
}

/// Writes `new` into `repository` and returns it loaded and verified. Refuses to overwrite an
/// existing version.
pub fn write_version(
    repository: &ModelRepository,
    new: NewVersion,
) -> Result<LoadedModel, ModelError> {
    let model_dir = repository.root().join(&new.name);
    let final_dir = repository.version_dir(&new.name, new.version);
    if final_dir.exists() {
        return Err(ModelError::Repository {
            path: final_dir.display().to_string(),
            reason: "this version already exists; versions are immutable, pick a new number".into(),
        });
    }
    new.config.validate()?;
    std::fs::create_dir_all(&model_dir).map_err(io(&model_dir))?;
    let staging = model_dir.join(format!(".{}.partial-{}", new.version, std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let result = write_files(&staging, &new).and_then(|()| {
        std::fs::rename(&staging, &final_dir).map_err(io(&final_dir))?;
        load_model_dir(&final_dir, &Device::Cpu)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn write_files(dir: &Path, new: &NewVersion) -> Result<(), ModelError> {
    let weights_path = dir.join(WEIGHTS_FILE);
    let tensors: HashMap<&str, Tensor> = new
        .tensors
        .iter()
        .map(|(k, t)| {
            t.to_dtype(DType::F32)
                .and_then(|t| t.to_device(&Device::Cpu))
                .map(|t| (k.as_str(), t))
                .map_err(candle(WEIGHTS_FILE))
        })
        .collect::<Result<_, _>>()?;
    candle_core::safetensors::save(&tensors, &weights_path).map_err(candle(WEIGHTS_FILE))?;
    let weights = std::fs::read(&weights_path).map_err(io(&weights_path))?;
    let config =
        serde_json::to_vec_pretty(&new.config).map_err(|e| ModelError::Config(e.to_string()))?;
    let golden = golden(policy(&new.config, &weights)?.as_ref(), new.version)?;
    let mut files = BTreeMap::new();
    for (name, bytes) in [
        (CONFIG_FILE, &config),
        (GOLDEN_FILE, &golden),
        (WEIGHTS_FILE, &weights),
    ] {
        if name != WEIGHTS_FILE {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        files.insert(
            name.to_owned(),
            FileEntry {
                sha256: sha256_hex(bytes),
                size: Some(bytes.len() as u64),
            },
        );
    }
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        name: new.name.clone(),
        version: new.version.to_string(),
        created_at: chrono::Utc::now(),
        trained_by: new.trained_by.clone(),
        frameworks: new.frameworks.clone(),
        files,
    };
    let path = dir.join(MANIFEST_FILE);
    let bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ModelError::Manifest(e.to_string()))?;
    std::fs::write(&path, bytes).map_err(io(&path))
}

/// A new version of `name` derived from the weights of an existing one: `change` edits the
/// tensors (e.g. a perturbation, for tests and chaos fixtures of a diverging version).
pub fn derive_version(
    repository: &ModelRepository,
    name: &str,
    from: u64,
    to: u64,
    trained_by: &str,
    change: impl FnOnce(&mut BTreeMap<String, Tensor>) -> Result<(), candle_core::Error>,
) -> Result<LoadedModel, ModelError> {
    let source = repository.load(name, from, &Device::Cpu)?;
    let path = repository.version_dir(name, from).join(WEIGHTS_FILE);
    let mut tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(candle(WEIGHTS_FILE))?
        .into_iter()
        .collect();
    change(&mut tensors).map_err(candle(WEIGHTS_FILE))?;
    write_version(
        repository,
        NewVersion {
            name: name.to_owned(),
            version: to,
            config: source.config.clone(),
            tensors,
            trained_by: trained_by.to_owned(),
            frameworks: BTreeMap::from([("fudo".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with_v1() -> (tempfile::TempDir, ModelRepository) {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["ppo_mlp", "lstm_policy"] {
            let src = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("models")
                .join(name)
                .join("1");
            let dst = tmp.path().join(name).join("1");
            std::fs::create_dir_all(&dst).unwrap();
            for f in ["manifest.json", CONFIG_FILE, WEIGHTS_FILE, GOLDEN_FILE] {
                std::fs::copy(src.join(f), dst.join(f)).unwrap();
            }
        }
        let repo = ModelRepository::open(tmp.path()).unwrap();
        (tmp, repo)
    }

    #[test]
    fn golden_inputs_are_deterministic_and_spread() {
        let a = golden_inputs(4, 32, 7);
        assert_eq!(a, golden_inputs(4, 32, 7));
        assert_ne!(a, golden_inputs(4, 32, 8));
        let all: Vec<f32> = a.concat();
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        assert!(mean.abs() < 0.5, "{mean}");
        assert!(all.iter().any(|v| *v > 0.5) && all.iter().any(|v| *v < -0.5));
    }

    #[test]
    fn derived_versions_load_verified_and_are_immutable() {
        let (_tmp, repo) = repo_with_v1();
        for name in ["ppo_mlp", "lstm_policy"] {
            let v2 = derive_version(&repo, name, 1, 2, "test: same weights", |_| Ok(())).unwrap();
            assert_eq!(v2.version, "2");
            assert_eq!(repo.versions(name).unwrap(), vec![1, 2]);
            // Same weights, same answers as version 1 on version 2's golden inputs.
            let v1 = repo.load(name, 1, &Device::Cpu).unwrap();
            let spec = v1.spec().clone();
            let obs = golden_inputs(2, spec.obs_dim, 3).concat();
            let state = vec![0.0; 2 * spec.state_dim];
            assert_eq!(
                v1.policy.forward(&obs, 2, &state).unwrap(),
                v2.policy.forward(&obs, 2, &state).unwrap()
            );
            let again = derive_version(&repo, name, 1, 2, "again", |_| Ok(()));
            assert!(again.unwrap_err().to_string().contains("already exists"));
        }
        // A diverging version: the action head's weights negated.
        let v3 = derive_version(&repo, "ppo_mlp", 1, 3, "test: negated head", |t| {
            let w = t["action_net.weight"].neg()?;
            t.insert("action_net.weight".into(), w);
            Ok(())
        })
        .unwrap();
        let v1 = repo.load("ppo_mlp", 1, &Device::Cpu).unwrap();
        let obs = golden_inputs(8, 32, 11).concat();
        let (a, b) = (
            v1.policy.forward(&obs, 8, &[]).unwrap(),
            v3.policy.forward(&obs, 8, &[]).unwrap(),
        );
        assert_ne!(a.actions, b.actions);
        // No staging folder is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(repo.root().join("ppo_mlp"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }
}
