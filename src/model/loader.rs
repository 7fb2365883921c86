//! Turning a model version (a directory, or the same files in memory) into a verified
//! [`LoadedModel`]: manifest checksums, config, weights, and a golden-output check.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use serde::Deserialize;

use super::config::{Architecture, ModelConfig};
use super::error::ModelError;
use super::lstm::LstmActorCritic;
use super::manifest::{MANIFEST_FILE, Manifest, is_plain_file_name};
use super::mlp::MlpActorCritic;
use super::policy::{Policy, PolicySpec};
use super::weights::WEIGHTS_FILE;

/// The config file inside a model version.
pub const CONFIG_FILE: &str = "config.json";
/// The golden inputs/outputs file inside a model version.
pub const GOLDEN_FILE: &str = "golden.json";
/// Largest absolute difference from PyTorch's golden outputs the loader accepts.
pub const GOLDEN_TOLERANCE: f32 = 1e-4;

/// A verified model, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub name: String,
    pub version: String,
    pub config: ModelConfig,
    pub manifest: Manifest,
    pub policy: Arc<dyn Policy>,
}

impl LoadedModel {
    /// The policy's dimensions.
    pub fn spec(&self) -> &PolicySpec {
        self.policy.spec()
    }
}

/// Loads `<...>/<name>/<version>/` (the name and version are the last two path components).
/// Reads `manifest.json` and every file it lists; other files in the directory are ignored.
pub fn load_model_dir(dir: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    let component = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .map(str::to_string)
    };
    let (Some(version), Some(name)) = (component(Some(dir)), component(dir.parent())) else {
        return Err(ModelError::Repository {
            path: dir.display().to_string(),
            reason: "expected a `<name>/<version>` directory".into(),
        });
    };
    let read = |file: &str| {
        std::fs::read(dir.join(file)).map_err(|source| ModelError::Io {
            file: dir.join(file).display().to_string(),
            source,
        })
    };
    let manifest_bytes = read(MANIFEST_FILE)?;
    let manifest = Manifest::from_json(&manifest_bytes)?;
    let mut files = BTreeMap::new();
    for file in manifest.files.keys() {
        // `Manifest::from_json` has checked that the names are plain file names.
        debug_assert!(is_plain_file_name(file));
        let bytes = match read(file) {
            Err(ModelError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::MissingFile {
                    file: file.clone(),
                    reason: format!("listed in manifest.json but not in {}", dir.display()),
                });
            }
            other => other?,
        };
        files.insert(file.clone(), bytes);
    }
    files.insert(MANIFEST_FILE.to_string(), manifest_bytes);
    load_model_files(&name, &version, &files, device)
}

/// Loads a model version from its files in memory (file name → bytes, `manifest.json`
/// included), with the same checks as [`load_model_dir`].
pub fn load_model_files(
    name: &str,
    version: &str,
    files: &BTreeMap<String, Vec<u8>>,
    device: &Device,
) -> Result<LoadedModel, ModelError> {
    let get = |file: &str| {
        files.get(file).ok_or_else(|| ModelError::MissingFile {
            file: file.to_string(),
            reason: "not provided".into(),
        })
    };
    let manifest = Manifest::from_json(get(MANIFEST_FILE)?)?;
    manifest.check_identity(name, version)?;
    manifest.verify_files(files)?;
    let config = ModelConfig::from_json(get(CONFIG_FILE)?)?;
    let weights = get(WEIGHTS_FILE)?;
    let policy: Arc<dyn Policy> = match config.architecture {
        Architecture::MlpActorCritic => {
            Arc::new(MlpActorCritic::from_safetensors(&config, weights, device)?)
        }
        Architecture::LstmActorCritic => {
            Arc::new(LstmActorCritic::from_safetensors(&config, weights, device)?)
        }
    };
    check_golden(policy.as_ref(), get(GOLDEN_FILE)?)?;
    tracing::debug!(
        model = name,
        version,
        architecture = config.architecture.as_str(),
        "model loaded and golden outputs verified"
    );
    Ok(LoadedModel {
        name: name.to_string(),
        version: version.to_string(),
        config,
        manifest,
        policy,
    })
}

