//! What a deploy was asked to do: the strategy and its timings and gates, checked and filled
//! with defaults from an admin request. Every refusal says which field was wrong.

use std::{fmt, str::FromStr, time::Duration};

use super::gates::Gates;
use crate::api::proto::fudo::v1::{DeployGates, DeployRequest};

/// How a new version takes over traffic on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Load beside the live version, shadow, switch atomically, bake with the old one warm.
    BlueGreen,
    /// A growing share of stateless traffic and new sessions, step by step, then the switch.
    Canary,
    /// One step per shard of capacity (k of N shards' worth of traffic), then the switch; the
    /// cluster driver runs it node by node, region by region.
    Rolling,
    /// Mirror live traffic and compare; never switch.
    Shadow,
}

impl Strategy {
    /// The name used on the command line and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlueGreen => "blue-green",
            Self::Canary => "canary",
            Self::Rolling => "rolling",
            Self::Shadow => "shadow",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blue-green" => Ok(Self::BlueGreen),
            "canary" => Ok(Self::Canary),
            "rolling" => Ok(Self::Rolling),
            "shadow" => Ok(Self::Shadow),
            other => Err(format!(
                "unknown strategy `{other}`; use blue-green, canary, rolling or shadow"
            )),
        }
    }
}

/// A checked deploy request.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployPlan {
    /// Model name.
    pub model: String,
    /// Version to deploy.
    pub version: String,
    /// How it takes over.
    pub strategy: Strategy,
    /// Shadow traffic before any switch (the whole run for [`Strategy::Shadow`]).
    pub shadow: Duration,
    /// How long the new version must hold its gates with all traffic.
    pub bake: Duration,
    /// Canary traffic shares, thousandths, increasing.
    pub steps_permille: Vec<u32>,
    /// How long each canary or rolling step lasts.
    pub step: Duration,
    /// Longest the previous version stays loaded after success.
    pub retire: Duration,
    /// Move every session to the new version at the switch (re-warmed by replay).
    pub migrate_sessions: bool,
    /// Share of live traffic mirrored while shadowing, thousandths.
    pub shadow_permille: u32,
    /// The gates.
    pub gates: Gates,
}

/// Defaults: 2 s of shadow, 10 s bake, canary at 5 %, 25 %, 50 % for 3 s each, previous
/// version kept up to 10 minutes for the sessions pinned to it.
pub const DEFAULT_SHADOW_S: f64 = 2.0;
/// See [`DEFAULT_SHADOW_S`].
pub const DEFAULT_BAKE_S: f64 = 10.0;
/// See [`DEFAULT_SHADOW_S`].
pub const DEFAULT_STEPS_PCT: [f64; 3] = [5.0, 25.0, 50.0];
/// See [`DEFAULT_SHADOW_S`].
pub const DEFAULT_STEP_S: f64 = 3.0;
/// Share of live traffic a shadow sees by default, percent: enough comparisons for the gates
/// (a quarter of a node's calls) without doubling the node's inference work.
pub const DEFAULT_SHADOW_PCT: f64 = 25.0;
/// See [`DEFAULT_SHADOW_S`].
pub const DEFAULT_RETIRE_S: f64 = 600.0;

