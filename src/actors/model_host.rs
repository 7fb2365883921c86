//! One served model on this node: its loaded policy, its router's queue, its shard slots, and
//! the supervision subtree that runs them:
//!
//! ```text
//! <model>@<version> (rest_for_one)
//! ├── <model>@<version>/router
//! └── <model>@<version>/shards (one_for_one)
//!     ├── <model>@<version>/shard-0
//!     └── <model>@<version>/shard-N
//! ```
//!
//! `rest_for_one` because shards depend on the router: if the router is restarted the shards
//! are restarted after it, while a shard failure touches only that shard. Each loaded version
//! of a model is one such subtree with its own queue, so a deploy can run a new version beside
//! the serving one and retire either without touching the other.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    InferError, Job, JobOutput, WorkQueue,
    router::Router,
    shard::{Shard, ShardArgs},
    shard_slot::ShardSlot,
    version_stats::VersionStats,
    work_queue::QueueLimits,
};
use crate::{
    config::ModelsConfig,
    metrics::Metrics,
    model::{LoadedModel, Policy, PolicySpec},
    supervision::{
        Backoff, ChildSpec, Directory, Intensity, RestartType, Strategy, Supervisor,
        SupervisorSpec, spawn_linked_fn,
    },
};

/// One served model.
pub struct ModelHost {
    /// Model name.
    pub name: String,
    /// Loaded version.
    pub version: String,
    /// `<model>@<version>`: the prefix of this version's actor names.
    pub prefix: String,
    /// What this version did with live traffic, for the deploy gates.
    pub stats: Arc<VersionStats>,
    /// The loaded model (config, manifest, policy).
    pub model: LoadedModel,
    /// The router's queue.
    pub queue: Arc<WorkQueue>,
    /// One slot per shard position.
    pub slots: Vec<Arc<ShardSlot>>,
    metrics: Arc<Metrics>,
    intensity: Intensity,
    backoff: Backoff,
}

impl std::fmt::Debug for ModelHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHost")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl ModelHost {
    /// Prepares a model for serving (nothing runs until its subtree is started).
    pub fn new(model: LoadedModel, config: &ModelsConfig, metrics: Arc<Metrics>) -> Self {
        let name = model.name.clone();
        let prefix = format!("{name}@{}", model.version);
        let limits = QueueLimits {
            max_batch: config.max_batch,
            max_wait: config.max_wait(),
            capacity: config.queue_capacity,
            max_attempts: config.max_attempts,
        };
        let queue = Arc::new(WorkQueue::new(
            name.clone(),
            model.policy.spec().clone(),
            limits,
        ));
        let slots = (0..config.shards)
            .map(|i| Arc::new(ShardSlot::new(format!("{prefix}/shard-{i}"))))
            .collect();
        Self {
            version: model.version.clone(),
            prefix,
            stats: Arc::default(),
            name,
            model,
            queue,
            slots,
            metrics,
            intensity: Intensity {
                max_restarts: config.max_restarts,
                period: Duration::from_millis(config.restart_period_ms),
            },
            backoff: config.backoff(),
        }
    }

    /// The policy's dimensions.
    pub fn spec(&self) -> &PolicySpec {
        self.model.policy.spec()
    }

    /// Name of this model's router actor.
    pub fn router_name(&self) -> String {
        format!("{}/router", self.prefix)
    }

    /// Runs `rows` observation rows (with their recurrent state, if any) through the model.
    pub async fn infer(
        &self,
        request_id: String,
        rows: usize,
        obs: Vec<f32>,
        state: Vec<f32>,
        deadline: Instant,
    ) -> Result<JobOutput, InferError> {
        let (job, answer) = Job::new(request_id, rows, obs, state, deadline);
        let enqueued_at = job.enqueued_at;
        self.queue.submit(job)?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            // The queue always answers before dropping a job; a dropped sender means the node
            // is shutting down.
            Ok(Err(_)) => Err(InferError::Draining(self.name.clone())),
            Err(_) => Err(InferError::DeadlineExceeded {
                waited_us: enqueued_at.elapsed().as_micros() as u64,
            }),
        }
    }

    /// [`ModelHost::infer`] for live or mirrored traffic, counted in this version's gate
    /// statistics (latency and output sanity of an answer, or a failure).
    pub async fn infer_counted(
        &self,
        request_id: String,
        rows: usize,
        obs: Vec<f32>,
        state: Vec<f32>,
        deadline: Instant,
    ) -> Result<JobOutput, InferError> {
        let started = Instant::now();
        let result = self.infer(request_id, rows, obs, state, deadline).await;
        match &result {
            Ok(out) => self
                .stats
                .record_ok(started.elapsed(), &out.logits, &out.values),
            Err(_) => self.stats.record_error(),
        }
        result
    }

    /// The supervision subtree of this model, as a child of the node supervisor.
    pub fn child_spec(self: &Arc<Self>, directory: Directory) -> ChildSpec {
        let host = self.clone();
        Supervisor::child_spec(
            Arc::new(move || host.subtree_spec(directory.clone())),
            RestartType::Permanent,
        )
    }

    fn subtree_spec(self: &Arc<Self>, directory: Directory) -> SupervisorSpec {
        let queue = self.queue.clone();
        let router = ChildSpec::new(
            "router",
            "router",
            RestartType::Permanent,
            spawn_linked_fn(move |_| (Router, queue.clone())),
        )
        .with_queue_depth({
            let queue = self.queue.clone();
            Arc::new(move || queue.depth() as u64)
        });
        let host = self.clone();
        let shard_dir = directory.clone();
        let shards = Supervisor::child_spec(
            Arc::new(move || host.shards_spec(shard_dir.clone())),
            RestartType::Permanent,
        );
        SupervisorSpec {
            name: self.prefix.clone(),
            strategy: Strategy::RestForOne,
            intensity: self.intensity,
            backoff: self.backoff,
            children: vec![router, shards],
            directory,
        }
    }

    fn shards_spec(self: &Arc<Self>, directory: Directory) -> SupervisorSpec {
        let children = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let args = ShardArgs {
                    queue: self.queue.clone(),
                    policy: self.model.policy.clone() as Arc<dyn Policy>,
                    slot: slot.clone(),
                    metrics: self.metrics.clone(),
                };
                ChildSpec::new(
                    format!("shard-{i}"),
                    "shard",
                    RestartType::Permanent,
                    spawn_linked_fn(move |_| (Shard, args.clone())),
                )
                .with_name(slot.name.clone())
            })
            .collect();
        SupervisorSpec {
            name: format!("{}/shards", self.prefix),
            strategy: Strategy::OneForOne,
            intensity: self.intensity,
            backoff: self.backoff,
            children,
            directory,
        }
    }
}
