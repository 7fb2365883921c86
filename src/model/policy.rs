//! The contract between the serving runtime and a policy architecture.

use thiserror::Error;

/// What the runtime needs to know about a policy to validate requests and shape responses.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Length of one observation row.
    pub obs_dim: usize,
    /// Number of discrete actions (length of one logits row).
    pub n_actions: usize,
    /// Length of one row of recurrent state (0 for a stateless policy). The layout is owned by
    /// the architecture; the runtime only stores and returns it.
    pub state_dim: usize,
}

impl PolicySpec {
    /// Whether the policy carries state from step to step.
    pub fn is_recurrent(&self) -> bool {
        self.state_dim > 0
    }
}

/// The result of one forward pass over a batch, row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyOutput {
    /// `batch * n_actions` action logits.
    pub logits: Vec<f32>,
    /// `batch` state-value estimates.
    pub values: Vec<f32>,
    /// `batch` greedy actions (argmax of the logits).
    pub actions: Vec<i64>,
    /// `batch * state_dim` next recurrent state (empty for a stateless policy).
    pub state: Vec<f32>,
}

/// Why a forward pass failed.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The input did not have the shape the policy expects.
    #[error("bad input: {0}")]
    Shape(String),
    /// candle reported an error while computing.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A policy that can run a forward pass on a batch of observations.
///
/// Implementations are immutable after loading and shared between shards as `Arc<dyn Policy>`.
pub trait Policy: Send + Sync + std::fmt::Debug {
    /// Dimensions of the policy's inputs, outputs and state.
    fn spec(&self) -> &PolicySpec;

    /// Runs `batch` rows. `obs` holds `batch * obs_dim` values; `state` holds
    /// `batch * state_dim` values for a recurrent policy (zeros start a new episode) and is
    /// empty for a stateless one.
    fn forward(
        &self,
        obs: &[f32],
        batch: usize,
        state: &[f32],
    ) -> Result<PolicyOutput, PolicyError>;
}
