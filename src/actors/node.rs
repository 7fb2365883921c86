//! A node: one OS process serving a set of models, rooted in one supervisor.
//!
//! ```text
//! node (one_for_one)
//! ├── <model>@<version> (rest_for_one) × loaded versions: router, shards (one_for_one)
//! ├── cluster (one_for_one): region link × peers        (when `cluster.peers` is set)
//! └── deployer                                           (runs model deploys)
//! ```
//!
//! Loading weights happens once, before any actor starts; the session table and the metrics
//! registry also live outside the tree, so no restart anywhere loses them. If the root
//! supervisor gives up (restart intensity exceeded all the way up) the node reports it through
//! [`NodeHandle::wait_stopped`] and the binary exits, so the process supervisor (systemd,
//! Kubernetes) restarts the whole process.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ractor::{ActorRef, rpc::CallResult};
use thiserror::Error;
use tokio::{sync::Mutex, task::JoinHandle};

use super::{
    ModelHost, ServedModel,
    link_auth::{LinkAuth, SharedToken},
    membership::{Membership, MembershipConfig, PeerState},
    region_link::{LinkContext, RegionLink},
};
use crate::{
    api::proto::fudo::v1::{ModelLoad, NodeIdentity, NodeLoad},
    config::{Config, SessionBackend},
    metrics::Metrics,
    model::{self, ModelError},
    sessions::{RedisStoreOptions, SessionConfig, SessionStore, SessionTable, StoreError},
    supervision::{
        Backoff, ChildSpec, Directory, Intensity, RestartType, Strategy, Supervisor, SupervisorMsg,
        SupervisorSpec, TreeNode, spawn_linked_fn,
    },
};

/// Why a node could not start or answer.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A model failed to load or verify.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The session store could not be opened.
    #[error("session store: {0}")]
    Store(#[from] StoreError),
    /// The supervision tree could not be started.
    #[error("cannot start supervision tree: {0}")]
    Spawn(String),
    /// The supervision tree did not answer.
    #[error("supervision tree did not answer: {0}")]
    Tree(String),
    /// No models to serve.
    #[error("no models found in {0}")]
    NoModels(String),
}

/// The entry point.
pub struct Node;

