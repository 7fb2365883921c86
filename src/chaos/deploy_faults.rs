//! The deploy faults of a chaos scenario: a cluster deploy run in the background exactly as
//! `fudo deploy` runs it, and the bad versions it may meet (answers that turn NaN after
//! warm-up, forward passes many times slower), injected once the version is loaded. The
//! outcome of each deploy, on the cluster and on every node, goes into the report, where
//! `deploys-as-expected` judges it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::scenario::FaultKind;
use crate::{
    api::proto::fudo::v1::{
        DeployRecord, DeployRequest, PoisonVersionRequest, SlowShardRequest,
        admin_client::AdminClient,
    },
    deploy::{cluster, plan::DeployPlan},
};

/// How long a bad-version fault waits for the version to be loaded everywhere.
pub const LOAD_WAIT: Duration = Duration::from_secs(30);

/// One node's part of a deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDeploy {
    /// Node name.
    pub node: String,
    /// The version it serves at the end ("" when unreachable).
    pub serving: String,
    /// Its own deploy record's outcome ("" when it has none, e.g. it restarted).
    pub outcome: String,
    /// The record's reason.
    pub reason: String,
    /// Seconds from the node's deploy start to its outcome.
    pub ended_at_s: Option<f64>,
    /// Seconds from the node's deploy start to the start of its bake ("phase: baking").
    pub bake_started_at_s: Option<f64>,
    /// What the new version did on this node while it was judged.
    #[serde(default)]
    pub green: GreenStats,
}

/// A node's gate statistics of the new version (see `fudo.v1.DeployStats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GreenStats {
    /// Requests it answered (live, canary or shadow).
    pub requests: u64,
    /// Answers with NaN or infinity.
    pub non_finite: u64,
    /// p99 of its answers, ms.
    pub p99_ms: f64,
    /// Shadow comparisons with the live version.
    pub compared: u64,
    /// Share of those with the same action.
    pub agreement: f64,
}

/// One deploy fault's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployResult {
    /// The fault (1-based, file order).
    pub fault: usize,
    /// Model.
    pub model: String,
    /// Version deployed.
    pub version: String,
    /// Strategy.
    pub strategy: String,
    /// What the scenario expects: succeeded, rolled-back or shadowed.
    pub expect: String,
    /// How the cluster deploy ended: succeeded, rolled-back, shadowed, or error.
    pub outcome: String,
    /// Why (the rolling-back node's recorded reason, or the error).
    pub reason: String,
    /// Seconds from injection to the end of the cluster deploy.
    pub took_s: f64,
    /// The plan's bake, in seconds.
    pub bake_s: f64,
    /// Every node.
    pub nodes: Vec<NodeDeploy>,
}

impl DeployResult {
    /// Whether a node that rolled back did so before its bake window ended.
    pub fn rolled_back_in_window(n: &NodeDeploy, bake_s: f64) -> bool {
        match (n.ended_at_s, n.bake_started_at_s) {
            (Some(end), Some(bake)) => end <= bake + bake_s + 0.5,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Whether the deploy ended as expected (see the `deploys-as-expected` hypothesis), and a
    /// one-line account of what happened.
    pub fn judge(&self) -> (bool, String) {
        let serving: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n.node,
                    if n.serving.is_empty() {
                        "unreachable"
                    } else {
                        n.serving.as_str()
                    }
                )
            })
            .collect();
        let reachable = || self.nodes.iter().filter(|n| !n.serving.is_empty());
        let held = match self.expect.as_str() {
            "succeeded" => {
                self.outcome == "succeeded" && reachable().all(|n| n.serving == self.version)
            }
            "shadowed" => {
                self.outcome == "shadowed" && reachable().all(|n| n.serving != self.version)
            }
            _ => {
                let by_gate: Vec<&NodeDeploy> = self
                    .nodes
                    .iter()
                    .filter(|n| {
                        n.outcome == "rolled-back" && !n.reason.starts_with("operator rollback")
                    })
                    .collect();
                self.outcome == "rolled-back"
                    && !self.reason.is_empty()
                    && !by_gate.is_empty()
                    && by_gate
                        .iter()
                        .all(|n| Self::rolled_back_in_window(n, self.bake_s))
                    && reachable().all(|n| n.serving != self.version)
            }
        };
        let account = format!(
            "{} in {:.1} s{}; serving: {}",
            self.outcome,
            self.took_s,
            if self.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.reason)
            },
            serving.join(", ")
        );
        (held, account)
    }
}

