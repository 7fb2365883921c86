//! A model repository on disk, laid out `<root>/<name>/<version>/` with integer versions.
//!
//! A version directory counts once it holds `manifest.json` (deployers write it last), so a
//! half-copied version is not picked up. Other entries (files, folders without integer
//! version sub-folders, non-integer sub-folders such as `fixtures/`) are ignored.
//!
//! `<root>/<name>/RELEASED` names the version a finished deploy made live. A node starting
//! (or restarting after a crash) serves that version, not merely the newest one in the
//! repository: a version that was imported but not yet deployed, or whose deploy was rolled
//! back, must not reach traffic because a node happened to restart. Without the file (a fresh
//! repository) the newest version is served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;

use super::error::ModelError;
use super::loader::{LoadedModel, load_model_dir};
use super::manifest::MANIFEST_FILE;

/// The file naming a model's released version, `<root>/<name>/RELEASED`.
pub const RELEASED_FILE: &str = "RELEASED";

/// A folder of models, `<root>/<name>/<version>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRepository {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        file: path.display().to_string(),
        source,
    }
}

/// Parses a canonical version folder name (`"7"`, not `"07"` or `"v7"`).
fn parse_version(name: &str) -> Option<u64> {
    let v: u64 = name.parse().ok()?;
    (v.to_string() == name).then_some(v)
}