/// Everything the API layer needs from a running node. Cheap to share (`Arc`).
pub struct NodeHandle {
    /// The configuration it runs with.
    pub config: Config,
    /// Served models by name, each with its loaded versions and routing rule.
    pub models: BTreeMap<String, Arc<ServedModel>>,
    /// Recurrent session state.
    pub sessions: SessionTable,
    /// Where supervised actors are published.
    pub directory: Directory,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Who this node is, as its region links introduce it.
    pub identity: NodeIdentity,
    /// This node's view of its peers, fed by the region links.
    pub membership: Arc<Membership>,
    /// The check incoming region links must pass.
    pub link_auth: Arc<dyn LinkAuth>,
    /// The deploy history of this node.
    pub deploys: Arc<crate::deploy::board::DeployBoard>,
    root: ActorRef<SupervisorMsg>,
    root_task: Mutex<Option<JoinHandle<()>>>,
    draining: AtomicBool,
    next_request: AtomicU64,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node", &self.config.server.node_name)
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Loads and verifies the models, opens the session store and starts the supervision tree.
    pub async fn start(config: Config) -> Result<Arc<NodeHandle>, NodeError> {
        let metrics = Arc::new(Metrics::new());
        let device = model::select_device(&config.models.device)?;
        let loaded = match &config.models.repository {
            Some(root) => model::ModelRepository::open(root)?.load_released(&device)?,
            None => model::bundled_models(&device)?,
        };
        if loaded.is_empty() {
            let root = config
                .models
                .repository
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the bundled models".to_owned());
            return Err(NodeError::NoModels(root));
        }
        let hosts: Vec<Arc<ModelHost>> = loaded
            .into_iter()
            .map(|m| {
                tracing::info!(model = %m.name, version = %m.version, "model loaded and verified");
                Arc::new(ModelHost::new(m, &config.models, metrics.clone()))
            })
            .collect();
        let models: BTreeMap<String, Arc<ServedModel>> = hosts
            .iter()
            .map(|host| (host.name.clone(), Arc::new(ServedModel::new(host.clone()))))
            .collect();
        let store = match config.sessions.backend {
            SessionBackend::Memory => SessionStore::memory(),
            SessionBackend::Redis => {
                let opts = RedisStoreOptions {
                    ca_file: config.sessions.redis_ca_file().map(ToOwned::to_owned),
                    ..Default::default()
                };
                SessionStore::redis(&config.sessions.redis_url, opts).await?
            }
        };
        let sessions = SessionTable::new(
            store,
            SessionConfig {
                retained_results: config.sessions.retained_results,
                idle_ttl: Duration::from_secs(config.sessions.idle_ttl_s),
                replay_window: config.sessions.replay_window,
            },
        );
        let directory = Directory::default();
        let cluster = &config.cluster;
        let identity = NodeIdentity {
            node: config.server.node_name.clone(),
            region: config.server.region.clone(),
            az: config.server.az.clone(),
            url: cluster.advertised(config.server.grpc_addr),
            incarnation: u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
        };
        let peers = cluster.peers_except(&identity.url);
        let heartbeat = Duration::from_millis(cluster.heartbeat_ms);
        let membership = Arc::new(Membership::new(
            MembershipConfig::for_heartbeat(
                heartbeat,
                cluster.phi_threshold,
                Duration::from_millis(cluster.stability_ms),
            ),
            &peers,
            tokio::time::Instant::now(),
        ));
        let link_auth: Arc<dyn LinkAuth> = Arc::new(SharedToken::new(cluster.link_token.clone()));
        // The links report the node's load, but the node handle exists only once the tree
        // has started: they read it through this slot (an empty load until then).
        let handle_slot: Arc<OnceLock<Weak<NodeHandle>>> = Arc::default();
        let mut children: Vec<ChildSpec> = hosts
            .iter()
            .map(|m| m.child_spec(directory.clone()))
            .collect();
        if !peers.is_empty() {
            let slot = handle_slot.clone();
            let ctx = LinkContext {
                identity: identity.clone(),
                load: Arc::new(move || {
                    slot.get()
                        .and_then(Weak::upgrade)
                        .map(|node| node.load())
                        .unwrap_or_default()
                }),
                membership: membership.clone(),
                auth: link_auth.clone(),
                heartbeat,
                reconnect: Backoff {
                    initial: Duration::from_millis(cluster.reconnect_initial_ms),
                    max: Duration::from_millis(cluster.reconnect_max_ms),
                },
            };
            children.push(cluster_spec(&peers, ctx, directory.clone()));
        }
        children.push(
            ChildSpec::new(
                crate::deploy::DEPLOYER,
                "deployer",
                RestartType::Permanent,
                spawn_linked_fn(|_| (super::deployer::Deployer, ())),
            )
            .with_name(crate::deploy::DEPLOYER),
        );
        let config_node_name = config.server.node_name.clone();
        let spec = SupervisorSpec {
            name: "node".to_owned(),
            strategy: Strategy::OneForOne,
            intensity: Intensity {
                max_restarts: config.models.max_restarts,
                period: Duration::from_millis(config.models.restart_period_ms),
            },
            backoff: config.models.backoff(),
            children,
            directory: directory.clone(),
        };
        let (root, root_task) = Supervisor::start(spec, None)
            .await
            .map_err(|e| NodeError::Spawn(e.to_string()))?;
        let node = Arc::new(NodeHandle {
            config,
            models,
            sessions,
            directory,
            metrics,
            identity,
            membership,
            link_auth,
            deploys: Arc::new(crate::deploy::board::DeployBoard::new(
                config_node_name.clone(),
            )),
            root,
            root_task: Mutex::new(Some(root_task)),
            draining: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
        });
        let _ = handle_slot.set(Arc::downgrade(&node));
        Ok(node)
    }
}

