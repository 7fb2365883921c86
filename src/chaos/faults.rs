//! Injecting and healing the faults of a scenario against a running [`Cluster`]: admin-API
//! panics and slowdowns, signals to node processes, the Redis primary's death, nftables rules
//! in the AZ namespaces, and the fault proxies in front of the nodes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use nix::sys::signal::Signal;
use tokio::task::JoinHandle;

use super::{
    deploy_faults::{self, DeployResult},
    netlab::FaultId,
    proxy::ProxyControl,
    scenario::{BUSIEST_OWNER, Fault, FaultKind},
};
use crate::{
    api::proto::fudo::v1::{
        MembersRequest, PanicActorRequest, SlowShardRequest, admin_client::AdminClient,
        cluster_client::ClusterClient,
    },
    cluster::{Cluster, ClusterError, ClusterNode},
};

/// Why a fault could not be injected or healed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The cluster refused (unknown node, process not running, signal failed, Redis).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The admin API refused or could not be reached.
    #[error("admin API of {node}: {reason}")]
    Admin {
        /// Node name.
        node: String,
        /// What went wrong.
        reason: String,
    },
    /// The network could not be changed.
    #[error("network: {0}")]
    Network(String),
    /// A proxy fault without a proxy for that node.
    #[error("no fault proxy in front of {0} (set cluster.proxy = true)")]
    NoProxy(String),
}

/// Injects and heals faults; remembers what each active fault installed.
pub struct Injector<'a> {
    cluster: &'a Cluster,
    proxies: HashMap<String, ProxyControl>,
    installed: Mutex<HashMap<usize, Vec<FaultId>>>,
    resolved: Mutex<HashMap<usize, Vec<String>>>,
    background: Mutex<Vec<(usize, Injection)>>,
    deploys: Arc<Mutex<Vec<DeployResult>>>,
}

/// An injection still running in the background, and what it will report.
type Injection = JoinHandle<Result<String, FaultError>>;

async fn panic_once(
    admin: &mut AdminClient<tonic::transport::Channel>,
    node: &str,
    actor: &str,
    in_forward: bool,
) -> Result<u64, FaultError> {
    // An actor between a death and its restart (backoff grows with repeated panics) refuses
    // with UNAVAILABLE "restarting; try again": wait for its next generation, up to 2 s.
    let mut waited = Duration::ZERO;
    loop {
        let result = admin
            .panic_actor(PanicActorRequest {
                name: actor.to_owned(),
                in_forward,
            })
            .await;
        match result {
            Ok(r) => return Ok(r.into_inner().generation),
            Err(s) if s.code() == tonic::Code::Unavailable && waited < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                waited += Duration::from_millis(10);
            }
            Err(s) => {
                return Err(FaultError::Admin {
                    node: node.to_owned(),
                    reason: s.message().to_owned(),
                });
            }
        }
    }
}

impl<'a> Injector<'a> {
    /// An injector for `cluster`, with the fault proxies in front of its nodes (by node name).
    #[must_use]
    pub fn new(cluster: &'a Cluster, proxies: HashMap<String, ProxyControl>) -> Self {
        Self {
            cluster,
            proxies,
            installed: Mutex::default(),
            resolved: Mutex::default(),
            background: Mutex::default(),
            deploys: Arc::default(),
        }
    }

    /// Waits for the injections still running in the background (repeated panics) and
    /// returns their outcomes by fault position.
    pub async fn finish(&self) -> Vec<(usize, Result<String, FaultError>)> {
        let tasks = std::mem::take(
            &mut *self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut out = Vec::new();
        for (index, task) in tasks {
            let result = task.await.unwrap_or_else(|e| {
                Err(FaultError::Admin {
                    node: String::new(),
                    reason: format!("injection task failed: {e}"),
                })
            });
            out.push((index, result));
        }
        out
    }

    /// The outcomes of the deploy faults (complete once [`Injector::finish`] returned).
    pub fn deploy_results(&self) -> Vec<DeployResult> {
        let mut out = self
            .deploys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        out.sort_by_key(|d| d.fault);
        out
    }

    /// Every node as (name, gRPC URL).
    fn node_urls(&self) -> Vec<(String, String)> {
        self.cluster
            .nodes()
            .iter()
            .map(|n| (n.place.name.clone(), format!("http://{}", n.grpc)))
            .collect()
    }

    /// Runs `task` in the background as part of fault `index`.
    fn in_background(
        &self,
        index: usize,
        task: impl std::future::Future<Output = Result<String, FaultError>> + Send + 'static,
    ) {
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((index, tokio::spawn(task)));
    }

    fn proxy(&self, node: &str) -> Result<&ProxyControl, FaultError> {
        self.proxies
            .get(node)
            .ok_or_else(|| FaultError::NoProxy(node.to_owned()))
    }

    /// The nodes in an AZ or region.
    fn nodes_in<'n>(&'n self, zone: &'n str) -> impl Iterator<Item = &'n ClusterNode> + 'n {
        self.cluster
            .nodes()
            .iter()
            .filter(move |n| n.place.az == zone || n.place.region == zone)
    }

