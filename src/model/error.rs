//! Why a model could not be loaded. Every variant names the file (and the tensor) at fault, so
//! the message alone tells an ML engineer what to fix.

use thiserror::Error;

use super::policy::PolicyError;

/// A model directory, file set or device that fudo refuses.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A file the model needs is absent (from the directory or the manifest).
    #[error("{file}: missing ({reason})")]
    MissingFile { file: String, reason: String },
    /// `manifest.json` is malformed or does not match the model it describes.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// A file's content does not have the sha256 the manifest records.
    #[error("{file}: sha256 {actual} does not match manifest {expected}")]
    Sha256Mismatch {
        file: String,
        actual: String,
        expected: String,
    },
    /// A file's size does not match the manifest.
    #[error("{file}: size {actual} bytes does not match manifest {expected}")]
    SizeMismatch {
        file: String,
        actual: u64,
        expected: u64,
    },
    /// `config.json` is malformed or inconsistent.
    #[error("config.json: {0}")]
    Config(String),
    /// `config.json` names an architecture fudo does not implement.
    #[error(
        "config.json: unknown architecture `{0}` (expected `mlp_actor_critic` or `lstm_actor_critic`)"
    )]
    UnknownArchitecture(String),
    /// The weights file is truncated or otherwise not valid safetensors.
    #[error("{file}: invalid safetensors: {reason}")]
    Safetensors { file: String, reason: String },
    /// A tensor the architecture needs is absent from the weights.
    #[error("{file}: missing tensor `{tensor}`")]
    MissingTensor { file: String, tensor: String },
    /// The weights hold a tensor the architecture does not use.
    #[error("{file}: unexpected tensor `{tensor}` (not part of this architecture)")]
    UnexpectedTensor { file: String, tensor: String },
    /// A tensor has the wrong shape for the configured dimensions.
    #[error("{file}: tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        file: String,
        tensor: String,
        actual: Vec<usize>,
        expected: Vec<usize>,
    },
    /// A tensor is not float32.
    #[error("{file}: tensor `{tensor}` has dtype {dtype}, expected F32")]
    TensorDtype {
        file: String,
        tensor: String,
        dtype: String,
    },
    /// `golden.json` is malformed, or the policy's outputs on it differ from PyTorch's.
    #[error("golden.json: {0}")]
    Golden(String),
    /// The requested device is unknown or not available in this build.
    #[error("device `{spec}`: {reason}")]
    Device { spec: String, reason: String },
    /// A model repository folder is unusable.
    #[error("{path}: {reason}")]
    Repository { path: String, reason: String },
    /// A file given to `fudo models import` cannot be turned into a model version.
    #[error("{file}: {reason}")]
    Import { file: String, reason: String },
    /// candle failed while building the policy.
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    /// The policy failed while running the golden inputs.
    #[error("golden.json: forward pass failed: {0}")]
    Policy(#[from] PolicyError),
}

impl ModelError {
    pub(crate) fn candle(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.into();
        move |source| ModelError::Candle { context, source }
    }
}