impl ModelRepository {
    /// A repository rooted at `root` (not read until used).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// A repository rooted at `root`, which must be an existing folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ModelError> {
        let root = root.into();
        if !root.is_dir() {
            return Err(ModelError::Repository {
                path: root.display().to_string(),
                reason: "model repository is not a folder".into(),
            });
        }
        Ok(Self { root })
    }

    /// The repository's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one model version.
    pub fn version_dir(&self, name: &str, version: u64) -> PathBuf {
        self.root.join(name).join(version.to_string())
    }

    /// Complete versions of model `name`, ascending (empty if there is no such model).
    pub fn versions(&self, name: &str) -> Result<Vec<u64>, ModelError> {
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut versions = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let Some(v) = entry.file_name().to_str().and_then(parse_version) else {
                continue;
            };
            if entry.path().join(MANIFEST_FILE).is_file() {
                versions.push(v);
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }

    /// Every model with at least one complete version: name → versions, ascending.
    pub fn list(&self) -> Result<BTreeMap<String, Vec<u64>>, ModelError> {
        let mut models = BTreeMap::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let versions = self.versions(&name)?;
            if !versions.is_empty() {
                models.insert(name, versions);
            }
        }
        Ok(models)
    }

    /// The highest complete version of `name`, if any.
    pub fn latest_version(&self, name: &str) -> Result<Option<u64>, ModelError> {
        Ok(self.versions(name)?.last().copied())
    }

    /// Loads and verifies one version.
    pub fn load(
        &self,
        name: &str,
        version: u64,
        device: &Device,
    ) -> Result<LoadedModel, ModelError> {
        load_model_dir(&self.version_dir(name, version), device)
    }

    /// Loads and verifies the highest version of `name`.
    pub fn load_latest_of(&self, name: &str, device: &Device) -> Result<LoadedModel, ModelError> {
        let version = self
            .latest_version(name)?
            .ok_or_else(|| ModelError::Repository {
                path: self.root.join(name).display().to_string(),
                reason: "no model version (integer folder with a manifest.json)".into(),
            })?;
        self.load(name, version, device)
    }

    /// The version a finished deploy released for `name`, if any.
    pub fn released_version(&self, name: &str) -> Result<Option<u64>, ModelError> {
        let file = self.root.join(name).join(RELEASED_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                parse_version(text.trim())
                    .map(Some)
                    .ok_or_else(|| ModelError::Repository {
                        path: file.display().to_string(),
                        reason: format!("`{}` is not a version number", text.trim()),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ModelError::Io {
                file: file.display().to_string(),
                source,
            }),
        }
    }

    /// The version a node serves for `name`: the released one, else the newest.
    pub fn serving_version(&self, name: &str) -> Result<Option<u64>, ModelError> {
        match self.released_version(name)? {
            Some(v) => Ok(Some(v)),
            None => self.latest_version(name),
        }
    }

    /// Records `version` as the released version of `name` (atomically: write, then rename).
    pub fn set_released(&self, name: &str, version: u64) -> Result<(), ModelError> {
        let dir = self.root.join(name);
        let tmp = dir.join(format!(".{RELEASED_FILE}.tmp"));
        std::fs::write(&tmp, format!("{version}\n")).map_err(io_err(&tmp))?;
        let file = dir.join(RELEASED_FILE);
        std::fs::rename(&tmp, &file).map_err(io_err(&file))
    }

    /// Loads the serving version (released, else newest) of every model, sorted by name; fails
    /// on the first model that does not load.
    pub fn load_released(&self, device: &Device) -> Result<Vec<LoadedModel>, ModelError> {
        self.list()?
            .keys()
            .map(|name| match self.serving_version(name)? {
                Some(v) => self.load(name, v, device),
                None => self.load_latest_of(name, device),
            })
            .collect()
    }

    /// Loads the highest version of every model, sorted by name; fails on the first model that
    /// does not load (callers wanting partial results iterate [`ModelRepository::list`]).
    pub fn load_latest(&self, device: &Device) -> Result<Vec<LoadedModel>, ModelError> {
        self.list()?
            .keys()
            .map(|name| self.load_latest_of(name, device))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_version(root: &Path, name: &str, as_version: &str) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name)
            .join("1");
        let dst = root.join(name).join(as_version);
        std::fs::create_dir_all(&dst).unwrap();
        for f in [
            "manifest.json",
            "config.json",
            "model.safetensors",
            "golden.json",
        ] {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }

    #[test]
    fn lists_and_loads_the_latest_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        copy_version(root, "ppo_mlp", "1");
        copy_version(root, "ppo_mlp", "10");
        copy_version(root, "lstm_policy", "1");
        // Ignored: non-integer and non-canonical versions, a version without a manifest,
        // plain files, folders without versions.
        copy_version(root, "ppo_mlp", "fixtures");
        copy_version(root, "ppo_mlp", "011");
        std::fs::create_dir_all(root.join("ppo_mlp/12")).unwrap();
        std::fs::create_dir_all(root.join("reference")).unwrap();
        std::fs::write(root.join("README.md"), "hi").unwrap();

        let repo = ModelRepository::open(root).unwrap();
        let list = repo.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list["ppo_mlp"], vec![1, 10]);
        assert_eq!(list["lstm_policy"], vec![1]);
        assert_eq!(repo.latest_version("ppo_mlp").unwrap(), Some(10));
        assert_eq!(repo.latest_version("nope").unwrap(), None);

        // Version 10 is a copy of version 1, so its manifest says version 1: refused.
        let err = repo
            .load_latest_of("ppo_mlp", &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "manifest.json: describes ppo_mlp/1 but was loaded as ppo_mlp/10"
        );
        std::fs::remove_dir_all(root.join("ppo_mlp/10")).unwrap();

        let loaded = repo.load_latest(&Device::Cpu).unwrap();
        let names: Vec<_> = loaded
            .iter()
            .map(|m| (m.name.as_str(), m.version.as_str()))
            .collect();
        assert_eq!(names, vec![("lstm_policy", "1"), ("ppo_mlp", "1")]);
        assert!(repo.load_latest_of("nope", &Device::Cpu).is_err());

        // A released version wins over a newer one.
        assert_eq!(repo.serving_version("ppo_mlp").unwrap(), Some(1));
        copy_version(root, "ppo_mlp", "2");
        assert_eq!(repo.serving_version("ppo_mlp").unwrap(), Some(2));
        repo.set_released("ppo_mlp", 1).unwrap();
        assert_eq!(repo.released_version("ppo_mlp").unwrap(), Some(1));
        assert_eq!(repo.serving_version("ppo_mlp").unwrap(), Some(1));
        let served = repo.load_released(&Device::Cpu).unwrap();
        assert_eq!(served[1].version, "1");
        std::fs::write(root.join("ppo_mlp").join(RELEASED_FILE), "two").unwrap();
        let err = repo.released_version("ppo_mlp").unwrap_err().to_string();
        assert!(err.contains("`two` is not a version number"), "{err}");
        assert!(ModelRepository::open(root.join("README.md")).is_err());
    }

    #[test]
    fn the_source_models_folder_is_a_repository() {
        let repo =
            ModelRepository::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("models")).unwrap();
        let list = repo.list().unwrap();
        assert_eq!(
            list.keys().collect::<Vec<_>>(),
            vec!["lstm_policy", "ppo_mlp"]
        );
    }
}
