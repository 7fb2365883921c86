//! `fudo models`: what a model repository holds, and whether each version would be admitted.
//!
//! A version is admitted only if it loads the way a node loads it: every file's sha256 matches
//! the manifest, the config is valid for the weights, and the golden inputs produce the golden
//! outputs. `verify` runs exactly that check (on the CPU), so ML engineers see a refusal — with
//! the file it names — before a node does. `import` turns a stable-baselines3 save or a PyTorch
//! state_dict into such a version (see `model::import`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::model::{
    Activation, LoadedModel, ModelRepository,
    import::{ImportOptions, import},
};

/// Arguments of `fudo models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// The model repository (`<repo>/<name>/<version>/`).
    #[arg(long, default_value = "models", env = "FUDO_MODELS_REPOSITORY")]
    pub repo: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// `fudo models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every model and its complete versions (folders with a manifest.json).
    List,
    /// One version (default: the latest), verified: manifest, files, dimensions.
    Show {
        /// Model name.
        name: String,
        /// Version (default: the latest).
        version: Option<u64>,
    },
    /// Import a stable-baselines3 `.zip` (PPO.save) or a PyTorch state_dict file (torch.save)
    /// as a new verified version, with golden outputs computed at import.
    Import {
        /// The file to import.
        file: PathBuf,
        /// Model name in the repository.
        #[arg(long)]
        name: String,
        /// Version number (default: one above the newest).
        #[arg(long)]
        version: Option<u64>,
        /// Hidden-layer activation (a state_dict does not record it; SB3's default is tanh).
        #[arg(long, default_value = "tanh", value_parser = ["tanh", "relu"])]
        activation: String,
    },
    /// Verify versions as a node would admit them; exits non-zero if any is refused.
    Verify {
        /// Model name (default: every model).
        name: Option<String>,
        /// Version (default: every version of the model).
        version: Option<u64>,
    },
}

/// The outcome of verifying one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// `None` when admitted; otherwise why not (naming the file).
    pub error: Option<String>,
}

/// Verifies the selected versions of `repo`, calling `progress` after each.
///
/// # Errors
///
/// If the repository or the named model cannot be read.
pub fn verify(
    repo: &Path,
    name: Option<&str>,
    version: Option<u64>,
    mut progress: impl FnMut(&Verification),
) -> anyhow::Result<Vec<Verification>> {
    let repository = ModelRepository::open(repo)?;
    let listed = repository.list()?;
    let names: Vec<String> = match name {
        Some(n) => {
            anyhow::ensure!(
                listed.contains_key(n),
                "no model `{n}` in {} (models: {:?})",
                repo.display(),
                listed.keys().collect::<Vec<_>>()
            );
            vec![n.to_owned()]
        }
        None => listed.keys().cloned().collect(),
    };
    let device = candle_core::Device::Cpu;
    let mut out = Vec::new();
    for n in names {
        let versions = match version {
            Some(v) => vec![v],
            None => listed.get(&n).cloned().unwrap_or_default(),
        };
        for v in versions {
            let result = Verification {
                name: n.clone(),
                version: v,
                error: repository.load(&n, v, &device).err().map(|e| e.to_string()),
            };
            progress(&result);
            out.push(result);
        }
    }
    Ok(out)
}

