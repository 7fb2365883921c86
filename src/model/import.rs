//! `fudo models import`: turns what ML engineers already have — a stable-baselines3 `.zip`
//! (`PPO.save(...)`) or a PyTorch `state_dict` file (`torch.save(policy.state_dict(), ...)`) —
//! into a verified model version, with no hand-written export step.
//!
//! The tensors are read with candle's PyTorch pickle reader (the zip format of PyTorch ≥ 1.6;
//! nothing is unpickled beyond tensor metadata, so a file cannot run code). The architecture is
//! read off the tensors: SB3's `MlpPolicy` for discrete actions, i.e. `mlp_extractor.policy_net`
//! and `value_net` layers, `action_net` and `value_net`. The hidden activation is not in the
//! state_dict; SB3's default (tanh) is assumed unless told otherwise. A stable-baselines3 zip's
//! `data` also gives the observation and action space sizes, checked against the tensors.
//! The version is written by [`super::writer`], which computes its golden outputs.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use candle_core::Tensor;

use super::{
    LoadedModel, ModelConfig, ModelError, ModelRepository,
    config::{Activation, Architecture, InputNames, NetArch, OutputNames},
    manifest::sha256_hex,
    writer::{NewVersion, write_version},
};

/// What to import as.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Model name in the repository.
    pub name: String,
    /// Version number (default: one above the newest).
    pub version: Option<u64>,
    /// Hidden-layer activation (not recorded in a state_dict).
    pub activation: Activation,
}

/// The kind of file imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A stable-baselines3 save, with its SB3 version.
    StableBaselines3(String),
    /// A bare PyTorch state_dict.
    StateDict,
}

fn bad(file: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Import {
        file: file.display().to_string(),
        reason: reason.into(),
    }
}

/// The SB3 `data` entries the import checks against the tensors.
#[derive(Debug, Default)]
struct Sb3Spaces {
    obs_dim: Option<usize>,
    n_actions: Option<usize>,
}

fn sb3_spaces(data: &serde_json::Value) -> Sb3Spaces {
    let dim = |v: &serde_json::Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
    let shape = &data["observation_space"]["_shape"];
    Sb3Spaces {
        obs_dim: shape
            .as_array()
            .filter(|s| s.len() == 1)
            .and_then(|s| dim(&s[0])),
        n_actions: dim(&data["action_space"]["n"]),
    }
}

/// What an imported file holds.
#[derive(Debug)]
pub struct SourceTensors {
    /// The state_dict.
    pub tensors: BTreeMap<String, Tensor>,
    /// What the file was.
    pub kind: SourceKind,
    /// Observation size and action count, when the file says (SB3's `data`).
    pub spaces: Option<(usize, usize)>,
}

