//! `fudo deploy <model> <version>`: deploys a model version across the cluster of `--target`
//! (found through its membership view) and waits until every live node serves it, printing a
//! line per phase change on each node. Exits non-zero, with the recorded reason, when the
//! version is refused or rolled back.

use std::time::Duration;

use clap::Args;

use crate::{
    api::proto::fudo::v1::{DeployGates, DeployRequest},
    deploy::cluster,
};

/// Arguments of `fudo deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Model name.
    pub model: String,
    /// Version to deploy (it must be in the nodes' model repository).
    pub version: String,
    /// blue-green, canary, rolling (node by node, shard by shard) or shadow (compare only).
    #[arg(long, default_value = "blue-green")]
    pub strategy: String,
    /// Any node of the cluster (repeat to give more seeds).
    #[arg(long, default_value = "http://127.0.0.1:8001", env = "FUDO_TARGET")]
    pub target: Vec<String>,
    /// Seconds of shadow traffic before traffic moves (negative: none; 0: the default, 2 s).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub shadow_s: f64,
    /// Share of live traffic mirrored to the shadow, percent (0: default, 25).
    #[arg(long, default_value_t = 0.0)]
    pub shadow_pct: f64,
    /// Seconds the new version must hold its gates with all traffic (0: default, 10 s).
    #[arg(long, default_value_t = 0.0)]
    pub bake_s: f64,
    /// Canary traffic shares in percent, e.g. 5,25,50 (the switch follows the last).
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<f64>,
    /// Seconds per canary or rolling step (0: default, 3 s).
    #[arg(long, default_value_t = 0.0)]
    pub step_s: f64,
    /// Longest the previous version stays loaded after success, for sessions pinned to it
    /// (0: default, 600 s).
    #[arg(long, default_value_t = 0.0)]
    pub retire_s: f64,
    /// Move every recurrent session to the new version at the switch, re-warmed by replaying
    /// its recent observations (default: sessions stay on their version until they end).
    #[arg(long)]
    pub migrate_sessions: bool,
    /// Gate: largest error rate (0..1; 0: default 0.01).
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Gate: largest p99 as a multiple of the old version's (0: default 3).
    #[arg(long, default_value_t = 0.0)]
    pub max_p99_ratio: f64,
    /// Gate: smallest share of shadow comparisons with the same action (0: default 0.9).
    #[arg(long, default_value_t = 0.0)]
    pub min_agreement: f64,
    /// Seconds to wait for every node before giving up.
    #[arg(long, default_value_t = 600.0)]
    pub timeout_s: f64,
}

impl DeployArgs {
    /// The admin request these arguments describe.
    pub fn request(&self) -> DeployRequest {
        DeployRequest {
            model: self.model.clone(),
            version: self.version.clone(),
            strategy: self.strategy.clone(),
            shadow_s: self.shadow_s,
            bake_s: self.bake_s,
            steps_pct: self.steps.clone(),
            step_s: self.step_s,
            retire_s: self.retire_s,
            migrate_sessions: self.migrate_sessions,
            shadow_pct: self.shadow_pct,
            gates: Some(DeployGates {
                max_error_rate: self.max_error_rate,
                max_p99_ratio: self.max_p99_ratio,
                min_agreement: self.min_agreement,
                ..Default::default()
            }),
        }
    }
}

/// Runs `fudo deploy`; prints progress on stderr and the per-node result as JSON on stdout.
pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let progress = |line: String| {
        eprintln!("[{}] {line}", chrono::Utc::now().format("%H:%M:%S%.3f"));
    };
    let timeout = Duration::from_secs_f64(args.timeout_s.max(1.0));
    let outcomes = cluster::deploy(&args.target, &args.request(), timeout, &progress).await?;
    let doc: Vec<_> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "node": o.node.node,
                "region": o.node.region,
                "az": o.node.az,
                "url": o.node.url,
                "serving": o.serving,
                "outcome": o.record.as_ref().map(|r| r.outcome.clone()),
                "reason": o.record.as_ref().map(|r| r.reason.clone()),
                "green": o.record.as_ref().and_then(|r| r.green).map(|g| serde_json::json!({
                    "requests": g.requests,
                    "errors": g.errors,
                    "non_finite": g.non_finite,
                    "p99_ms": g.p99_ms,
                    "compared": g.compared,
                    "agreement": g.agreement,
                    "divergence": g.divergence,
                })),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
