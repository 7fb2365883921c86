//! `manifest.json`: provenance of a model version and the sha256 of every other file in it.
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "name": "ppo_mlp",
//!   "version": "1",
//!   "created_at": "2026-11-28T08:50:50Z",
//!   "trained_by": "models/export.py: behaviour cloning ...",
//!   "frameworks": { "python": "3.11.7", "torch": "2.15.0", "safetensors": "0.8.0" },
//!   "files": {
//!     "config.json": { "sha256": "fe68…", "size": 274 },
//!     "golden.json": { "sha256": "3334…", "size": 1186 },
//!     "model.safetensors": { "sha256": "4fcd…", "size": 52296 }
//!   }
//! }
//! ```
//!
//! `config.json`, `model.safetensors` and `golden.json` must be listed; `size` is optional;
//! `version` may be a string or an integer. File names are plain names (no folders), so a
//! manifest cannot point the loader outside its directory.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use super::error::ModelError;

/// The `format_version` this build reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// The manifest's own file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The files every model version must have (besides the manifest).
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "golden.json"];

/// Checksum (and optionally size) of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A parsed `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    #[serde(deserialize_with = "string_or_integer")]
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub trained_by: String,
    #[serde(default)]
    pub frameworks: BTreeMap<String, String>,
    pub files: BTreeMap<String, FileEntry>,
}

fn string_or_integer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        S(String),
        N(u64),
    }
    Ok(match Version::deserialize(d)? {
        Version::S(s) => s,
        Version::N(n) => n.to_string(),
    })
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `name` is a plain file name: no folders, no `..`, no leading dot-only names.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.contains(':')
}

impl Manifest {
    /// Parses and validates `manifest.json` (structure only; see [`Manifest::verify_files`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Manifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::Manifest(msg));
        if self.format_version != MANIFEST_FORMAT_VERSION {
            return bad(format!(
                "format_version {} is not supported (this build reads {MANIFEST_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.name.trim().is_empty() || self.version.trim().is_empty() {
            return bad("name and version must not be empty".into());
        }
        for (file, entry) in &self.files {
            if !is_plain_file_name(file) {
                return bad(format!("file `{file}` is not a plain file name"));
            }
            if file == MANIFEST_FILE {
                return bad("manifest.json must not list itself".into());
            }
            let ok =
                entry.sha256.len() == 64 && entry.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return bad(format!(
                    "{file}: sha256 `{}` is not 64 hex digits",
                    entry.sha256
                ));
            }
        }
        for file in REQUIRED_FILES {
            if !self.files.contains_key(file) {
                return Err(ModelError::MissingFile {
                    file: file.to_string(),
                    reason: "not listed in manifest.json".into(),
                });
            }
        }
        Ok(())
    }

    /// Checks that the manifest describes model `name` version `version`.
    pub fn check_identity(&self, name: &str, version: &str) -> Result<(), ModelError> {
        if self.name != name || self.version != version {
            return Err(ModelError::Manifest(format!(
                "describes {}/{} but was loaded as {name}/{version}",
                self.name, self.version
            )));
        }
        Ok(())
    }

    /// Verifies one file against its entry.
    pub fn verify_file(&self, file: &str, bytes: &[u8]) -> Result<(), ModelError> {
        let entry = self
            .files
            .get(file)
            .ok_or_else(|| ModelError::MissingFile {
                file: file.to_string(),
                reason: "not listed in manifest.json".into(),
            })?;
        if let Some(expected) = entry.size
            && expected != bytes.len() as u64
        {
            return Err(ModelError::SizeMismatch {
                file: file.to_string(),
                actual: bytes.len() as u64,
                expected,
            });
        }
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(ModelError::Sha256Mismatch {
                file: file.to_string(),
                actual,
                expected: entry.sha256.clone(),
            });
        }
        Ok(())
    }

    /// Verifies every file the manifest lists against `files` (all must be present).
    /// Files in `files` that the manifest does not list are ignored (and never used).
    pub fn verify_files(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<(), ModelError> {
        for file in self.files.keys() {
            let bytes = files.get(file).ok_or_else(|| ModelError::MissingFile {
                file: file.clone(),
                reason: "listed in manifest.json but not provided".into(),
            })?;
            self.verify_file(file, bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = include_str!("../../models/ppo_mlp/1/manifest.json");

    fn files() -> BTreeMap<String, Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/ppo_mlp/1");
        REQUIRED_FILES
            .iter()
            .map(|f| (f.to_string(), std::fs::read(format!("{dir}/{f}")).unwrap()))
            .collect()
    }

    fn edit(f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn bundled_manifest_verifies() {
        let m = Manifest::from_json(MANIFEST.as_bytes()).unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("ppo_mlp", "1"));
        assert!(m.frameworks.contains_key("torch"));
        m.verify_files(&files()).unwrap();
        m.check_identity("ppo_mlp", "1").unwrap();
        assert!(
            m.check_identity("ppo_mlp", "2")
                .unwrap_err()
                .to_string()
                .contains("ppo_mlp/2")
        );
    }

    #[test]
    fn sha_mismatch_names_the_file() {
        let m = Manifest::from_json(MANIFEST.as_bytes()).unwrap();
        let mut files = files();
        let w = files.get_mut("model.safetensors").unwrap();
        let last = w.len() - 1;
        w[last] ^= 1;
        let err = m.verify_files(&files).unwrap_err().to_string();
        let expected = &m.files["model.safetensors"].sha256;
        assert!(err.starts_with("model.safetensors: sha256 "), "{err}");
        assert!(
            err.ends_with(&format!("does not match manifest {expected}")),
            "{err}"
        );
    }

    #[test]
    fn size_mismatch_and_missing_files() {
        let m = Manifest::from_json(MANIFEST.as_bytes()).unwrap();
        let mut files = files();
        files.get_mut("golden.json").unwrap().push(b'\n');
        let err = m.verify_files(&files).unwrap_err().to_string();
        assert!(err.starts_with("golden.json: size "), "{err}");
        files.remove("golden.json");
        let err = m.verify_files(&files).unwrap_err().to_string();
        assert_eq!(
            err,
            "golden.json: missing (listed in manifest.json but not provided)"
        );
    }

    #[test]
    fn malformed_manifests_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"[]".to_vec(), "manifest.json: "),
            (edit(|v| v["format_version"] = 9.into()), "format_version 9"),
            (
                edit(|v| v["created_at"] = "yesterday".into()),
                "manifest.json: ",
            ),
            (
                edit(|v| v["files"]["config.json"]["sha256"] = "abc".into()),
                "not 64 hex digits",
            ),
            (
                edit(|v| v["files"]["../etc/passwd"] = v["files"]["config.json"].clone()),
                "not a plain file name",
            ),
            (
                edit(|v| v["files"]["manifest.json"] = v["files"]["config.json"].clone()),
                "must not list itself",
            ),
            (
                edit(|v| drop(v["files"].as_object_mut().unwrap().remove("golden.json"))),
                "golden.json: missing (not listed in manifest.json)",
            ),
        ];
        for (bytes, want) in cases {
            let err = Manifest::from_json(&bytes).unwrap_err().to_string();
            assert!(err.contains(want), "`{err}` does not contain `{want}`");
        }
        // An integer version is accepted.
        let m = Manifest::from_json(&edit(|v| v["version"] = 1.into())).unwrap();
        assert_eq!(m.version, "1");
    }
}
