//! `config.json`: what architecture a model directory holds and its dimensions.
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "architecture": "lstm_actor_critic",
//!   "obs_dim": 32,
//!   "n_actions": 3,
//!   "net_arch": { "pi": [64, 64], "vf": [64, 64] },
//!   "activation": "tanh",
//!   "lstm_hidden_size": 64,
//!   "dtype": "float32",
//!   "inputs": { "obs": "obs", "state": "state" },
//!   "outputs": { "logits": "logits", "values": "values", "actions": "actions", "state": "state_out" }
//! }
//! ```
//!
//! `lstm_hidden_size` is `null` (or absent) for `mlp_actor_critic`, and the `state` tensor names
//! exist only for recurrent architectures. Unknown fields are refused, so a typo is an error
//! rather than a silently ignored setting.

use serde::{Deserialize, Serialize};

use super::error::ModelError;
use super::policy::PolicySpec;

/// The `format_version` this build reads.
pub const CONFIG_FORMAT_VERSION: u32 = 1;

/// Largest dimension accepted anywhere in a config (guards against absurd allocations).
const MAX_DIM: usize = 1 << 20;

/// The policy architectures fudo implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// SB3 `ActorCriticPolicy` (`MlpPolicy`), discrete actions.
    MlpActorCritic,
    /// sb3-contrib `RecurrentActorCriticPolicy` with separate actor and critic LSTMs.
    LstmActorCritic,
}

impl Architecture {
    /// The name used in `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::MlpActorCritic => "mlp_actor_critic",
            Architecture::LstmActorCritic => "lstm_actor_critic",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "mlp_actor_critic" => Some(Architecture::MlpActorCritic),
            "lstm_actor_critic" => Some(Architecture::LstmActorCritic),
            _ => None,
        }
    }
}

/// Hidden-layer activation of the policy and value networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Tanh,
    Relu,
}

/// Hidden layer sizes of SB3's `mlp_extractor` (`net_arch=dict(pi=[...], vf=[...])`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetArch {
    pub pi: Vec<usize>,
    pub vf: Vec<usize>,
}

/// Names of the input tensors (KServe v2 / Triton style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNames {
    pub obs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Names of the output tensors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputNames {
    pub logits: String,
    pub values: String,
    pub actions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

fn default_dtype() -> String {
    "float32".to_string()
}

/// A parsed and validated `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub format_version: u32,
    pub architecture: Architecture,
    pub obs_dim: usize,
    pub n_actions: usize,
    pub net_arch: NetArch,
    pub activation: Activation,
    #[serde(default)]
    pub lstm_hidden_size: Option<usize>,
    #[serde(default = "default_dtype")]
    pub dtype: String,
    pub inputs: InputNames,
    pub outputs: OutputNames,
}

