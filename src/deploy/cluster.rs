//! The cluster deploy driver behind `fudo deploy` (and the chaos runner's deploy fault): one
//! deploy across every node, and done only when every live node serves the new version.
//!
//! - Nodes are found from any one of them (its membership view) and ordered region by region,
//!   AZ by AZ.
//! - `rolling` deploys one node at a time, each shard by shard; the others deploy on every node
//!   at once, each node judging its own gates.
//! - If any node rolls back, every node that already took the version is rolled back too (they
//!   still hold the old version warm), so the cluster never stays split between versions.
//! - At the end every reachable node is asked what it serves; a node that restarted in the
//!   meantime (it comes back on the released version) or that missed the deploy is deployed
//!   again, until all serve the new version or the time is up. Unreachable nodes are reported,
//!   not waited for: a node that comes back later loads the released version before it serves.

use std::time::{Duration, Instant};

use thiserror::Error;
use tonic::transport::Channel;

use crate::api::proto::fudo::v1::{
    DeployRecord, DeployRequest, DeploysRequest, DeploysResponse, MembersRequest, RollbackRequest,
    admin_client::AdminClient, cluster_client::ClusterClient,
};

/// How often deploy records are polled.
pub const POLL: Duration = Duration::from_millis(250);

/// Why a cluster deploy did not finish.
#[derive(Debug, Error)]
pub enum ClusterDeployError {
    /// No node could be asked for the cluster's members.
    #[error("cannot reach any of {0:?}")]
    NoNode(Vec<String>),
    /// A node refused the deploy.
    #[error("{node} refused the deploy: {status}")]
    Refused {
        /// Node URL.
        node: String,
        /// Its answer.
        status: tonic::Status,
    },
    /// A node rolled back (and so did the others).
    #[error("{node}: {outcome}: {reason}")]
    RolledBack {
        /// Node URL.
        node: String,
        /// The node's outcome.
        outcome: String,
        /// Its recorded reason.
        reason: String,
    },
    /// Not every live node serves the version in time.
    #[error("timed out after {0:?}; nodes not serving the version: {1:?}")]
    Timeout(Duration, Vec<String>),
}

/// One node of the cluster, as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeRef {
    /// Region (ordering key).
    pub region: String,
    /// AZ.
    pub az: String,
    /// Node name.
    pub node: String,
    /// gRPC URL.
    pub url: String,
}

/// What each node ended with.
#[derive(Debug, Clone)]
pub struct NodeOutcome {
    /// The node.
    pub node: NodeRef,
    /// Its last deploy record for this version (none if the version was live already or the
    /// node was unreachable).
    pub record: Option<DeployRecord>,
    /// Whether it serves the version at the end.
    pub serving: bool,
}

