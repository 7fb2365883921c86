//! The local cluster launcher behind `fudo up` and the chaos runner: N `fudo serve` node
//! processes labelled with regions and AZs, a real Redis primary + replica + Sentinels, each
//! process restarted when it exits (systemd's `Restart=always`), and everything it started
//! stopped again on exit — by pid, nothing else.
//!
//! With [`NetworkMode::Netns`] each AZ runs in a network namespace of its own (see
//! [`crate::chaos::netlab`]), so the chaos runner can cut or degrade the network between AZs
//! and regions without any traffic leaving the machine.

mod redis_ha;
mod supervised_process;
mod topology;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub use self::{
    redis_ha::{DOWN_AFTER_MS, MASTER_NAME, RedisHa, RedisMode},
    supervised_process::{ProcessSpec, SupervisedProcess},
    topology::{NodePlace, RegionSpec, Topology},
};
use crate::{chaos::netlab::NetLab, client::Endpoint};

/// Why the cluster could not be started or operated.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The topology is malformed.
    #[error("topology: {0}")]
    Topology(String),
    /// A process could not be started.
    #[error("starting {name}: {reason}")]
    Spawn {
        /// Process name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A process is between an exit and its restart.
    #[error("{0} is not running right now")]
    NotRunning(String),
    /// A signal could not be delivered.
    #[error("signalling {name} (pid {pid}): {reason}")]
    Signal {
        /// Process name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The kernel's answer.
        reason: String,
    },
    /// Something did not become ready in time.
    #[error("not ready: {0}")]
    NotReady(String),
    /// Talking to Redis or Sentinel failed.
    #[error("redis: {0}")]
    Redis(String),
    /// Creating or changing the network namespaces failed.
    #[error("network: {0}")]
    Network(String),
    /// No such node, AZ or region.
    #[error("unknown {kind} {name:?}; known: {known:?}")]
    Unknown {
        /// `node`, `AZ` or `region`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// A file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where node processes live on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Every node on 127.0.0.1 (no root needed; network faults come only from the proxy).
    #[default]
    Loopback,
    /// One network namespace per AZ behind a bridge (root only).
    Netns,
}

/// What kind of thing happened to a cluster process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A process was (re)started.
    Started,
    /// A process exited on its own or was killed (it will be restarted).
    Exited,
    /// A process was stopped by the launcher.
    Stopped,
    /// A restart failed (it will be tried again).
    StartFailed,
    /// A component became ready.
    Ready,
}

/// One event of a cluster's life.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterEvent {
    /// When, on the monotonic clock (not serialized).
    #[serde(skip)]
    pub at: Instant,
    /// When, in UTC.
    pub wall: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
    /// To which process.
    pub who: String,
    /// Details (pid, exit status).
    pub detail: String,
}

/// The shared, append-only event log of a cluster (process starts, exits, restarts).
#[derive(Debug, Clone, Default)]
pub struct ClusterEvents(Arc<Mutex<Vec<ClusterEvent>>>);

impl ClusterEvents {
    /// Appends an event stamped now.
    pub fn push(&self, kind: EventKind, who: &str, detail: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ClusterEvent {
                at: Instant::now(),
                wall: Utc::now(),
                kind,
                who: who.to_owned(),
                detail: detail.into(),
            });
    }

    /// A copy of every event so far.
    #[must_use]
    pub fn snapshot(&self) -> Vec<ClusterEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Everything `fudo up` needs to know.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Regions, AZs and nodes.
    pub topology: Topology,
    /// Which Redis.
    pub redis: RedisMode,
    /// Loopback or namespaces.
    pub network: NetworkMode,
    /// Logs, Redis files and configs go here.
    pub dir: PathBuf,
    /// The `fudo` binary to run nodes with.
    pub fudo_exe: PathBuf,
    /// Extra `--set section.key=value` for every node.
    pub node_settings: Vec<String>,
    /// Pause before a node that exited is started again.
    pub node_restart_delay: Duration,
    /// Pause before a Redis process that exited is started again (longer than Sentinel's
    /// failover, so a killed primary comes back as a replica, as a replaced machine would).
    pub redis_restart_delay: Duration,
    /// Prefix of namespace and interface names (≤ 6 characters).
    pub netns_prefix: String,
}

impl ClusterSpec {
    /// The default local cluster: 2 regions × 2 AZs × 1 node, Sentinel Redis, loopback.
    ///
    /// # Errors
    ///
    /// If the path of the running executable cannot be found.
    pub fn local(dir: PathBuf) -> std::io::Result<Self> {
        Ok(Self {
            topology: Topology::default(),
            redis: RedisMode::Sentinel,
            network: NetworkMode::Loopback,
            dir,
            fudo_exe: std::env::current_exe()?,
            node_settings: Vec::new(),
            node_restart_delay: Duration::from_millis(500),
            redis_restart_delay: Duration::from_secs(5),
            netns_prefix: "fudo".into(),
        })
    }
}