    /// The AZs named by an AZ or region name.
    fn zones(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self.nodes_in(name).map(|n| n.place.az.clone()).collect();
        out.dedup();
        out
    }

    async fn admin(
        &self,
        node: &str,
    ) -> Result<AdminClient<tonic::transport::Channel>, FaultError> {
        let n = self.cluster.node(node)?;
        AdminClient::connect(format!("http://{}", n.grpc))
            .await
            .map_err(|e| FaultError::Admin {
                node: node.into(),
                reason: e.to_string(),
            })
    }

    /// Injects `fault`; returns what was done, for the fault log.
    ///
    /// # Errors
    ///
    /// A [`FaultError`] saying why nothing (or not everything) was injected.
    pub async fn inject(&self, fault: &Fault) -> Result<String, FaultError> {
        match &fault.kind {
            FaultKind::ActorPanic {
                node,
                actor,
                in_forward,
                count,
                every_ms,
            } => {
                let mut admin = self.admin(node).await?;
                // The first panic is injected here, so an unknown actor fails the injection;
                // the rest run in the background so the schedule and the monitor keep going.
                let first = panic_once(&mut admin, node, actor, *in_forward).await?;
                let (node, actor, in_forward, count, every) = (
                    node.clone(),
                    actor.clone(),
                    *in_forward,
                    *count,
                    Duration::from_millis(*every_ms),
                );
                let rest = tokio::spawn(async move {
                    let mut generations = vec![first];
                    for _ in 1..count {
                        tokio::time::sleep(every).await;
                        generations.push(panic_once(&mut admin, &node, &actor, in_forward).await?);
                    }
                    Ok(format!(
                        "{count} panic(s) of {actor} done (generations {generations:?})"
                    ))
                });
                self.background
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((fault.index, rest));
                Ok(format!(
                    "panic 1 of {count} of {} (generation {first}); the rest every {every_ms} ms",
                    fault.kind.target()
                ))
            }
            FaultKind::ShardSlow {
                node,
                actor,
                delay_ms,
            } => {
                self.slow(node, actor, *delay_ms).await?;
                Ok(format!("{actor} slowed by {delay_ms} ms per forward pass"))
            }
            FaultKind::NodeKill { node, down_s } => {
                let node = if node == BUSIEST_OWNER {
                    self.busiest_owner().await?
                } else {
                    node.clone()
                };
                let target = self.cluster.node(&node)?;
                if *down_s > 0.0 {
                    target.process.hold_restarts(true);
                }
                let pid = target.process.signal(Signal::SIGKILL)?;
                self.set_targets(fault.index, vec![node.clone()]);
                if *down_s > 0.0 {
                    let down = Duration::from_secs_f64(*down_s);
                    self.release_later(fault.index, node.clone(), down);
                    return Ok(format!("SIGKILL {node} (pid {pid}); down for {down_s} s"));
                }
                Ok(format!("SIGKILL {node} (pid {pid})"))
            }
            FaultKind::RegionKill { region } => {
                let mut killed = Vec::new();
                for n in self.nodes_in(region) {
                    n.process.hold_restarts(true);
                    let pid = n.process.signal(Signal::SIGKILL)?;
                    killed.push(format!("{} (pid {pid})", n.place.name));
                }
                Ok(format!("SIGKILL {}; restarts held", killed.join(", ")))
            }
            FaultKind::NodeFreeze { node } => {
                let pid = self.cluster.node(node)?.process.signal(Signal::SIGSTOP)?;
                Ok(format!("SIGSTOP pid {pid}"))
            }
            FaultKind::RedisPrimaryKill => {
                let redis = self
                    .cluster
                    .redis()
                    .ok_or_else(|| ClusterError::Redis("the cluster has no Redis".into()))?;
                let name = redis.kill_primary().await?;
                Ok(format!("SIGKILL {name} (the primary)"))
            }
            FaultKind::Partition { isolate, between } => blocking(|| {
                let net = |e: super::netlab::NetLabError| FaultError::Network(e.to_string());
                let mut lab = crate::cluster::lock(self.lab()?);
                match (isolate, between) {
                    (Some(z), _) => {
                        let zones = self.zones(z);
                        let mut ids = Vec::new();
                        for zone in &zones {
                            ids.push(lab.isolate(zone).map_err(net)?);
                        }
                        self.remember(fault.index, ids);
                        Ok(format!(
                            "isolated {zones:?} from the client, Redis and every other AZ"
                        ))
                    }
                    (None, Some([a, b])) => {
                        let za: Vec<String> = a.iter().flat_map(|z| self.zones(z)).collect();
                        let zb: Vec<String> = b.iter().flat_map(|z| self.zones(z)).collect();
                        let ra: Vec<&str> = za.iter().map(String::as_str).collect();
                        let rb: Vec<&str> = zb.iter().map(String::as_str).collect();
                        let id = lab.partition(&ra, &rb).map_err(net)?;
                        self.remember(fault.index, vec![id]);
                        Ok(format!("partitioned {ra:?} from {rb:?}"))
                    }
                    (None, None) => Err(FaultError::Network("empty partition".into())),
                }
            }),
            FaultKind::Loss { zone, percent } => blocking(|| {
                let net = |e: super::netlab::NetLabError| FaultError::Network(e.to_string());
                let mut lab = crate::cluster::lock(self.lab()?);
                let zones = self.zones(zone);
                let mut ids = Vec::new();
                for z in &zones {
                    ids.push(lab.loss(z, *percent).map_err(net)?);
                }
                self.remember(fault.index, ids);
                Ok(format!("{percent}% packet loss on {zones:?}"))
            }),
            FaultKind::Latency {
                node,
                latency_ms,
                jitter_ms,
            } => {
                self.proxy(node)?.set_latency(
                    Duration::from_millis(*latency_ms),
                    Duration::from_millis(*jitter_ms),
                );
                Ok(format!("+{latency_ms} ms (jitter {jitter_ms} ms) each way"))
            }
            FaultKind::Stall { node } => {
                self.proxy(node)?.stall(true);
                Ok("proxy stalled (connections open, no bytes)".into())
            }
            FaultKind::Deploy { expect, .. } => {
                let request = fault
                    .kind
                    .deploy_request()
                    .ok_or_else(|| FaultError::Admin {
                        node: String::new(),
                        reason: "a deploy fault without a deploy request".into(),
                    })?;
                let (nodes, expect, results, fault_no) = (
                    self.node_urls(),
                    expect.clone(),
                    self.deploys.clone(),
                    fault.index + 1,
                );
                self.in_background(fault.index, async move {
                    let result = deploy_faults::deploy(fault_no, nodes, request, expect).await;
                    let (_, account) = result.judge();
                    results
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(result);
                    Ok(format!("deploy {account}"))
                });
                Ok(format!(
                    "deploying {} in the background",
                    fault.kind.target()
                ))
            }
            FaultKind::PoisonVersion { .. } | FaultKind::SlowVersion { .. } => {
                let urls = self.node_urls().into_iter().map(|(_, u)| u).collect();
                let kind = fault.kind.clone();
                self.in_background(fault.index, async move {
                    deploy_faults::spoil(urls, &kind)
                        .await
                        .map_err(|reason| FaultError::Admin {
                            node: "every node".into(),
                            reason,
                        })
                });
                Ok(format!(
                    "waiting for {} to load and warm up on every node, then {}",
                    fault.kind.target(),
                    fault.kind.name()
                ))
            }
            FaultKind::ConnectionCut { node } => {
                self.proxy(node)?.cut();
                Ok("every connection reset".into())
            }
        }
    }