/// An admin client for `url` (2 s to connect, 15 s per call).
pub async fn admin(url: &str) -> Result<AdminClient<Channel>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| tonic::Status::invalid_argument(format!("bad URL {url}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("cannot connect to {url}: {e}")))?;
    Ok(AdminClient::new(channel))
}

/// Every node of the cluster that `seeds` belong to, ordered region, AZ, name.
pub async fn discover(seeds: &[String]) -> Result<Vec<NodeRef>, ClusterDeployError> {
    for seed in seeds {
        let Ok(mut client) = ClusterClient::connect(seed.clone()).await else {
            continue;
        };
        let Ok(members) = client.members(MembersRequest {}).await else {
            continue;
        };
        let members = members.into_inner();
        let mut nodes = Vec::new();
        if let Some(me) = members.self_ {
            nodes.push(NodeRef {
                region: me.region,
                az: me.az,
                node: me.node,
                url: seed.clone(),
            });
        }
        for m in members.members {
            let id = m.identity.unwrap_or_default();
            nodes.push(NodeRef {
                region: id.region,
                az: id.az,
                node: if id.node.is_empty() {
                    m.url.clone()
                } else {
                    id.node
                },
                url: m.url,
            });
        }
        nodes.sort();
        nodes.dedup_by(|a, b| a.url == b.url);
        return Ok(nodes);
    }
    Err(ClusterDeployError::NoNode(seeds.to_vec()))
}

/// A node's deploy view (`fudo.v1.Admin/Deploys`): what each model serves, and its deploy
/// history (`None`: the node did not answer).
pub async fn deploys_of(client: &mut AdminClient<Channel>) -> Option<DeploysResponse> {
    Some(client.deploys(DeploysRequest {}).await.ok()?.into_inner())
}

/// The version `model` serves in a node's deploy view.
pub fn serving_version(view: &DeploysResponse, model: &str) -> Option<String> {
    view.serving
        .iter()
        .find(|s| s.model == model)
        .map(|s| s.live.clone())
}

/// The newest record in a node's deploy view that `matches`.
pub fn newest_record(
    view: &DeploysResponse,
    matches: impl Fn(&DeployRecord) -> bool,
) -> Option<DeployRecord> {
    view.deploys.iter().rev().find(|r| matches(r)).cloned()
}

/// What `node` serves for `model` now (`None`: unreachable).
pub async fn live_version(url: &str, model: &str) -> Option<String> {
    let mut client = admin(url).await.ok()?;
    serving_version(&deploys_of(&mut client).await?, model)
}

/// Starts the deploy on `node` and waits until it succeeded (record id) or failed.
async fn deploy_node(
    node: &NodeRef,
    req: &DeployRequest,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Option<DeployRecord>, ClusterDeployError> {
    let refused = |status| ClusterDeployError::Refused {
        node: node.url.clone(),
        status,
    };
    let mut client = admin(&node.url).await.map_err(refused)?;
    let id = client
        .deploy(req.clone())
        .await
        .map_err(refused)?
        .into_inner()
        .id;
    if id.is_empty() {
        progress(format!("{}: {} already live", node.node, req.version));
        return Ok(None);
    }
    progress(format!("{}: deploy {id} started", node.node));
    let mut last_phase = String::new();
    loop {
        tokio::time::sleep(POLL).await;
        let view = deploys_of(&mut client).await;
        let Some(rec) = view.and_then(|v| newest_record(&v, |r| r.id == id)) else {
            // The node is unreachable (or restarted and lost its history): the final check
            // decides whether it serves the version.
            progress(format!("{}: unreachable during its deploy", node.node));
            return Ok(None);
        };
        if rec.phase != last_phase {
            progress(format!("{}: {}", node.node, rec.phase));
            last_phase = rec.phase.clone();
        }
        match rec.outcome.as_str() {
            "running" => continue,
            "succeeded" | "shadowed" => return Ok(Some(rec)),
            _ => {
                return Err(ClusterDeployError::RolledBack {
                    node: node.url.clone(),
                    outcome: rec.outcome.clone(),
                    reason: rec.reason.clone(),
                });
            }
        }
    }
}

/// Rolls back the deploy of `req` on every node in `nodes` (they hold the old version warm).
/// A node past the point of no return (it already unloaded the old version) gets the old
/// version deployed again instead, so the cluster does not stay split between versions.
pub async fn roll_back_all(
    nodes: &[NodeRef],
    req: &DeployRequest,
    reason: &str,
    progress: &(dyn Fn(String) + Sync),
) {
    for node in nodes {
        let mut client = match admin(&node.url).await {
            Ok(client) => client,
            Err(status) => {
                progress(format!(
                    "{}: cannot roll back: {}",
                    node.node,
                    status.message()
                ));
                continue;
            }
        };
        let answer = client
            .rollback(RollbackRequest {
                model: req.model.clone(),
                reason: reason.to_owned(),
            })
            .await;
        match answer {
            Ok(_) => progress(format!("{}: rolled back", node.node)),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                let previous = deploys_of(&mut client).await.and_then(|view| {
                    newest_record(&view, |r| {
                        r.model == req.model && r.to_version == req.version
                    })
                    .map(|r| r.from_version)
                });
                let Some(previous) = previous.filter(|v| !v.is_empty()) else {
                    progress(format!(
                        "{}: rollback not possible: {}",
                        node.node,
                        status.message()
                    ));
                    continue;
                };
                progress(format!(
                    "{}: already unloaded {previous}; deploying it again",
                    node.node
                ));
                let back = DeployRequest {
                    model: req.model.clone(),
                    version: previous,
                    strategy: "blue-green".into(),
                    shadow_s: -1.0,
                    bake_s: 1.0,
                    retire_s: 1.0,
                    ..Default::default()
                };
                if let Err(e) = deploy_node(node, &back, progress).await {
                    progress(format!(
                        "{}: redeploying the old version failed: {e}",
                        node.node
                    ));
                }
            }
            Err(status) => progress(format!(
                "{}: rollback not possible: {}",
                node.node,
                status.message()
            )),
        }
    }
}

/// Deploys `req` across the cluster of `seeds`; `progress` gets one line per change.
pub async fn deploy(
    seeds: &[String],
    req: &DeployRequest,
    timeout: Duration,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Vec<NodeOutcome>, ClusterDeployError> {
    let started = Instant::now();
    let nodes = discover(seeds).await?;
    progress(format!(
        "deploying {}/{} ({}) to {} node(s): {}",
        req.model,
        req.version,
        if req.strategy.is_empty() {
            "blue-green"
        } else {
            &req.strategy
        },
        nodes.len(),
        nodes
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let waves: Vec<Vec<NodeRef>> = if req.strategy == "rolling" {
        nodes.iter().map(|n| vec![n.clone()]).collect()
    } else {
        vec![nodes.clone()]
    };
    let mut records: Vec<Option<DeployRecord>> = vec![None; nodes.len()];
    let mut done: Vec<NodeRef> = Vec::new();
    for wave in &waves {
        let results =
            futures::future::join_all(wave.iter().map(|n| deploy_node(n, req, progress))).await;
        let mut failure = None;
        for (node, result) in wave.iter().zip(results) {
            match result {
                Ok(rec) => {
                    if let Some(i) = nodes.iter().position(|n| n == node) {
                        records[i] = rec;
                    }
                    done.push(node.clone());
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            if req.strategy != "shadow" {
                roll_back_all(&done, req, &format!("cluster deploy failed: {e}"), progress).await;
            }
            return Err(e);
        }
    }
    if req.strategy == "shadow" {
        return Ok(nodes
            .into_iter()
            .zip(records)
            .map(|(node, record)| NodeOutcome {
                node,
                record,
                serving: false,
            })
            .collect());
    }
    // Every live node must serve the version; deploy again to any that does not.
    loop {
        let mut missing = Vec::new();
        let mut outcomes = Vec::new();
        for (node, rec) in nodes.iter().zip(&records) {
            match live_version(&node.url, &req.model).await {
                Some(v) if v == req.version => outcomes.push(NodeOutcome {
                    node: node.clone(),
                    record: rec.clone(),
                    serving: true,
                }),
                Some(v) => missing.push((node.clone(), v)),
                None => {
                    progress(format!(
                        "{}: unreachable; it loads the released version when it returns",
                        node.node
                    ));
                    outcomes.push(NodeOutcome {
                        node: node.clone(),
                        record: rec.clone(),
                        serving: false,
                    });
                }
            }
        }
        if missing.is_empty() {
            return Ok(outcomes);
        }
        if started.elapsed() > timeout {
            return Err(ClusterDeployError::Timeout(
                timeout,
                missing.into_iter().map(|(n, _)| n.node).collect(),
            ));
        }
        for (node, serving) in missing {
            progress(format!(
                "{}: serves {serving}, not {}; deploying it again",
                node.node, req.version
            ));
            // A node that came back mid-deploy: bring it to the version too.
            if let Err(e) = deploy_node(&node, req, progress).await {
                progress(format!("{}: {e}", node.node));
                tokio::time::sleep(POLL).await;
            }
        }
    }
}