/// One node process of the cluster.
#[derive(Debug)]
pub struct ClusterNode {
    /// Name, region and AZ.
    pub place: NodePlace,
    /// Its gRPC address (reachable from the launcher's namespace).
    pub grpc: SocketAddr,
    /// Its metrics address.
    pub metrics: SocketAddr,
    /// The process.
    pub process: SupervisedProcess,
}

/// A running local cluster. Call [`Cluster::stop`]; dropping it kills what it started.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<ClusterNode>,
    redis: Option<RedisHa>,
    netlab: Option<Mutex<NetLab>>,
    events: ClusterEvents,
    dir: PathBuf,
}

/// `n` loopback ports that were free a moment ago (bound together, then released).
///
/// # Errors
///
/// If the kernel has no free port.
pub fn free_ports(n: usize) -> Result<Vec<u16>, ClusterError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Cluster {
    /// Starts Redis (if any), then every node, and waits until all nodes answer health checks
    /// with SERVING.
    ///
    /// # Errors
    ///
    /// A [`ClusterError`] saying which part failed; whatever was started is stopped again.
    pub async fn start(spec: ClusterSpec) -> Result<Self, ClusterError> {
        spec.topology.validate()?;
        std::fs::create_dir_all(&spec.dir)?;
        let events = ClusterEvents::default();
        let netlab = match spec.network {
            NetworkMode::Loopback => None,
            NetworkMode::Netns => {
                let azs: Vec<String> = spec.topology.azs().into_iter().map(String::from).collect();
                let prefix = spec.netns_prefix.clone();
                let lab = tokio::task::spawn_blocking(move || {
                    NetLab::cleanup_stale(&prefix)?;
                    let azs: Vec<&str> = azs.iter().map(String::as_str).collect();
                    NetLab::create(&prefix, &azs)
                })
                .await
                .map_err(|e| ClusterError::Network(e.to_string()))?
                .map_err(|e| ClusterError::Network(e.to_string()))?;
                Some(Mutex::new(lab))
            }
        };
        let gateway = netlab.as_ref().map(|lab| lock(lab).gateway_addr());
        let (redis_host, binds): (IpAddr, Vec<IpAddr>) = match gateway {
            None => (Ipv4Addr::LOCALHOST.into(), vec![Ipv4Addr::LOCALHOST.into()]),
            Some(gw) => (gw.into(), vec![Ipv4Addr::LOCALHOST.into(), gw.into()]),
        };
        let mut cluster = Self {
            nodes: Vec::new(),
            redis: None,
            netlab,
            events: events.clone(),
            dir: spec.dir.clone(),
        };
        let redis_dir = spec.dir.join("redis");
        std::fs::create_dir_all(&redis_dir)?;
        match RedisHa::start(
            spec.redis,
            redis_host,
            &binds,
            &redis_dir,
            &events,
            spec.redis_restart_delay,
        )
        .await
        {
            Ok(redis) => cluster.redis = redis,
            Err(e) => {
                cluster.stop().await;
                return Err(e);
            }
        }
        if let Err(e) = cluster.start_nodes(&spec).await {
            cluster.stop().await;
            return Err(e);
        }
        if let Err(e) = cluster.wait_serving(Duration::from_secs(60)).await {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn start_nodes(&mut self, spec: &ClusterSpec) -> Result<(), ClusterError> {
        let places = spec.topology.nodes();
        let ports = free_ports(places.len() * 2)?;
        let mut planned = Vec::with_capacity(places.len());
        for (i, place) in places.into_iter().enumerate() {
            let (ip, prefix): (IpAddr, Vec<String>) = match &self.netlab {
                None => (Ipv4Addr::LOCALHOST.into(), Vec::new()),
                Some(lab) => {
                    let lab = lock(lab);
                    let missing =
                        || ClusterError::Network(format!("no namespace for {}", place.az));
                    (
                        lab.zone_addr(&place.az).ok_or_else(missing)?.into(),
                        lab.exec_prefix(&place.az).ok_or_else(missing)?,
                    )
                }
            };
            let grpc = SocketAddr::new(ip, ports[2 * i]);
            let metrics = SocketAddr::new(ip, ports[2 * i + 1]);
            planned.push((place, prefix, grpc, metrics));
        }
        // Every node links to every other node, in its own AZ, the other AZs and the other
        // region alike.
        let urls: Vec<String> = planned
            .iter()
            .map(|(_, _, grpc, _)| format!("\"http://{grpc}\""))
            .collect();
        for (i, (place, prefix, grpc, metrics)) in planned.into_iter().enumerate() {
            let peers: Vec<&str> = urls
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, u)| u.as_str())
                .collect();
            let mut argv = prefix;
            argv.push(spec.fudo_exe.display().to_string());
            argv.extend(["serve".into(), "--grpc-addr".into(), grpc.to_string()]);
            argv.extend(["--metrics-addr".into(), metrics.to_string()]);
            let mut settings = vec![
                format!("server.node_name={}", place.name),
                format!("server.region={}", place.region),
                format!("server.az={}", place.az),
                format!("cluster.peers=[{}]", peers.join(",")),
                "chaos.enabled=true".to_owned(),
            ];
            if let Some(redis) = &self.redis {
                settings.push("sessions.backend=redis".into());
                settings.push(format!("sessions.redis_url={}", redis.url()));
            }
            settings.extend(spec.node_settings.iter().cloned());
            for s in settings {
                argv.extend(["--set".into(), s]);
            }
            let process = SupervisedProcess::start(
                ProcessSpec {
                    name: place.name.clone(),
                    argv,
                    log: spec.dir.join(format!("{}.log", place.name)),
                    restart_delay: spec.node_restart_delay,
                },
                self.events.clone(),
            )?;
            self.nodes.push(ClusterNode {
                place,
                grpc,
                metrics,
                process,
            });
        }
        Ok(())
    }

    /// Waits until every node answers SERVING.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotReady`] naming the nodes that did not, with their log files.
    pub async fn wait_serving(&self, limit: Duration) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
            let mut waiting = Vec::new();
            for node in &self.nodes {
                if !node_serving(node.grpc).await {
                    waiting.push(node.place.name.clone());
                }
            }
            if waiting.is_empty() {
                for node in &self.nodes {
                    self.events
                        .push(EventKind::Ready, &node.place.name, node.grpc.to_string());
                }
                return Ok(());
            }
            if start.elapsed() > limit {
                let logs: Vec<String> = waiting
                    .iter()
                    .map(|n| self.dir.join(format!("{n}.log")).display().to_string())
                    .collect();
                return Err(ClusterError::NotReady(format!(
                    "nodes {waiting:?} not SERVING after {limit:?}; see {logs:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The nodes, in topology order.
    #[must_use]
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// A node by name.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unknown`] listing the names there are.
    pub fn node(&self, name: &str) -> Result<&ClusterNode, ClusterError> {
        self.nodes
            .iter()
            .find(|n| n.place.name == name)
            .ok_or_else(|| ClusterError::Unknown {
                kind: "node",
                name: name.into(),
                known: self.nodes.iter().map(|n| n.place.name.clone()).collect(),
            })
    }

    /// The Redis deployment, if any.
    #[must_use]
    pub fn redis(&self) -> Option<&RedisHa> {
        self.redis.as_ref()
    }

    /// The network namespaces, in [`NetworkMode::Netns`].
    #[must_use]
    pub fn netlab(&self) -> Option<&Mutex<NetLab>> {
        self.netlab.as_ref()
    }

    /// Process starts, exits and restarts so far.
    #[must_use]
    pub fn events(&self) -> &ClusterEvents {
        &self.events
    }

    /// Client endpoints for every node, tagged with region and AZ.
    #[must_use]
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.nodes
            .iter()
            .map(|n| Endpoint {
                url: format!("http://{}", n.grpc),
                region: n.place.region.clone(),
                az: n.place.az.clone(),
            })
            .collect()
    }

    /// A JSON description for operators and reports.
    #[must_use]
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir.display().to_string(),
            "redis": self.redis.as_ref().map(RedisHa::url),
            "network": if self.netlab.is_some() { "netns" } else { "loopback" },
            "nodes": self.nodes.iter().map(|n| serde_json::json!({
                "name": n.place.name,
                "region": n.place.region,
                "az": n.place.az,
                "grpc": n.grpc.to_string(),
                "metrics": n.metrics.to_string(),
                "pid": n.process.pid(),
                "log": self.dir.join(format!("{}.log", n.place.name)).display().to_string(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Stops every node, then Redis, then removes the namespaces.
    pub async fn stop(mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        let mut stops = tokio::task::JoinSet::new();
        for n in nodes {
            stops.spawn(n.process.stop(Duration::from_secs(5)));
        }
        while stops.join_next().await.is_some() {}
        if let Some(redis) = self.redis.take() {
            redis.stop().await;
        }
        if let Some(lab) = self.netlab.take() {
            let result = tokio::task::spawn_blocking(move || {
                lab.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .teardown()
            })
            .await;
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "removing the network namespaces");
            }
        }
    }
}

/// Locks the lab; a poisoned lock still holds a usable lab (its state is the kernel's).
pub fn lock(lab: &Mutex<NetLab>) -> std::sync::MutexGuard<'_, NetLab> {
    lab.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the node at `addr` answers the health check with SERVING within 500 ms.
pub async fn node_serving(addr: SocketAddr) -> bool {
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(Duration::from_millis(300))
            .connect()
            .await
            .ok()?;
        let resp = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        Some(resp.get_ref().status == ServingStatus::Serving as i32)
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), check).await,
        Ok(Some(true))
    )
}