/// `golden.json`: a few inputs and the outputs PyTorch produced for them. Rows are nested
/// lists; `state` / `next_state` exist only for a recurrent policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Golden {
    batch: usize,
    obs: Vec<Vec<f32>>,
    #[serde(default)]
    state: Option<Vec<Vec<f32>>>,
    logits: Vec<Vec<f32>>,
    values: Vec<f32>,
    actions: Vec<i64>,
    #[serde(default)]
    next_state: Option<Vec<Vec<f32>>>,
}

fn flatten(
    what: &str,
    rows: &[Vec<f32>],
    batch: usize,
    width: usize,
) -> Result<Vec<f32>, ModelError> {
    if rows.len() != batch || rows.iter().any(|r| r.len() != width) {
        return Err(ModelError::Golden(format!(
            "`{what}` must be {batch} rows of {width} values"
        )));
    }
    Ok(rows.concat())
}

/// Runs `golden.json` through `policy`; refuses differences above [`GOLDEN_TOLERANCE`].
pub fn check_golden(policy: &dyn Policy, bytes: &[u8]) -> Result<(), ModelError> {
    let golden: Golden =
        serde_json::from_slice(bytes).map_err(|e| ModelError::Golden(e.to_string()))?;
    let spec = policy.spec().clone();
    let batch = golden.batch;
    if batch == 0 {
        return Err(ModelError::Golden("batch must be at least 1".into()));
    }
    let obs = flatten("obs", &golden.obs, batch, spec.obs_dim)?;
    let logits = flatten("logits", &golden.logits, batch, spec.n_actions)?;
    let (state, next_state) = match (spec.is_recurrent(), &golden.state, &golden.next_state) {
        (true, Some(s), Some(n)) => (
            flatten("state", s, batch, spec.state_dim)?,
            flatten("next_state", n, batch, spec.state_dim)?,
        ),
        (false, None, None) => (Vec::new(), Vec::new()),
        (true, _, _) => {
            return Err(ModelError::Golden(
                "a recurrent policy needs `state` and `next_state`".into(),
            ));
        }
        (false, _, _) => {
            return Err(ModelError::Golden(
                "`state` / `next_state` given for a stateless policy".into(),
            ));
        }
    };
    if golden.values.len() != batch || golden.actions.len() != batch {
        return Err(ModelError::Golden(format!(
            "`values` and `actions` must have {batch} entries"
        )));
    }
    let out = policy.forward(&obs, batch, &state)?;
    let compare = |what: &str, got: &[f32], want: &[f32], width: usize| {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let diff = (g - w).abs();
            if diff.is_nan() || diff > GOLDEN_TOLERANCE {
                return Err(ModelError::Golden(format!(
                    "row {} {what}[{}] = {g} but PyTorch gave {w} (|diff| {diff:.2e} > {GOLDEN_TOLERANCE:.0e})",
                    i / width,
                    i % width
                )));
            }
        }
        Ok(())
    };
    compare("logits", &out.logits, &logits, spec.n_actions)?;
    compare("values", &out.values, &golden.values, 1)?;
    compare("next_state", &out.state, &next_state, spec.state_dim.max(1))?;
    // Actions are compared where PyTorch's best logit is clearly ahead of the runner-up (a
    // near-tie may legitimately flip within the tolerance).
    for (r, row) in golden.logits.iter().enumerate() {
        let mut sorted = row.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let clear = sorted.len() < 2 || sorted[0] - sorted[1] > 2.0 * GOLDEN_TOLERANCE;
        if clear && out.actions[r] != golden.actions[r] {
            return Err(ModelError::Golden(format!(
                "row {r} action = {} but PyTorch gave {}",
                out.actions[r], golden.actions[r]
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use candle_core::Tensor;

    use super::*;
    use crate::model::manifest::sha256_hex;

    fn source_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name)
            .join("1")
    }

    /// Copies `models/<name>/1` to `<tmp>/<name>/1`.
    fn copy_model(tmp: &Path, name: &str) -> PathBuf {
        let dst = tmp.join(name).join("1");
        std::fs::create_dir_all(&dst).unwrap();
        for f in [
            "manifest.json",
            "config.json",
            "model.safetensors",
            "golden.json",
        ] {
            std::fs::copy(source_dir(name).join(f), dst.join(f)).unwrap();
        }
        dst
    }

    /// Rewrites `file` and updates its sha256/size in the manifest, so that loading gets past
    /// the checksum and reaches the check under test.
    fn replace_and_rehash(dir: &Path, file: &str, bytes: &[u8]) {
        std::fs::write(dir.join(file), bytes).unwrap();
        let path = dir.join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m["files"][file]["sha256"] = sha256_hex(bytes).into();
        m["files"][file]["size"] = bytes.len().into();
        std::fs::write(path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    /// Rewrites the weights with `edit` applied to the tensors.
    fn edit_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        edit(&mut tensors);
        let tmp = dir.join("edited.safetensors");
        candle_core::safetensors::save(&tensors, &tmp).unwrap();
        let edited = std::fs::read(&tmp).unwrap();
        std::fs::remove_file(&tmp).unwrap();
        replace_and_rehash(dir, WEIGHTS_FILE, &edited);
    }

    fn load_err(dir: &Path) -> String {
        load_model_dir(dir, &Device::Cpu).unwrap_err().to_string()
    }

    #[test]
    fn loads_both_reference_models_from_disk() {
        for (name, state_dim) in [("ppo_mlp", 0), ("lstm_policy", 256)] {
            let m = load_model_dir(&source_dir(name), &Device::Cpu).unwrap();
            assert_eq!((m.name.as_str(), m.version.as_str()), (name, "1"));
            assert_eq!(m.spec().state_dim, state_dim);
            assert_eq!(m.manifest.name, name);
        }
    }

    #[test]
    fn sha_mismatch_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "ppo_mlp");
        let mut bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        std::fs::write(dir.join(WEIGHTS_FILE), &bytes).unwrap();
        let err = load_err(&dir);
        let re = regex_like(&err);
        assert!(re, "{err}");
    }

    fn regex_like(err: &str) -> bool {
        // "model.safetensors: sha256 <64 hex> does not match manifest <64 hex>"
        let Some(rest) = err.strip_prefix("model.safetensors: sha256 ") else {
            return false;
        };
        let (actual, rest) = rest.split_at(64);
        let Some(expected) = rest.strip_prefix(" does not match manifest ") else {
            return false;
        };
        actual.bytes().all(|b| b.is_ascii_hexdigit()) && expected.len() == 64 && actual != expected
    }

    #[test]
    fn truncated_and_corrupt_weights_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "ppo_mlp");
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        replace_and_rehash(&dir, WEIGHTS_FILE, &bytes[..bytes.len() / 2]);
        let err = load_err(&dir);
        assert!(
            err.starts_with("model.safetensors: invalid safetensors: "),
            "{err}"
        );
        replace_and_rehash(&dir, WEIGHTS_FILE, &bytes[..5]);
        let err = load_err(&dir);
        assert!(
            err.starts_with("model.safetensors: invalid safetensors: "),
            "{err}"
        );
        let mut garbage = bytes.clone();
        garbage[8..16].copy_from_slice(b"{\"x\":[1,");
        replace_and_rehash(&dir, WEIGHTS_FILE, &garbage);
        let err = load_err(&dir);
        assert!(
            err.starts_with("model.safetensors: invalid safetensors: "),
            "{err}"
        );
    }

    #[test]
    fn wrong_shape_names_the_tensor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "ppo_mlp");
        edit_weights(&dir, |t| {
            let w = &t["mlp_extractor.policy_net.0.weight"];
            let narrowed = w.narrow(1, 0, 31).unwrap().contiguous().unwrap();
            t.insert("mlp_extractor.policy_net.0.weight".into(), narrowed);
        });
        assert_eq!(
            load_err(&dir),
            "model.safetensors: tensor `mlp_extractor.policy_net.0.weight` has shape [64, 31], \
             expected [64, 32]"
        );
    }

    #[test]
    fn missing_unexpected_and_wrong_dtype_tensors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "lstm_policy");
        edit_weights(&dir, |t| {
            t.remove("lstm_critic.bias_hh_l0");
        });
        assert_eq!(
            load_err(&dir),
            "model.safetensors: missing tensor `lstm_critic.bias_hh_l0`"
        );

        let dir = copy_model(tmp.path(), "ppo_mlp");
        edit_weights(&dir, |t| {
            let extra = t["value_net.bias"].clone();
            t.insert("log_std".into(), extra);
        });
        assert_eq!(
            load_err(&dir),
            "model.safetensors: unexpected tensor `log_std` (not part of this architecture)"
        );

        let dir = copy_model(tmp.path(), "ppo_mlp");
        edit_weights(&dir, |t| {
            let half = t["action_net.weight"]
                .to_dtype(candle_core::DType::F16)
                .unwrap();
            t.insert("action_net.weight".into(), half);
        });
        assert_eq!(
            load_err(&dir),
            "model.safetensors: tensor `action_net.weight` has dtype F16, expected F32"
        );
    }

    #[test]
    fn config_problems_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "ppo_mlp");
        let config = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
        let unknown = config.replace("mlp_actor_critic", "decision_transformer");
        replace_and_rehash(&dir, CONFIG_FILE, unknown.as_bytes());
        assert!(
            load_err(&dir).starts_with("config.json: unknown architecture `decision_transformer`")
        );
        // An LSTM config over MLP weights: the first LSTM tensor is missing.
        let lstm = std::fs::read(source_dir("lstm_policy").join(CONFIG_FILE)).unwrap();
        replace_and_rehash(&dir, CONFIG_FILE, &lstm);
        assert_eq!(
            load_err(&dir),
            "model.safetensors: missing tensor `lstm_actor.weight_ih_l0`"
        );
        // obs_dim disagreeing with the weights.
        let wrong = config.replace("\"obs_dim\": 32", "\"obs_dim\": 33");
        assert_ne!(wrong, config);
        replace_and_rehash(&dir, CONFIG_FILE, wrong.as_bytes());
        assert_eq!(
            load_err(&dir),
            "model.safetensors: tensor `mlp_extractor.policy_net.0.weight` has shape [64, 32], \
             expected [64, 33]"
        );
    }

    #[test]
    fn golden_mismatch_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "lstm_policy");
        let mut golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(GOLDEN_FILE)).unwrap()).unwrap();
        let v = golden["next_state"][2][5].as_f64().unwrap();
        golden["next_state"][2][5] = (v + 1e-3).into();
        replace_and_rehash(&dir, GOLDEN_FILE, &serde_json::to_vec(&golden).unwrap());
        let err = load_err(&dir);
        assert!(
            err.starts_with("golden.json: row 2 next_state[5] = "),
            "{err}"
        );
        assert!(err.contains("> 1e-4"), "{err}");

        golden["next_state"][2].as_array_mut().unwrap().pop();
        replace_and_rehash(&dir, GOLDEN_FILE, &serde_json::to_vec(&golden).unwrap());
        assert_eq!(
            load_err(&dir),
            "golden.json: `next_state` must be 4 rows of 256 values"
        );
    }

    #[test]
    fn missing_files_and_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(tmp.path(), "ppo_mlp");
        std::fs::remove_file(dir.join(GOLDEN_FILE)).unwrap();
        assert!(
            load_err(&dir).starts_with("golden.json: missing (listed in manifest.json but not in ")
        );
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        assert!(load_err(&dir).contains("manifest.json: "));

        // The same files under another name are refused.
        let files: BTreeMap<String, Vec<u8>> = [
            "manifest.json",
            "config.json",
            "model.safetensors",
            "golden.json",
        ]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(source_dir("ppo_mlp").join(f)).unwrap(),
            )
        })
        .collect();
        let err = load_model_files("other", "1", &files, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "manifest.json: describes ppo_mlp/1 but was loaded as other/1"
        );
        load_model_files("ppo_mlp", "1", &files, &Device::Cpu).unwrap();
    }
}