/// Runs `fudo models`.
pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    match args.command {
        ModelsCommand::List => {
            let repository = ModelRepository::open(&args.repo)?;
            let listed = repository.list()?;
            let mut doc = serde_json::Map::new();
            for (name, versions) in &listed {
                let released = repository.released_version(name)?;
                if !args.json {
                    let latest = versions.last().map_or("-".to_owned(), u64::to_string);
                    let released =
                        released.map_or("- (nodes serve the latest)".to_owned(), |v| v.to_string());
                    println!("{name}: versions {versions:?}, latest {latest}, released {released}");
                }
                doc.insert(
                    name.clone(),
                    serde_json::json!({"versions": versions, "released": released}),
                );
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
        }
        ModelsCommand::Show { name, version } => {
            let repository = ModelRepository::open(&args.repo)?;
            let version = match version {
                Some(v) => v,
                None => repository.latest_version(&name)?.with_context(|| {
                    format!("no version of `{name}` in {}", args.repo.display())
                })?,
            };
            let model = repository.load(&name, version, &candle_core::Device::Cpu)?;
            let doc = describe(&model);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_model(&model);
            }
        }
        ModelsCommand::Import {
            file,
            name,
            version,
            activation,
        } => {
            std::fs::create_dir_all(&args.repo)
                .with_context(|| format!("creating {}", args.repo.display()))?;
            let repository = ModelRepository::open(&args.repo)?;
            let activation = if activation == "relu" {
                Activation::Relu
            } else {
                Activation::Tanh
            };
            eprintln!("importing {} as {name} ...", file.display());
            let model = import(
                &repository,
                &file,
                &ImportOptions {
                    name,
                    version,
                    activation,
                },
            )?;
            eprintln!(
                "imported and verified {}/{} (not released: deploy it with `fudo deploy {} {}`)",
                model.name, model.version, model.name, model.version
            );
            if args.json {
                println!("{}", serde_json::to_string_pretty(&describe(&model))?);
            } else {
                print_model(&model);
            }
        }
        ModelsCommand::Verify { name, version } => {
            let json = args.json;
            let results = verify(&args.repo, name.as_deref(), version, |r| {
                if !json {
                    match &r.error {
                        None => eprintln!("ok      {}/{}", r.name, r.version),
                        Some(e) => eprintln!("REFUSED {}/{}: {e}", r.name, r.version),
                    }
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            }
            let refused = results.iter().filter(|r| r.error.is_some()).count();
            anyhow::ensure!(
                refused == 0,
                "{refused} of {} version(s) refused",
                results.len()
            );
        }
    }
    Ok(())
}

fn describe(m: &LoadedModel) -> serde_json::Value {
    let spec = m.spec();
    serde_json::json!({
        "name": m.name,
        "version": m.version,
        "architecture": format!("{:?}", m.config.architecture),
        "obs_dim": spec.obs_dim,
        "n_actions": spec.n_actions,
        "state_dim": spec.state_dim,
        "recurrent": spec.is_recurrent(),
        "created_at": m.manifest.created_at,
        "trained_by": m.manifest.trained_by,
        "frameworks": m.manifest.frameworks,
        "files": m.manifest.files,
        "verified": true,
    })
}

fn print_model(m: &LoadedModel) {
    let spec = m.spec();
    println!(
        "{}/{}: {:?}, obs {} → {} actions{}",
        m.name,
        m.version,
        m.config.architecture,
        spec.obs_dim,
        spec.n_actions,
        if spec.is_recurrent() {
            format!(", recurrent state {}", spec.state_dim)
        } else {
            String::new()
        }
    );
    println!(
        "created {} by {}; frameworks {:?}",
        m.manifest.created_at, m.manifest.trained_by, m.manifest.frameworks
    );
    for (file, entry) in &m.manifest.files {
        let size = entry
            .size
            .map_or(String::new(), |s| format!(" ({s} bytes)"));
        println!("  {file}  sha256 {}{size}", entry.sha256);
    }
    println!("verified: checksums, config and golden outputs");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
            }
        }
    }

    #[test]
    fn verify_admits_the_bundled_versions_and_names_a_corrupted_file() {
        let repo = tempfile::tempdir().expect("tempdir");
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        copy_dir(
            &models.join("lstm_policy/1"),
            &repo.path().join("lstm_policy/1"),
        );
        copy_dir(&models.join("ppo_mlp/1"), &repo.path().join("ppo_mlp/1"));
        // ppo_mlp's golden outputs no longer match its manifest.
        let golden = repo.path().join("ppo_mlp/1/golden.json");
        let mut bytes = std::fs::read(&golden).expect("read");
        bytes.push(b' ');
        std::fs::write(&golden, bytes).expect("write");
        let mut seen = 0;
        let results = verify(repo.path(), None, None, |_| seen += 1).expect("verify");
        assert_eq!(seen, 2, "progress after each version");
        assert_eq!(results[0].name, "lstm_policy");
        assert_eq!(results[0].error, None, "{results:?}");
        let refused = results[1].error.as_deref().expect("ppo_mlp refused");
        assert!(refused.contains("golden.json"), "{refused}");
        let one = verify(repo.path(), Some("lstm_policy"), Some(1), |_| {}).expect("verify");
        assert_eq!(one.len(), 1);
        assert!(verify(repo.path(), Some("nope"), None, |_| {}).is_err());
    }
}