fn seconds(field: &str, value: f64, default: f64) -> Result<Duration, String> {
    let v = if value == 0.0 { default } else { value };
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(format!(
            "`{field}` must be a number of seconds in (0, 86400], got {value}"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn gates(g: Option<&DeployGates>) -> Result<Gates, String> {
    let mut out = Gates::default();
    let Some(g) = g else { return Ok(out) };
    let share = |field: &str, v: f64, into: &mut f64| {
        if v == 0.0 {
            Ok(())
        } else if (0.0..=1.0).contains(&v) {
            *into = v;
            Ok(())
        } else {
            Err(format!("`gates.{field}` must be in [0, 1], got {v}"))
        }
    };
    share("max_error_rate", g.max_error_rate, &mut out.max_error_rate)?;
    share("min_agreement", g.min_agreement, &mut out.min_agreement)?;
    share("max_divergence", g.max_divergence, &mut out.max_divergence)?;
    if g.max_p99_ratio != 0.0 {
        if !(g.max_p99_ratio.is_finite() && g.max_p99_ratio >= 1.0) {
            return Err(format!(
                "`gates.max_p99_ratio` must be at least 1, got {}",
                g.max_p99_ratio
            ));
        }
        out.max_p99_ratio = g.max_p99_ratio;
    }
    if g.p99_slack_ms != 0.0 {
        if !(g.p99_slack_ms.is_finite() && g.p99_slack_ms > 0.0) {
            return Err(format!(
                "`gates.p99_slack_ms` must be positive, got {}",
                g.p99_slack_ms
            ));
        }
        out.p99_slack_ms = g.p99_slack_ms;
    }
    Ok(out)
}

impl DeployPlan {
    /// Checks a request and fills in defaults.
    pub fn from_request(req: &DeployRequest) -> Result<Self, String> {
        if req.model.is_empty() {
            return Err("`model` is required".into());
        }
        if req.version.parse::<u64>().map(|v| v.to_string()) != Ok(req.version.clone()) {
            return Err(format!(
                "`version` must be a version number like 2, got `{}`",
                req.version
            ));
        }
        let strategy = if req.strategy.is_empty() {
            Strategy::BlueGreen
        } else {
            req.strategy.parse()?
        };
        let pct = if req.steps_pct.is_empty() {
            DEFAULT_STEPS_PCT.to_vec()
        } else {
            req.steps_pct.clone()
        };
        let mut steps_permille = Vec::with_capacity(pct.len());
        for p in pct {
            if !(p > 0.0 && p < 100.0) {
                return Err(format!(
                    "`steps_pct` values must be in (0, 100) (the switch follows the last), got {p}"
                ));
            }
            let permille = (p * 10.0).round() as u32;
            if steps_permille.last().is_some_and(|&last| last >= permille) {
                return Err("`steps_pct` must increase".into());
            }
            steps_permille.push(permille);
        }
        let shadow_default = if strategy == Strategy::Rolling {
            0.0
        } else {
            DEFAULT_SHADOW_S
        };
        Ok(Self {
            model: req.model.clone(),
            version: req.version.clone(),
            strategy,
            shadow: if req.shadow_s < 0.0 || (req.shadow_s == 0.0 && shadow_default == 0.0) {
                Duration::ZERO
            } else {
                seconds("shadow_s", req.shadow_s, shadow_default)?
            },
            bake: seconds("bake_s", req.bake_s, DEFAULT_BAKE_S)?,
            steps_permille,
            step: seconds("step_s", req.step_s, DEFAULT_STEP_S)?,
            retire: seconds("retire_s", req.retire_s, DEFAULT_RETIRE_S)?,
            migrate_sessions: req.migrate_sessions,
            shadow_permille: {
                let pct = if req.shadow_pct == 0.0 {
                    DEFAULT_SHADOW_PCT
                } else {
                    req.shadow_pct
                };
                if !(pct > 0.0 && pct <= 100.0) {
                    return Err(format!("`shadow_pct` must be in (0, 100], got {pct}"));
                }
                (pct * 10.0).round() as u32
            },
            gates: gates(req.gates.as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(strategy: &str) -> DeployRequest {
        DeployRequest {
            model: "ppo_mlp".into(),
            version: "2".into(),
            strategy: strategy.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_an_empty_request() {
        let p = DeployPlan::from_request(&req("")).unwrap();
        assert_eq!(p.strategy, Strategy::BlueGreen);
        assert_eq!(p.shadow, Duration::from_secs(2));
        assert_eq!(p.bake, Duration::from_secs(10));
        assert_eq!(p.steps_permille, vec![50, 250, 500]);
        assert_eq!(p.shadow_permille, 250);
        assert_eq!(p.gates, Gates::default());
        let rolling = DeployPlan::from_request(&req("rolling")).unwrap();
        assert_eq!(rolling.shadow, Duration::ZERO);
        // A negative shadow time turns the shadow phase off.
        let no_shadow = DeployPlan::from_request(&DeployRequest {
            shadow_s: -1.0,
            ..req("canary")
        })
        .unwrap();
        assert_eq!(no_shadow.shadow, Duration::ZERO);
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |r: DeployRequest| DeployPlan::from_request(&r).unwrap_err();
        assert!(err(req("purple")).contains("unknown strategy `purple`"));
        assert!(
            err(DeployRequest {
                version: "v2".into(),
                ..req("")
            })
            .contains("`version`")
        );
        assert!(
            err(DeployRequest {
                bake_s: f64::NAN,
                ..req("")
            })
            .contains("`bake_s`")
        );
        assert!(
            err(DeployRequest {
                steps_pct: vec![50.0, 10.0],
                ..req("canary")
            })
            .contains("increase")
        );
        assert!(
            err(DeployRequest {
                steps_pct: vec![100.0],
                ..req("canary")
            })
            .contains("(0, 100)")
        );
        let gates = DeployGates {
            max_error_rate: 2.0,
            ..Default::default()
        };
        assert!(
            err(DeployRequest {
                gates: Some(gates),
                ..req("")
            })
            .contains("gates.max_error_rate")
        );
    }
}