/// Reads the tensors of an SB3 zip or a state_dict file.
pub fn read_tensors(file: &Path) -> Result<SourceTensors, ModelError> {
    let not_zip = || {
        bad(
            file,
            "not a zip archive: expected a stable-baselines3 .zip (PPO.save) or a state_dict saved by torch.save with PyTorch >= 1.6",
        )
    };
    let handle = std::fs::File::open(file).map_err(|source| ModelError::Io {
        file: file.display().to_string(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(handle)).map_err(|_| not_zip())?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(file, format!("unreadable zip directory: {e}")))?;
    let (kind, spaces, pth): (SourceKind, Sb3Spaces, Option<tempfile::NamedTempFile>) = if names
        .iter()
        .any(|n| n == "policy.pth")
    {
        let mut read_entry = |name: &str| -> Result<Vec<u8>, ModelError> {
            let mut bytes = Vec::new();
            zip.by_name(name)
                .map_err(|e| bad(file, format!("{name}: {e}")))?
                .read_to_end(&mut bytes)
                .map_err(|e| bad(file, format!("{name}: {e}")))?;
            Ok(bytes)
        };
        let version = read_entry("_stable_baselines3_version")
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_else(|_| "unknown version".into());
        let spaces = match read_entry("data") {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(|d| sb3_spaces(&d))
                .unwrap_or_default(),
            Err(_) => Sb3Spaces::default(),
        };
        let policy = read_entry("policy.pth")?;
        let mut tmp = tempfile::NamedTempFile::new().map_err(|source| ModelError::Io {
            file: "policy.pth (temporary copy)".into(),
            source,
        })?;
        std::io::Write::write_all(&mut tmp, &policy).map_err(|source| ModelError::Io {
            file: "policy.pth (temporary copy)".into(),
            source,
        })?;
        (SourceKind::StableBaselines3(version), spaces, Some(tmp))
    } else if names.iter().any(|n| n.ends_with("data.pkl")) {
        (SourceKind::StateDict, Sb3Spaces::default(), None)
    } else {
        return Err(bad(
            file,
            "neither a stable-baselines3 zip (no policy.pth inside) nor a PyTorch file (no data.pkl inside)",
        ));
    };
    let path: PathBuf = pth
        .as_ref()
        .map_or_else(|| file.to_owned(), |t| t.path().to_owned());
    let tensors: BTreeMap<String, Tensor> = candle_core::pickle::read_all(&path)
        .map_err(|e| bad(file, format!("reading PyTorch tensors: {e}")))?
        .into_iter()
        .collect();
    if tensors.is_empty() {
        return Err(bad(
            file,
            "no tensors found: save the policy's state_dict (torch.save(model.policy.state_dict(), path)), not a pickled module",
        ));
    }
    Ok(SourceTensors {
        tensors,
        kind,
        spaces: spaces.obs_dim.zip(spaces.n_actions),
    })
}

/// The layer sizes of `prefix.<i>.weight` tensors, in index order: (out, in) per layer.
fn layers(
    file: &Path,
    tensors: &BTreeMap<String, Tensor>,
    prefix: &str,
) -> Result<Vec<(usize, usize)>, ModelError> {
    let mut indexed: Vec<(usize, (usize, usize))> = Vec::new();
    for (name, t) in tensors {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(index) = rest.strip_suffix(".weight") else {
            continue;
        };
        let index: usize = index
            .parse()
            .map_err(|_| bad(file, format!("unexpected tensor `{name}`")))?;
        let (out, inp) = t
            .dims2()
            .map_err(|_| bad(file, format!("`{name}` is not a matrix: {:?}", t.dims())))?;
        indexed.push((index, (out, inp)));
    }
    indexed.sort_unstable();
    Ok(indexed.into_iter().map(|(_, d)| d).collect())
}

/// The config of the SB3 `MlpPolicy` these tensors are.
pub fn mlp_config(
    file: &Path,
    tensors: &BTreeMap<String, Tensor>,
    activation: Activation,
) -> Result<ModelConfig, ModelError> {
    for name in tensors.keys() {
        let known = [
            "mlp_extractor.policy_net.",
            "mlp_extractor.value_net.",
            "action_net.",
            "value_net.",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        if known {
            continue;
        }
        let reason = if name == "log_std" {
            format!(
                "`{name}`: a continuous-action (Gaussian) policy; fudo serves discrete-action policies"
            )
        } else if name.contains("lstm") {
            format!(
                "`{name}`: a recurrent policy (sb3-contrib RecurrentPPO); export it with models/export.py"
            )
        } else if name.contains("features_extractor") {
            format!(
                "`{name}`: a policy with its own features extractor (e.g. a CNN); only MlpPolicy is imported"
            )
        } else {
            format!("unexpected tensor `{name}`: not part of an SB3 MlpPolicy")
        };
        return Err(bad(file, reason));
    }
    let pi = layers(file, tensors, "mlp_extractor.policy_net.")?;
    let vf = layers(file, tensors, "mlp_extractor.value_net.")?;
    let head = |name: &str| {
        tensors
            .get(name)
            .ok_or_else(|| bad(file, format!("missing tensor `{name}`")))
            .and_then(|t| {
                t.dims2()
                    .map_err(|_| bad(file, format!("`{name}` is not a matrix: {:?}", t.dims())))
            })
    };
    let (n_actions, _) = head("action_net.weight")?;
    let obs_dim = pi
        .first()
        .or(vf.first())
        .map(|&(_, inp)| inp)
        .or_else(|| head("action_net.weight").ok().map(|(_, inp)| inp))
        .ok_or_else(|| bad(file, "cannot tell the observation size"))?;
    let config = ModelConfig {
        format_version: super::config::CONFIG_FORMAT_VERSION,
        architecture: Architecture::MlpActorCritic,
        obs_dim,
        n_actions,
        net_arch: NetArch {
            pi: pi.iter().map(|&(out, _)| out).collect(),
            vf: vf.iter().map(|&(out, _)| out).collect(),
        },
        activation,
        lstm_hidden_size: None,
        dtype: "float32".into(),
        inputs: InputNames {
            obs: "obs".into(),
            state: None,
        },
        outputs: OutputNames {
            logits: "logits".into(),
            values: "values".into(),
            actions: "actions".into(),
            state: None,
        },
    };
    config.validate()?;
    Ok(config)
}

/// Imports `file` into `repository` as a new verified version.
pub fn import(
    repository: &ModelRepository,
    file: &Path,
    options: &ImportOptions,
) -> Result<LoadedModel, ModelError> {
    let bytes = std::fs::read(file).map_err(|source| ModelError::Io {
        file: file.display().to_string(),
        source,
    })?;
    let SourceTensors {
        tensors,
        kind,
        spaces,
    } = read_tensors(file)?;
    let config = mlp_config(file, &tensors, options.activation)?;
    if let Some((obs_dim, n_actions)) = spaces
        && (obs_dim, n_actions) != (config.obs_dim, config.n_actions)
    {
        return Err(bad(
            file,
            format!(
                "the SB3 data says observations of {obs_dim} and {n_actions} actions, the tensors say {} and {}",
                config.obs_dim, config.n_actions
            ),
        ));
    }
    let version = match options.version {
        Some(v) => v,
        None => repository.latest_version(&options.name)?.unwrap_or(0) + 1,
    };
    let source = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (what, mut frameworks) = match &kind {
        SourceKind::StableBaselines3(v) => (
            "a stable-baselines3 save",
            BTreeMap::from([("stable_baselines3".to_owned(), v.clone())]),
        ),
        SourceKind::StateDict => ("a PyTorch state_dict", BTreeMap::new()),
    };
    frameworks.insert("fudo".into(), env!("CARGO_PKG_VERSION").into());
    write_version(
        repository,
        NewVersion {
            name: options.name.clone(),
            version,
            config,
            tensors,
            trained_by: format!(
                "fudo models import of {what}, {source} (sha256 {}); golden outputs computed at import",
                sha256_hex(&bytes)
            ),
            frameworks,
        },
    )
}

#[cfg(test)]
mod tests;