impl ModelConfig {
    /// Parses and validates `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Config(e.to_string()))?;
        match value.get("architecture") {
            None => return Err(ModelError::Config("missing field `architecture`".into())),
            Some(serde_json::Value::String(s)) if Architecture::parse(s).is_none() => {
                return Err(ModelError::UnknownArchitecture(s.clone()));
            }
            Some(serde_json::Value::String(_)) => {}
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "`architecture` must be a string, got {other}"
                )));
            }
        }
        let config: ModelConfig =
            serde_json::from_value(value).map_err(|e| ModelError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks dimensions and names for consistency with the architecture.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::Config(msg));
        if self.format_version != CONFIG_FORMAT_VERSION {
            return bad(format!(
                "format_version {} is not supported (this build reads {CONFIG_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.dtype != "float32" {
            return bad(format!(
                "dtype `{}` is not supported (only float32)",
                self.dtype
            ));
        }
        for (what, v) in [("obs_dim", self.obs_dim), ("n_actions", self.n_actions)] {
            if v == 0 || v > MAX_DIM {
                return bad(format!("{what} must be in 1..={MAX_DIM}, got {v}"));
            }
        }
        for (what, sizes) in [
            ("net_arch.pi", &self.net_arch.pi),
            ("net_arch.vf", &self.net_arch.vf),
        ] {
            if let Some(v) = sizes.iter().find(|&&v| v == 0 || v > MAX_DIM) {
                return bad(format!("{what} sizes must be in 1..={MAX_DIM}, got {v}"));
            }
        }
        let recurrent = self.architecture == Architecture::LstmActorCritic;
        match (recurrent, self.lstm_hidden_size) {
            (true, None) => return bad("lstm_actor_critic needs lstm_hidden_size".into()),
            (true, Some(h)) if h == 0 || h > MAX_DIM => {
                return bad(format!(
                    "lstm_hidden_size must be in 1..={MAX_DIM}, got {h}"
                ));
            }
            (false, Some(_)) => {
                return bad("lstm_hidden_size is only valid for lstm_actor_critic".into());
            }
            _ => {}
        }
        match (recurrent, &self.inputs.state, &self.outputs.state) {
            (true, Some(_), Some(_)) | (false, None, None) => {}
            (true, _, _) => {
                return bad("a recurrent model needs inputs.state and outputs.state names".into());
            }
            (false, _, _) => {
                return bad(
                    "inputs.state / outputs.state are only valid for a recurrent model".into(),
                );
            }
        }
        let inputs = [Some(&self.inputs.obs), self.inputs.state.as_ref()];
        let outputs = [
            Some(&self.outputs.logits),
            Some(&self.outputs.values),
            Some(&self.outputs.actions),
            self.outputs.state.as_ref(),
        ];
        for (what, names) in [("inputs", &inputs[..]), ("outputs", &outputs[..])] {
            let names: Vec<&String> = names.iter().flatten().copied().collect();
            if names.iter().any(|n| n.trim().is_empty()) {
                return bad(format!("{what}: tensor names must not be empty"));
            }
            for (i, n) in names.iter().enumerate() {
                if names[..i].contains(n) {
                    return bad(format!("{what}: tensor name `{n}` is used twice"));
                }
            }
        }
        Ok(())
    }

    /// Length of one recurrent state row (`4 * lstm_hidden_size`), 0 for a stateless policy.
    pub fn state_dim(&self) -> usize {
        match self.architecture {
            Architecture::MlpActorCritic => 0,
            Architecture::LstmActorCritic => 4 * self.lstm_hidden_size.unwrap_or(0),
        }
    }

    /// The runtime's view of the policy's dimensions.
    pub fn spec(&self) -> PolicySpec {
        PolicySpec {
            obs_dim: self.obs_dim,
            n_actions: self.n_actions,
            state_dim: self.state_dim(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MLP: &str = include_str!("../../models/ppo_mlp/1/config.json");
    const LSTM: &str = include_str!("../../models/lstm_policy/1/config.json");

    fn edit(base: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn config_err(bytes: &[u8]) -> String {
        ModelConfig::from_json(bytes).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_bundled_configs() {
        let mlp = ModelConfig::from_json(MLP.as_bytes()).unwrap();
        assert_eq!(mlp.architecture, Architecture::MlpActorCritic);
        assert_eq!(
            mlp.spec(),
            PolicySpec {
                obs_dim: 32,
                n_actions: 3,
                state_dim: 0
            }
        );
        assert_eq!(mlp.net_arch.pi, vec![64, 64]);
        let lstm = ModelConfig::from_json(LSTM.as_bytes()).unwrap();
        assert_eq!(lstm.architecture, Architecture::LstmActorCritic);
        assert_eq!(
            lstm.spec(),
            PolicySpec {
                obs_dim: 32,
                n_actions: 3,
                state_dim: 256
            }
        );
        assert_eq!(lstm.outputs.state.as_deref(), Some("state_out"));
    }

    #[test]
    fn unknown_architecture_is_named() {
        let bytes = edit(MLP, |v| v["architecture"] = "transformer".into());
        let err = ModelConfig::from_json(&bytes).unwrap_err();
        assert!(matches!(err, ModelError::UnknownArchitecture(ref a) if a == "transformer"));
        assert!(
            err.to_string()
                .contains("config.json: unknown architecture `transformer`")
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{not json".to_vec(), "config.json: "),
            (edit(MLP, |v| v["obs_dim"] = 0.into()), "obs_dim must be in"),
            (
                edit(MLP, |v| v["n_actions"] = 0.into()),
                "n_actions must be in",
            ),
            (
                edit(MLP, |v| v["n_actions"] = (-1).into()),
                "expected usize",
            ),
            (
                edit(MLP, |v| v["net_arch"]["pi"] = serde_json::json!([64, 0])),
                "net_arch.pi",
            ),
            (
                edit(MLP, |v| v["activation"] = "gelu".into()),
                "unknown variant `gelu`",
            ),
            (
                edit(MLP, |v| v["dtype"] = "float16".into()),
                "dtype `float16`",
            ),
            (
                edit(MLP, |v| v["format_version"] = 2.into()),
                "format_version 2",
            ),
            (
                edit(MLP, |v| v["lstm_hidden_size"] = 64.into()),
                "only valid for lstm",
            ),
            (
                edit(MLP, |v| v["obs_dimm"] = 3.into()),
                "unknown field `obs_dimm`",
            ),
            (
                edit(MLP, |v| v["inputs"]["state"] = "s".into()),
                "only valid for a recurrent",
            ),
            (
                edit(MLP, |v| v["outputs"]["values"] = "logits".into()),
                "`logits` is used twice",
            ),
            (
                edit(MLP, |v| v["inputs"]["obs"] = " ".into()),
                "must not be empty",
            ),
            (
                edit(MLP, |v| {
                    v.as_object_mut()
                        .unwrap()
                        .remove("architecture")
                        .map(drop)
                        .unwrap()
                }),
                "missing field `architecture`",
            ),
            (
                edit(LSTM, |v| v["lstm_hidden_size"] = serde_json::Value::Null),
                "needs lstm_hidden_size",
            ),
            (
                edit(LSTM, |v| {
                    v["outputs"]
                        .as_object_mut()
                        .unwrap()
                        .remove("state")
                        .map(drop)
                        .unwrap()
                }),
                "needs inputs.state and outputs.state",
            ),
        ];
        for (bytes, want) in cases {
            let err = config_err(&bytes);
            assert!(err.starts_with("config.json: "), "{err}");
            assert!(err.contains(want), "`{err}` does not contain `{want}`");
        }
    }
}
