//! The fault kinds a scenario's `[[fault]]` entries name, and what each one implies (whether
//! it lasts, loses nodes, needs the fault proxy or network namespaces).

use serde::Deserialize;

use super::yes;
use crate::api::proto::fudo::v1::DeployRequest;

/// What a fault does (the `kind` key of a `[[fault]]` entry).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultKind {
    /// Panics an actor through the admin API (`count` times, `every_ms` apart).
    ActorPanic {
        /// Node name.
        node: String,
        /// Actor name, e.g. `ppo_mlp/shard-0`.
        actor: String,
        /// Panic inside a forward pass (the worker thread) rather than in the actor.
        #[serde(default = "yes")]
        in_forward: bool,
        /// How many panics.
        #[serde(default = "one_u32")]
        count: u32,
        /// Pause between panics.
        #[serde(default)]
        every_ms: u64,
    },
    /// Slows every forward pass of a shard by `delay_ms` for `for_s`.
    ShardSlow {
        /// Node name.
        node: String,
        /// Shard name, e.g. `ppo_mlp/shard-0`.
        actor: String,
        /// Added to each forward pass.
        delay_ms: u64,
    },
    /// SIGKILL of a node process (the launcher restarts it). `node = "busiest-owner"` picks,
    /// at injection time, the node that owns the most recurrent sessions (asked through
    /// `fudo.v1.Cluster/Members`).
    NodeKill {
        /// Node name, or `busiest-owner`.
        node: String,
        /// Keep the node down this long before the launcher may restart it (default 0: it
        /// restarts after the cluster's restart delay, as systemd would).
        #[serde(default)]
        down_s: f64,
    },
    /// SIGKILL of every node of a region, kept down (no restarts) for `for_s`.
    RegionKill {
        /// Region name.
        region: String,
    },
    /// SIGSTOP, then SIGCONT after `for_s`: a frozen process with its sockets open.
    NodeFreeze {
        /// Node name.
        node: String,
    },
    /// SIGKILL of the Redis primary; Sentinel promotes the replica.
    RedisPrimaryKill,
    /// Drops packets (nftables) for `for_s`: `isolate` cuts one AZ or region from everything,
    /// `between` cuts two groups of AZs/regions from each other.
    Partition {
        /// An AZ or region to cut off.
        isolate: Option<String>,
        /// Two groups to cut apart.
        between: Option<[Vec<String>; 2]>,
    },
    /// Random packet loss (nftables `numgen random`) on an AZ or region for `for_s`.
    Loss {
        /// AZ or region.
        zone: String,
        /// Percent of packets dropped, 1-100.
        percent: u8,
    },
    /// Added latency (and jitter) on the path to a node, through the fault proxy, for `for_s`.
    Latency {
        /// Node name.
        node: String,
        /// One-way latency added in each direction.
        latency_ms: u64,
        /// Extra uniform random delay, 0..jitter.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// The proxy to a node stops forwarding bytes (connections stay open) for `for_s`.
    Stall {
        /// Node name.
        node: String,
    },
    /// The proxy to a node resets every connection once.
    ConnectionCut {
        /// Node name.
        node: String,
    },
    /// Deploys a model version across the cluster as `fudo deploy` does, in the background;
    /// `deploys-as-expected` checks the outcome. Needs `cluster.models = "deploy-fixtures"`.
    Deploy {
        /// Model name.
        model: String,
        /// Version to deploy.
        version: String,
        /// blue-green, canary, rolling or shadow.
        #[serde(default = "default_strategy")]
        strategy: String,
        /// Seconds of shadow traffic (0: the default; negative: none).
        #[serde(default)]
        shadow_s: f64,
        /// Bake seconds (0: the default).
        #[serde(default)]
        bake_s: f64,
        /// Seconds per canary or rolling step (0: the default).
        #[serde(default)]
        step_s: f64,
        /// Canary shares, percent.
        #[serde(default)]
        steps_pct: Vec<f64>,
        /// Longest the previous version stays loaded after success (0: the default).
        #[serde(default)]
        retire_s: f64,
        /// Move every session to the new version at the switch (re-warmed by replay).
        #[serde(default)]
        migrate_sessions: bool,
        /// `succeeded` or `rolled-back`.
        expect: String,
    },
    /// Once `version` of `model` is loaded and warmed up on every node (a deploy does both),
    /// its answers turn NaN after `nan_after` more rows: a version that goes bad after warm-up.
    PoisonVersion {
        /// Model name.
        model: String,
        /// Version.
        version: String,
        /// Rows answered normally first (over all of the version's shards).
        nan_after: u64,
    },
    /// Once `version` of `model` is loaded and warmed up on every node, each of its forward
    /// passes takes
    /// `delay_ms` longer: a version that is many times slower.
    SlowVersion {
        /// Model name.
        model: String,
        /// Version.
        version: String,
        /// Added to each forward pass of the version's shards.
        delay_ms: u64,
    },
}

fn default_strategy() -> String {
    "blue-green".into()
}

fn one_u32() -> u32 {
    1
}

