//! A node: one OS process serving a set of models, rooted in one supervisor.
//!
//! ```text
//! node (one_for_one)
//! └── <model> (rest_for_one) × models: router, shards (one_for_one): shard × N
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
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ractor::{ActorRef, rpc::CallResult};
use thiserror::Error;
use tokio::{sync::Mutex, task::JoinHandle};

use super::ModelHost;
use crate::{
    config::{Config, SessionBackend},
    metrics::Metrics,
    model::{self, ModelError},
    sessions::{SessionConfig, SessionStore, SessionTable, StoreError},
    supervision::{
        Directory, Intensity, Strategy, Supervisor, SupervisorMsg, SupervisorSpec, TreeNode,
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
    /// Served models by name.
    pub models: BTreeMap<String, Arc<ModelHost>>,
    /// Recurrent session state.
    pub sessions: SessionTable,
    /// Where supervised actors are published.
    pub directory: Directory,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
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
            Some(root) => model::ModelRepository::open(root)?.load_latest(&device)?,
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
        let models: BTreeMap<String, Arc<ModelHost>> = loaded
            .into_iter()
            .map(|m| {
                tracing::info!(model = %m.name, version = %m.version, "model loaded and verified");
                let host = Arc::new(ModelHost::new(m, &config.models, metrics.clone()));
                (host.name.clone(), host)
            })
            .collect();
        let store = match config.sessions.backend {
            SessionBackend::Memory => SessionStore::memory(),
            SessionBackend::Redis => {
                SessionStore::redis(&config.sessions.redis_url, Default::default()).await?
            }
        };
        let sessions = SessionTable::new(
            store,
            SessionConfig {
                retained_results: config.sessions.retained_results,
                idle_ttl: Duration::from_secs(config.sessions.idle_ttl_s),
            },
        );
        let directory = Directory::default();
        let spec = SupervisorSpec {
            name: "node".to_owned(),
            strategy: Strategy::OneForOne,
            intensity: Intensity {
                max_restarts: config.models.max_restarts,
                period: Duration::from_millis(config.models.restart_period_ms),
            },
            backoff: config.models.backoff(),
            children: models
                .values()
                .map(|m| m.child_spec(directory.clone()))
                .collect(),
            directory: directory.clone(),
        };
        let (root, root_task) = Supervisor::start(spec, None)
            .await
            .map_err(|e| NodeError::Spawn(e.to_string()))?;
        Ok(Arc::new(NodeHandle {
            config,
            models,
            sessions,
            directory,
            metrics,
            root,
            root_task: Mutex::new(Some(root_task)),
            draining: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
        }))
    }
}

impl NodeHandle {
    /// The model `name`, if served (and `version` matches when given).
    pub fn model(&self, name: &str, version: &str) -> Option<&Arc<ModelHost>> {
        self.models
            .get(name)
            .filter(|m| version.is_empty() || m.version == version)
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

    /// Whether every model has a live shard and the node is not draining.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.models.values().all(|m| m.queue.live_workers() > 0)
    }

    /// Stops taking new requests; queued and in-flight ones finish. Returns rows still queued.
    pub fn drain(&self) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.set(1);
        self.models
            .values()
            .map(|m| {
                m.queue.drain();
                m.queue.depth() + m.queue.in_flight()
            })
            .sum()
    }

    /// The live supervision tree.
    pub async fn tree(&self) -> Result<TreeNode, NodeError> {
        match self
            .root
            .call(SupervisorMsg::Tree, Some(Duration::from_secs(2)))
            .await
        {
            Ok(CallResult::Success(tree)) => Ok(tree),
            Ok(CallResult::Timeout) => Err(NodeError::Tree("timed out".to_owned())),
            Ok(CallResult::SenderError) => Err(NodeError::Tree("root supervisor is gone".into())),
            Err(e) => Err(NodeError::Tree(e.to_string())),
        }
    }

    /// Refreshes the gauges that are read rather than counted.
    pub fn refresh_gauges(&self) {
        for (name, m) in &self.models {
            let label = crate::metrics::ModelLabel {
                model: name.clone(),
            };
            self.metrics
                .queue_depth
                .get_or_create(&label)
                .set(m.queue.depth() as i64);
            self.metrics
                .redispatched
                .get_or_create(&label)
                .set(m.queue.stats().redispatched.load(Ordering::Relaxed) as i64);
        }
        self.metrics.sessions.set(self.sessions.len() as i64);
        let health = self.sessions.store_health();
        self.metrics
            .session_store_degraded
            .set(i64::from(health.degraded));
        self.metrics
            .session_store_buffered
            .set(health.buffered_writes as i64);
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