fn node_part(name: &str, serving: Option<String>, record: Option<&DeployRecord>) -> NodeDeploy {
    let at = |what: &dyn Fn(&str) -> bool| {
        record.and_then(|r| r.events.iter().find(|e| what(&e.what)).map(|e| e.at_s))
    };
    NodeDeploy {
        node: name.to_owned(),
        serving: serving.unwrap_or_default(),
        outcome: record.map(|r| r.outcome.clone()).unwrap_or_default(),
        reason: record.map(|r| r.reason.clone()).unwrap_or_default(),
        ended_at_s: record.and_then(|r| {
            let outcome = format!("{}:", r.outcome);
            r.events
                .iter()
                .rev()
                .find(|e| e.what.starts_with(&outcome))
                .map(|e| e.at_s)
        }),
        bake_started_at_s: at(&|w| w == "phase: baking"),
        green: record
            .and_then(|r| r.green)
            .map(|g| GreenStats {
                requests: g.requests,
                non_finite: g.non_finite,
                p99_ms: g.p99_ms,
                compared: g.compared,
                agreement: g.agreement,
            })
            .unwrap_or_default(),
    }
}

/// Runs a cluster deploy from `nodes` (name, URL) and collects every node's part.
pub async fn deploy(
    fault: usize,
    nodes: Vec<(String, String)>,
    request: DeployRequest,
    expect: String,
) -> DeployResult {
    let started = Instant::now();
    let seeds: Vec<String> = nodes.iter().map(|(_, url)| url.clone()).collect();
    let progress = |line: String| eprintln!("chaos: deploy (fault {fault}): {line}");
    let result = cluster::deploy(&seeds, &request, Duration::from_secs(120), &progress).await;
    let took_s = started.elapsed().as_secs_f64();
    let (outcome, reason) = match &result {
        Ok(_) if request.strategy == "shadow" => ("shadowed".to_owned(), String::new()),
        Ok(_) => ("succeeded".to_owned(), String::new()),
        Err(cluster::ClusterDeployError::RolledBack {
            outcome, reason, ..
        }) => (outcome.clone(), reason.clone()),
        Err(e) => ("error".to_owned(), e.to_string()),
    };
    let mut parts = Vec::new();
    for (name, url) in &nodes {
        let view = match cluster::admin(url).await {
            Ok(mut client) => cluster::deploys_of(&mut client).await,
            Err(_) => None,
        };
        let serving = view
            .as_ref()
            .and_then(|v| cluster::serving_version(v, &request.model));
        let record = view.as_ref().and_then(|v| {
            cluster::newest_record(v, |r| {
                r.model == request.model && r.to_version == request.version
            })
        });
        parts.push(node_part(name, serving, record.as_ref()));
    }
    let bake_s = DeployPlan::from_request(&request)
        .map(|p| p.bake.as_secs_f64())
        .unwrap_or_default();
    DeployResult {
        fault,
        model: request.model,
        version: request.version,
        strategy: request.strategy,
        expect,
        outcome,
        reason,
        took_s,
        bake_s,
        nodes: parts,
    }
}