impl FaultKind {
    /// The `kind` string.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::ActorPanic { .. } => "actor-panic",
            FaultKind::ShardSlow { .. } => "shard-slow",
            FaultKind::NodeKill { .. } => "node-kill",
            FaultKind::RegionKill { .. } => "region-kill",
            FaultKind::NodeFreeze { .. } => "node-freeze",
            FaultKind::RedisPrimaryKill => "redis-primary-kill",
            FaultKind::Partition { .. } => "partition",
            FaultKind::Loss { .. } => "loss",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Stall { .. } => "stall",
            FaultKind::ConnectionCut { .. } => "connection-cut",
            FaultKind::Deploy { .. } => "deploy",
            FaultKind::PoisonVersion { .. } => "poison-version",
            FaultKind::SlowVersion { .. } => "slow-version",
        }
    }

    /// The fault with its own durations (a deploy's shadow, steps, bake and retire windows)
    /// scaled like the scenario's times, for the short form; none shorter than 0.5 s.
    #[must_use]
    pub fn scaled(mut self, k: f64) -> Self {
        if let FaultKind::Deploy {
            shadow_s,
            bake_s,
            step_s,
            retire_s,
            ..
        } = &mut self
        {
            for v in [shadow_s, bake_s, step_s, retire_s] {
                if *v > 0.0 {
                    *v = (*v * k).max(0.5);
                }
            }
        }
        self
    }

    /// The admin request a `deploy` fault sends (`None` for other kinds).
    #[must_use]
    pub fn deploy_request(&self) -> Option<DeployRequest> {
        match self {
            FaultKind::Deploy {
                model,
                version,
                strategy,
                shadow_s,
                bake_s,
                step_s,
                steps_pct,
                retire_s,
                migrate_sessions,
                ..
            } => Some(DeployRequest {
                model: model.clone(),
                version: version.clone(),
                strategy: strategy.clone(),
                shadow_s: *shadow_s,
                bake_s: *bake_s,
                steps_pct: steps_pct.clone(),
                step_s: *step_s,
                retire_s: *retire_s,
                migrate_sessions: *migrate_sessions,
                shadow_pct: 0.0,
                gates: None,
            }),
            _ => None,
        }
    }

    /// Whether the fault lasts (`for_s` required) rather than happening at one instant.
    #[must_use]
    pub fn lasts(&self) -> bool {
        matches!(
            self,
            FaultKind::ShardSlow { .. }
                | FaultKind::NodeFreeze { .. }
                | FaultKind::RegionKill { .. }
                | FaultKind::Partition { .. }
                | FaultKind::Loss { .. }
                | FaultKind::Latency { .. }
                | FaultKind::Stall { .. }
        )
    }

    /// Whether the fault takes nodes away from the rest of the cluster (so detection and
    /// session moves are measured for it).
    #[must_use]
    pub fn loses_nodes(&self) -> bool {
        matches!(
            self,
            FaultKind::NodeKill { .. }
                | FaultKind::NodeFreeze { .. }
                | FaultKind::RegionKill { .. }
                | FaultKind::Partition { .. }
        )
    }

    /// Whether the nodes the fault loses are lost to the gateways too (not only to the other
    /// nodes, as in a partition between regions): their sessions must move.
    #[must_use]
    pub fn loses_nodes_to_clients(&self) -> bool {
        self.loses_nodes() && !matches!(self, FaultKind::Partition { isolate: None, .. })
    }

    pub(super) fn needs_proxy(&self) -> bool {
        matches!(
            self,
            FaultKind::Latency { .. } | FaultKind::Stall { .. } | FaultKind::ConnectionCut { .. }
        )
    }

    pub(super) fn needs_netns(&self) -> bool {
        matches!(self, FaultKind::Partition { .. } | FaultKind::Loss { .. })
    }

    /// The target, for logs.
    #[must_use]
    pub fn target(&self) -> String {
        match self {
            FaultKind::ActorPanic { node, actor, .. }
            | FaultKind::ShardSlow { node, actor, .. } => {
                format!("{node}/{actor}")
            }
            FaultKind::NodeKill { node, .. }
            | FaultKind::NodeFreeze { node }
            | FaultKind::Latency { node, .. }
            | FaultKind::Stall { node }
            | FaultKind::ConnectionCut { node } => node.clone(),
            FaultKind::RedisPrimaryKill => "redis primary".into(),
            FaultKind::RegionKill { region } => region.clone(),
            FaultKind::Partition { isolate, between } => match (isolate, between) {
                (Some(z), _) => format!("{z} | rest"),
                (None, Some([a, b])) => format!("{} | {}", a.join(","), b.join(",")),
                (None, None) => String::new(),
            },
            FaultKind::Loss { zone, percent } => format!("{zone} ({percent}%)"),
            FaultKind::Deploy {
                model,
                version,
                strategy,
                ..
            } => format!("{model}/{version} ({strategy})"),
            FaultKind::PoisonVersion { model, version, .. }
            | FaultKind::SlowVersion { model, version, .. } => format!("{model}/{version}"),
        }
    }
}

/// The `node` of a node-kill that picks the node owning the most sessions when injected.
pub const BUSIEST_OWNER: &str = "busiest-owner";
