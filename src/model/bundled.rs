//! The reference models built into the binary, so `fudo serve` works with no files on disk.
//! They are the exact bytes of `models/<name>/<version>/` and go through the same verification
//! (manifest checksums, config, weights, golden outputs) as models loaded from a repository.

use std::collections::BTreeMap;

use candle_core::Device;

use super::error::ModelError;
use super::loader::{LoadedModel, load_model_files};

macro_rules! bundled_model {
    ($name:literal, $version:literal) => {
        BundledModel {
            name: $name,
            version: $version,
            files: [
                ("manifest.json", bundled_model!(@file $name, $version, "manifest.json")),
                ("config.json", bundled_model!(@file $name, $version, "config.json")),
                ("model.safetensors", bundled_model!(@file $name, $version, "model.safetensors")),
                ("golden.json", bundled_model!(@file $name, $version, "golden.json")),
            ],
        }
    };
    (@file $name:literal, $version:literal, $file:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/",
            $name,
            "/",
            $version,
            "/",
            $file
        ))
        .as_slice()
    };
}

/// One model version embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct BundledModel {
    pub name: &'static str,
    pub version: &'static str,
    /// `(file name, bytes)` of every file of the version, `manifest.json` included.
    pub files: [(&'static str, &'static [u8]); 4],
}

impl BundledModel {
    /// The files as [`load_model_files`] takes them.
    pub fn file_map(&self) -> BTreeMap<String, Vec<u8>> {
        self.files
            .iter()
            .map(|(f, b)| (f.to_string(), b.to_vec()))
            .collect()
    }

    /// Verifies and loads this model.
    pub fn load(&self, device: &Device) -> Result<LoadedModel, ModelError> {
        load_model_files(self.name, self.version, &self.file_map(), device)
    }
}

/// The bundled models: `ppo_mlp` (SB3 PPO MlpPolicy) and `lstm_policy` (RecurrentPPO).
pub const BUNDLED: [BundledModel; 2] = [
    bundled_model!("ppo_mlp", "1"),
    bundled_model!("lstm_policy", "1"),
];

/// Verifies and loads every bundled model on `device`.
pub fn bundled_models(device: &Device) -> Result<Vec<LoadedModel>, ModelError> {
    BUNDLED.iter().map(|m| m.load(device)).collect()
}