    /// Heals a lasting fault.
    ///
    /// # Errors
    ///
    /// A [`FaultError`] if the heal failed (the fault may still be active).
    pub async fn heal(&self, fault: &Fault) -> Result<String, FaultError> {
        match &fault.kind {
            FaultKind::ShardSlow { node, actor, .. } => {
                self.slow(node, actor, 0).await?;
                Ok(format!("{actor} back to normal speed"))
            }
            FaultKind::NodeFreeze { node } => {
                let pid = self.cluster.node(node)?.process.signal(Signal::SIGCONT)?;
                Ok(format!("SIGCONT pid {pid}"))
            }
            FaultKind::RegionKill { region } => {
                for n in self.nodes_in(region) {
                    n.process.hold_restarts(false);
                }
                Ok(format!("{region} released: its nodes restart"))
            }
            FaultKind::Partition { .. } | FaultKind::Loss { .. } => blocking(|| {
                let ids = self
                    .installed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&fault.index)
                    .unwrap_or_default();
                let mut lab = crate::cluster::lock(self.lab()?);
                for id in &ids {
                    lab.heal_fault(*id)
                        .map_err(|e| FaultError::Network(e.to_string()))?;
                }
                Ok(format!("{} rule set(s) removed", ids.len()))
            }),
            FaultKind::Latency { node, .. } => {
                self.proxy(node)?.clear_latency();
                Ok("latency removed".into())
            }
            FaultKind::Stall { node } => {
                self.proxy(node)?.stall(false);
                Ok("proxy forwarding again".into())
            }
            FaultKind::ActorPanic { .. }
            | FaultKind::NodeKill { .. }
            | FaultKind::RedisPrimaryKill
            | FaultKind::ConnectionCut { .. }
            | FaultKind::Deploy { .. }
            | FaultKind::PoisonVersion { .. }
            | FaultKind::SlowVersion { .. } => Ok("nothing to heal".into()),
        }
    }

    /// The nodes `fault` takes away from the rest of the cluster (empty for faults that do
    /// not lose nodes): as resolved when it was injected for `busiest-owner`.
    pub fn targets(&self, fault: &Fault) -> Vec<String> {
        if let Some(t) = self
            .resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fault.index)
        {
            return t.clone();
        }
        let zones: Vec<&str> = match &fault.kind {
            FaultKind::NodeKill { node, .. } | FaultKind::NodeFreeze { node } => {
                return vec![node.clone()];
            }
            FaultKind::RegionKill { region } => vec![region.as_str()],
            FaultKind::Partition {
                isolate: Some(zone),
                ..
            } => vec![zone.as_str()],
            FaultKind::Partition {
                between: Some([_, far]),
                ..
            } => far.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        zones
            .into_iter()
            .flat_map(|z| self.nodes_in(z))
            .map(|n| n.place.name.clone())
            .collect()
    }

    /// Lets `node` restart again after `down` (a background part of fault `index`).
    fn release_later(&self, index: usize, node: String, down: Duration) {
        let process = match self.cluster.node(&node) {
            Ok(n) => n.process.handle(),
            Err(_) => return,
        };
        let task = tokio::spawn(async move {
            tokio::time::sleep(down).await;
            process.hold_restarts(false);
            Ok(format!(
                "{node} released after {:.1} s down",
                down.as_secs_f64()
            ))
        });
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((index, task));
    }

    fn set_targets(&self, index: usize, nodes: Vec<String>) {
        self.resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(index, nodes);
    }

    /// The node that owns the most recurrent sessions right now.
    async fn busiest_owner(&self) -> Result<String, FaultError> {
        let mut best: Option<(u64, String)> = None;
        for n in self.cluster.nodes() {
            let url = format!("http://{}", n.grpc);
            let Ok(Ok(mut client)) =
                tokio::time::timeout(Duration::from_millis(500), ClusterClient::connect(url)).await
            else {
                continue;
            };
            let Ok(Ok(view)) = tokio::time::timeout(
                Duration::from_millis(500),
                client.members(MembersRequest {}),
            )
            .await
            else {
                continue;
            };
            let owned = view.into_inner().load.map_or(0, |l| l.sessions_owned);
            if best.as_ref().is_none_or(|(b, _)| owned > *b) {
                best = Some((owned, n.place.name.clone()));
            }
        }
        best.map(|(_, name)| name).ok_or_else(|| FaultError::Admin {
            node: BUSIEST_OWNER.into(),
            reason: "no node answered fudo.v1.Cluster/Members".into(),
        })
    }

    fn lab(&self) -> Result<&Mutex<super::netlab::NetLab>, FaultError> {
        self.cluster
            .netlab()
            .ok_or_else(|| FaultError::Network("the cluster does not run in namespaces".into()))
    }

    fn remember(&self, index: usize, ids: Vec<FaultId>) {
        self.installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(index, ids);
    }

    async fn slow(&self, node: &str, actor: &str, delay_ms: u64) -> Result<(), FaultError> {
        self.admin(node)
            .await?
            .slow_shard(SlowShardRequest {
                name: actor.to_owned(),
                delay_ms,
            })
            .await
            .map_err(|s| FaultError::Admin {
                node: node.to_owned(),
                reason: s.message().to_owned(),
            })?;
        Ok(())
    }
}

/// Runs `work`, which blocks (the netlab runs `ip` and `nft` and waits for them), without
/// stalling the tasks queued on this runtime worker: on a multi-threaded runtime the worker
/// hands its queue to another thread first. The load generator shares this runtime, and a
/// worker stuck in `nft` on a busy 2-core machine would otherwise delay its timers.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