/// Waits until `version` of `model` is loaded and warmed up on every node; returns the admin
/// clients.
async fn when_loaded(
    urls: &[String],
    model: &str,
    version: &str,
) -> Result<Vec<AdminClient<tonic::transport::Channel>>, String> {
    let until = Instant::now() + LOAD_WAIT;
    let mut clients = Vec::new();
    for url in urls {
        loop {
            let loaded = match cluster::admin(url).await {
                Ok(mut admin) => {
                    let view = cluster::deploys_of(&mut admin).await.unwrap_or_default();
                    let loaded = view
                        .serving
                        .iter()
                        .any(|s| s.model == model && s.loaded.iter().any(|v| v == version));
                    // Past its warm-up: the fault makes a version go bad with live traffic.
                    let warm = cluster::newest_record(&view, |r| {
                        r.model == model && r.to_version == version
                    })
                    .is_some_and(|r| !matches!(r.phase.as_str(), "loading" | "warming"));
                    (loaded && warm).then_some(admin)
                }
                Err(_) => None,
            };
            if let Some(admin) = loaded {
                clients.push(admin);
                break;
            }
            if Instant::now() > until {
                return Err(format!(
                    "{model}/{version} was not loaded on {url} within {LOAD_WAIT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(clients)
}

/// Injects a `poison-version` or `slow-version` fault on every node once the version is loaded
/// and warmed up there.
pub async fn spoil(urls: Vec<String>, kind: &FaultKind) -> Result<String, String> {
    match kind {
        FaultKind::PoisonVersion {
            model,
            version,
            nan_after,
        } => poison(urls, model.clone(), version.clone(), *nan_after).await,
        FaultKind::SlowVersion {
            model,
            version,
            delay_ms,
        } => slow(urls, model.clone(), version.clone(), *delay_ms).await,
        other => Err(format!("{} does not spoil a version", other.name())),
    }
}

/// Makes `version` answer NaN after `nan_after` more rows on every node, once it is loaded and
/// warmed up.
async fn poison(
    urls: Vec<String>,
    model: String,
    version: String,
    nan_after: u64,
) -> Result<String, String> {
    for mut admin in when_loaded(&urls, &model, &version).await? {
        admin
            .poison_version(PoisonVersionRequest {
                model: model.clone(),
                version: version.clone(),
                nan_after,
            })
            .await
            .map_err(|s| s.message().to_owned())?;
    }
    Ok(format!(
        "{model}/{version} answers NaN after {nan_after} rows on {} node(s)",
        urls.len()
    ))
}

/// Slows every forward pass of `version` by `delay_ms` on every node, once it is loaded.
async fn slow(
    urls: Vec<String>,
    model: String,
    version: String,
    delay_ms: u64,
) -> Result<String, String> {
    let mut shards = 0;
    for mut admin in when_loaded(&urls, &model, &version).await? {
        for i in 0.. {
            let name = format!("{model}@{version}/shard-{i}");
            match admin.slow_shard(SlowShardRequest { name, delay_ms }).await {
                Ok(_) => shards += 1,
                Err(s) if s.code() == tonic::Code::NotFound && i > 0 => break,
                Err(s) => return Err(s.message().to_owned()),
            }
        }
    }
    Ok(format!(
        "{model}/{version}: {shards} shard(s) slowed by {delay_ms} ms per forward pass"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        serving: &str,
        outcome: &str,
        reason: &str,
        end: Option<f64>,
        bake: Option<f64>,
    ) -> NodeDeploy {
        NodeDeploy {
            node: "n".into(),
            serving: serving.into(),
            outcome: outcome.into(),
            reason: reason.into(),
            ended_at_s: end,
            bake_started_at_s: bake,
            green: GreenStats::default(),
        }
    }

    fn result(expect: &str, outcome: &str, reason: &str, nodes: Vec<NodeDeploy>) -> DeployResult {
        DeployResult {
            fault: 1,
            model: "ppo_mlp".into(),
            version: "3".into(),
            strategy: "canary".into(),
            expect: expect.into(),
            outcome: outcome.into(),
            reason: reason.into(),
            took_s: 4.0,
            bake_s: 5.0,
            nodes,
        }
    }

    #[test]
    fn a_success_needs_every_reachable_node_on_the_version() {
        let ok = result(
            "succeeded",
            "succeeded",
            "",
            vec![
                node("3", "succeeded", "", Some(8.0), Some(3.0)),
                node("", "", "", None, None),
            ],
        );
        assert!(ok.judge().0, "{}", ok.judge().1);
        let behind = result(
            "succeeded",
            "succeeded",
            "",
            vec![node("2", "", "", None, None)],
        );
        assert!(!behind.judge().0);
    }

    #[test]
    fn a_rollback_must_be_automatic_recorded_and_in_the_bake_window() {
        let by_gate = node(
            "1",
            "rolled-back",
            "2 answer(s) held NaN",
            Some(6.0),
            Some(3.0),
        );
        let good = result("rolled-back", "rolled-back", "NaN", vec![by_gate.clone()]);
        assert!(good.judge().0, "{}", good.judge().1);
        let late = node("1", "rolled-back", "NaN", Some(9.0), Some(3.0));
        assert!(
            !result("rolled-back", "rolled-back", "NaN", vec![late])
                .judge()
                .0
        );
        let by_operator = node(
            "1",
            "rolled-back",
            "operator rollback: cluster deploy failed",
            Some(4.0),
            Some(3.0),
        );
        assert!(
            !result("rolled-back", "rolled-back", "x", vec![by_operator])
                .judge()
                .0
        );
        let still_new = node("3", "rolled-back", "NaN", Some(4.0), None);
        assert!(
            !result(
                "rolled-back",
                "rolled-back",
                "NaN",
                vec![by_gate, still_new]
            )
            .judge()
            .0
        );
        assert!(!result("rolled-back", "succeeded", "", vec![]).judge().0);
    }
}