/// The `cluster` subtree: one region link per peer, each restarted on its own.
fn cluster_spec(peers: &[String], ctx: LinkContext, directory: Directory) -> ChildSpec {
    let peers = peers.to_vec();
    Supervisor::child_spec(
        Arc::new(move || SupervisorSpec {
            name: "cluster".to_owned(),
            strategy: Strategy::OneForOne,
            intensity: Intensity {
                max_restarts: 10,
                period: Duration::from_secs(10),
            },
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_secs(1),
            },
            children: peers
                .iter()
                .enumerate()
                .map(|(i, url)| {
                    let (url, ctx) = (url.clone(), ctx.clone());
                    ChildSpec::new(
                        format!("link-{i}"),
                        "region_link",
                        RestartType::Permanent,
                        spawn_linked_fn(move |_| (RegionLink, (url.clone(), ctx.clone()))),
                    )
                })
                .collect(),
            directory: directory.clone(),
        }),
        RestartType::Permanent,
    )
}

impl NodeHandle {
    /// The model `name`, if served.
    pub fn model(&self, name: &str) -> Option<&Arc<ServedModel>> {
        self.models.get(name)
    }

    /// Every loaded version of every model.
    pub fn hosts(&self) -> impl Iterator<Item = Arc<ModelHost>> + '_ {
        self.models.values().flat_map(|m| m.hosts())
    }

    /// Asks the root supervisor; `what` names the request in a timeout error.
    async fn call_root<T: Send + 'static>(
        &self,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> SupervisorMsg,
        timeout: Duration,
        what: &str,
    ) -> Result<T, NodeError> {
        match self.root.call(msg, Some(timeout)).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            Ok(CallResult::Timeout) => Err(NodeError::Tree(format!("{what} timed out"))),
            Ok(CallResult::SenderError) => Err(NodeError::Tree("root supervisor is gone".into())),
            Err(e) => Err(NodeError::Tree(e.to_string())),
        }
    }

    /// Starts a loaded version's supervision subtree under the node's root supervisor.
    pub async fn start_version(&self, host: &Arc<ModelHost>) -> Result<(), NodeError> {
        let spec = host.child_spec(self.directory.clone());
        self.call_root(
            |reply| SupervisorMsg::StartChild(spec, reply),
            Duration::from_secs(10),
            "starting a version",
        )
        .await?
        .map(|_| ())
        .map_err(|e| NodeError::Spawn(e.to_string()))
    }

    /// Stops a version's subtree (its queue drains first) and removes it from the tree.
    pub async fn stop_version(&self, host: &Arc<ModelHost>) -> Result<(), NodeError> {
        host.queue.drain();
        self.call_root(
            |reply| SupervisorMsg::TerminateChild(host.prefix.clone(), reply),
            Duration::from_secs(10),
            "stopping a version",
        )
        .await?
        .map_err(|e| NodeError::Spawn(e.to_string()))
    }

    /// Names of the served models.
    pub fn model_names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// A fresh request id for requests that carry none.
    pub fn next_request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.config.server.node_name)
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether the node should receive traffic: see [`NodeHandle::not_serving_reason`].
    pub fn is_ready(&self) -> bool {
        self.not_serving_reason().is_none()
    }

    /// Why `grpc.health.v1` says NOT_SERVING, or `None` when it says SERVING:
    /// - `draining`: the node was asked to stop taking work;
    /// - `no live shard for <model>`: a model lost all its shards;
    /// - `fenced: ...`: the node is on the minority side of a partition *and* cannot reach
    ///   the session store, so it can neither learn nor prove which sessions it still owns;
    ///   load balancers and clients should move to the majority side.
    pub fn not_serving_reason(&self) -> Option<String> {
        if self.is_draining() {
            return Some("draining".to_owned());
        }
        if let Some((name, _)) = self
            .models
            .iter()
            .find(|(_, m)| m.live().queue.live_workers() == 0)
        {
            return Some(format!("no live shard for {name}"));
        }
        if self.membership.is_minority() && self.sessions.store_health().degraded {
            return Some(format!(
                "fenced: minority side of a partition ({} of {} cluster members reachable) and the session store is unreachable",
                self.membership.up_count() + 1,
                self.membership.len() + 1
            ));
        }
        None
    }

    /// This node's health and capacity, as its region links report it.
    pub fn load(&self) -> NodeLoad {
        let reason = self.not_serving_reason();
        let store = self.sessions.store_health();
        NodeLoad {
            serving: reason.is_none(),
            reason: reason.unwrap_or_default(),
            draining: self.is_draining(),
            models: self
                .models
                .values()
                .map(|served| {
                    let m = served.live();
                    let depth = m.queue.depth() as u64;
                    ModelLoad {
                        name: m.name.clone(),
                        version: m.version.clone(),
                        live_shards: u32::try_from(m.queue.live_workers()).unwrap_or(u32::MAX),
                        total_shards: u32::try_from(m.slots.len()).unwrap_or(u32::MAX),
                        queue_depth: depth,
                        free_slots: (m.queue.limits().capacity as u64).saturating_sub(depth),
                    }
                })
                .collect(),
            sessions_owned: self.sessions.len() as u64,
            fenced_writes: store.fenced_total,
            store_degraded: store.degraded,
        }
    }

    /// Counts a request spilled to a peer.
    pub fn record_spill(&self) {
        self.metrics.spilled.inc();
    }

    /// Requests spilled to peers since start.
    pub fn spilled(&self) -> u64 {
        self.metrics.spilled.get()
    }

    /// Stops taking new requests; queued and in-flight ones finish. Returns rows still queued.
    pub fn drain(&self) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.set(1);
        self.hosts()
            .map(|m| {
                m.queue.drain();
                m.queue.depth() + m.queue.in_flight()
            })
            .sum()
    }

    /// The live supervision tree.
    pub async fn tree(&self) -> Result<TreeNode, NodeError> {
        self.call_root(
            SupervisorMsg::Tree,
            Duration::from_secs(2),
            "the tree request",
        )
        .await
    }

    /// Refreshes the gauges that are read rather than counted.
    pub fn refresh_gauges(&self) {
        for (name, served) in &self.models {
            let label = crate::metrics::ModelLabel {
                model: name.clone(),
            };
            let hosts = served.hosts();
            let depth: usize = hosts.iter().map(|m| m.queue.depth()).sum();
            let redispatched: u64 = hosts
                .iter()
                .map(|m| m.queue.stats().redispatched.load(Ordering::Relaxed))
                .sum();
            self.metrics
                .queue_depth
                .get_or_create(&label)
                .set(depth as i64);
            self.metrics
                .redispatched
                .get_or_create(&label)
                .set(redispatched as i64);
        }
        self.metrics.sessions.set(self.sessions.len() as i64);
        let health = self.sessions.store_health();
        self.metrics
            .session_store_degraded
            .set(i64::from(health.degraded));
        self.metrics
            .session_store_buffered
            .set(health.buffered_writes as i64);
        self.metrics
            .session_writes_fenced
            .set(i64::try_from(health.fenced_total).unwrap_or(i64::MAX));
        self.metrics.serving.set(i64::from(self.is_ready()));
        let members = self.membership.members(tokio::time::Instant::now());
        for state in PeerState::ALL.map(PeerState::name) {
            let n = members.iter().filter(|m| m.state == state).count();
            self.metrics
                .cluster_members
                .get_or_create(&crate::metrics::StateLabel {
                    state: state.to_owned(),
                })
                .set(n as i64);
        }
        for m in &members {
            let peer = crate::metrics::PeerLabel {
                peer: m
                    .identity
                    .as_ref()
                    .map_or_else(|| m.url.clone(), |i| i.node.clone()),
            };
            self.metrics
                .link_rtt_seconds
                .get_or_create(&peer)
                .set(m.rtt_ms / 1e3);
            self.metrics
                .member_deaths
                .get_or_create(&peer)
                .set(i64::try_from(m.deaths).unwrap_or(i64::MAX));
        }
    }

    /// Resolves when the root supervisor has stopped (normally or by escalation).
    pub async fn wait_stopped(&self) {
        let task = self.root_task.lock().await.take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops the supervision tree (children in reverse start order) and waits for it.
    pub async fn shutdown(&self) {
        self.drain();
        self.root.stop(Some("node shutdown".to_owned()));
        self.wait_stopped().await;
    }
}
