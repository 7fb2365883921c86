//! Policies: the candle implementations of the PyTorch-trained architectures fudo serves, and
//! the loader that turns a verified model directory into a shareable [`Policy`].
//!
//! Weights live here, outside the actors, behind an `Arc`, so that restarting a shard costs
//! microseconds instead of a reload.
//!
//! A model version is a folder `<name>/<version>/` holding `model.safetensors` (a PyTorch
//! `state_dict` with stable-baselines3 key names), `config.json` ([`ModelConfig`]),
//! `golden.json` (inputs and PyTorch outputs, checked at load) and `manifest.json`
//! ([`Manifest`]: provenance and the sha256 of every other file). See `models/README.md`.

pub mod bundled;
pub mod config;
pub mod device;
pub mod error;
pub mod fast_tanh;
pub mod import;
pub mod loader;
pub mod lstm;
pub mod manifest;
pub mod mlp;
pub mod policy;
pub mod repository;
mod weights;
pub mod writer;

pub use bundled::{BUNDLED, BundledModel, bundled_models};
pub use config::{Activation, Architecture, InputNames, ModelConfig, NetArch, OutputNames};
pub use device::select_device;
pub use error::ModelError;
pub use fast_tanh::fast_tanh;
pub use loader::{GOLDEN_TOLERANCE, LoadedModel, check_golden, load_model_dir, load_model_files};
pub use lstm::LstmActorCritic;
pub use manifest::{FileEntry, Manifest, sha256_hex};
pub use mlp::MlpActorCritic;
pub use policy::{Policy, PolicyError, PolicyOutput, PolicySpec};
pub use repository::ModelRepository;
pub use weights::WEIGHTS_FILE;
