//! `fudo.v1.Admin`: what operators and chaos engineers ask of a node — the live actor tree,
//! drain, and fault injection. Fault injection answers FAILED_PRECONDITION unless the node was
//! started with `chaos.enabled = true`.

use std::{sync::Arc, time::Duration};

use ractor::ActorRef;
use tonic::{Request, Response, Status};

use super::proto::fudo::v1::{
    ActorNode, DeployRequest, DeployResponse, DeploysRequest, DeploysResponse, DrainRequest,
    DrainResponse, PanicActorRequest, PanicActorResponse, PoisonVersionRequest,
    PoisonVersionResponse, RollbackRequest, RollbackResponse, SlowShardRequest, SlowShardResponse,
    TreeRequest, TreeResponse, VersionServing, admin_server::Admin,
};
use crate::{
    actors::{NodeHandle, router::RouterMsg, shard::ShardMsg},
    deploy::{self, DeployError, Started},
    supervision::TreeNode,
};

/// The gRPC status of a deploy refusal.
fn deploy_status(e: DeployError) -> Status {
    let message = e.to_string();
    match e {
        DeployError::BadRequest(_) => Status::invalid_argument(message),
        DeployError::NotServed(_) | DeployError::NotInRepository { .. } => {
            Status::not_found(message)
        }
        DeployError::NoRepository
        | DeployError::Refused { .. }
        | DeployError::NothingToRollBack(_) => Status::failed_precondition(message),
        DeployError::Busy { .. } | DeployError::Loaded { .. } => Status::aborted(message),
        DeployError::Unavailable(_) => Status::unavailable(message),
    }
}

/// The admin service of a node.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Arc<NodeHandle>,
}

impl AdminService {
    /// The service for `node`.
    pub fn new(node: Arc<NodeHandle>) -> Self {
        Self { node }
    }

    fn require_chaos(&self) -> Result<(), Status> {
        if self.node.config.chaos.enabled {
            Ok(())
        } else {
            Err(Status::failed_precondition(
                "fault injection is disabled on this node; start it with chaos.enabled = true (--set chaos.enabled=true or FUDO_CHAOS_ENABLED=true)",
            ))
        }
    }

    /// The live incarnation of `name`: NOT_FOUND for a name that never existed, UNAVAILABLE
    /// for one that is between generations (restarting).
    fn lookup(&self, name: &str) -> Result<crate::supervision::Published, Status> {
        match self.node.directory.lookup(name) {
            Some(published) => Ok(published),
            None if self.node.directory.last_generation(name) > 0 => Err(Status::unavailable(
                format!("actor `{name}` is restarting; try again"),
            )),
            None => Err(Status::not_found(format!(
                "no actor `{name}`; see `fudo ctl tree` for names"
            ))),
        }
    }

    fn slot(&self, name: &str) -> Option<Arc<crate::actors::shard_slot::ShardSlot>> {
        self.node
            .hosts()
            .flat_map(|m| m.slots.clone())
            .find(|s| s.name == name)
    }

    /// Actor names may leave the version out: `ppo_mlp/shard-0` means the shard of the live
    /// version, `ppo_mlp@<live>/shard-0`.
    fn resolve(&self, name: &str) -> String {
        match name.split_once('/') {
            Some((model, rest)) if !model.contains('@') => match self.node.model(model) {
                Some(served) => format!("{}/{rest}", served.live().prefix),
                None => name.to_owned(),
            },
            _ => name.to_owned(),
        }
    }
}

/// Converts the supervision snapshot to its wire form.
pub fn to_proto(node: &TreeNode) -> ActorNode {
    ActorNode {
        name: node.name.clone(),
        kind: node.kind.clone(),
        status: format!("{:?}", node.status).to_lowercase(),
        generation: node.generation,
        restarts: node.restarts,
        queue_depth: node.queue_depth,
        children: node.children.iter().map(to_proto).collect(),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn tree(&self, _: Request<TreeRequest>) -> Result<Response<TreeResponse>, Status> {
        let tree = self
            .node
            .tree()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let restart = self.node.metrics.restart_latency();
        Ok(Response::new(TreeResponse {
            root: Some(to_proto(&tree)),
            draining: self.node.is_draining(),
            restart_count: restart.count,
            restart_p50_us: restart.p50_us,
            restart_p99_us: restart.p99_us,
            restart_max_us: restart.max_us,
        }))
    }

    async fn drain(&self, _: Request<DrainRequest>) -> Result<Response<DrainResponse>, Status> {
        let in_flight = self.node.drain() as u64;
        tracing::warn!(in_flight, "node draining on admin request");
        Ok(Response::new(DrainResponse { in_flight }))
    }

    async fn panic_actor(
        &self,
        req: Request<PanicActorRequest>,
    ) -> Result<Response<PanicActorResponse>, Status> {
        self.require_chaos()?;
        let mut req = req.into_inner();
        req.name = self.resolve(&req.name);
        let published = self.lookup(&req.name)?;
        tracing::warn!(actor = %req.name, in_forward = req.in_forward, "fault injection: panic");
        if let Some(slot) = self.slot(&req.name) {
            if req.in_forward {
                slot.panic_next_forward
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            } else {
                ActorRef::<ShardMsg>::from(published.cell.clone())
                    .cast(ShardMsg::Panic)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
            }
        } else if self.node.hosts().any(|m| m.router_name() == req.name) {
            if req.in_forward {
                return Err(Status::invalid_argument(
                    "in_forward applies to shards only",
                ));
            }
            ActorRef::<RouterMsg>::from(published.cell.clone())
                .cast(RouterMsg::Panic)
                .map_err(|e| Status::unavailable(e.to_string()))?;
        } else {
            return Err(Status::invalid_argument(format!(
                "`{}` is a supervisor; only routers and shards can be panicked",
                req.name
            )));
        }
        Ok(Response::new(PanicActorResponse {
            generation: published.generation,
        }))
    }

    async fn slow_shard(
        &self,
        req: Request<SlowShardRequest>,
    ) -> Result<Response<SlowShardResponse>, Status> {
        self.require_chaos()?;
        let mut req = req.into_inner();
        req.name = self.resolve(&req.name);
        let slot = self.slot(&req.name).ok_or_else(|| {
            Status::not_found(format!("no shard `{}`; see `fudo ctl tree`", req.name))
        })?;
        if req.delay_ms > Duration::from_secs(60).as_millis() as u64 {
            return Err(Status::invalid_argument("delay_ms must be at most 60000"));
        }
        slot.delay_ms
            .store(req.delay_ms, std::sync::atomic::Ordering::SeqCst);
        tracing::warn!(shard = %req.name, delay_ms = req.delay_ms, "fault injection: slow shard");
        Ok(Response::new(SlowShardResponse {}))
    }

    async fn poison_version(
        &self,
        req: Request<PoisonVersionRequest>,
    ) -> Result<Response<PoisonVersionResponse>, Status> {
        self.require_chaos()?;
        let req = req.into_inner();
        let served = self.node.model(&req.model).ok_or_else(|| {
            Status::not_found(format!("model `{}` is not served here", req.model))
        })?;
        let routing = served.routing();
        let host = routing.hosts.get(&req.version).ok_or_else(|| {
            Status::not_found(format!(
                "{}/{} is not loaded here; loaded: {:?}",
                req.model,
                req.version,
                routing.hosts.keys().collect::<Vec<_>>()
            ))
        })?;
        let per_slot = if req.nan_after == 0 {
            u64::MAX
        } else {
            req.nan_after.div_ceil(host.slots.len().max(1) as u64)
        };
        for slot in &host.slots {
            slot.nan_after
                .store(per_slot, std::sync::atomic::Ordering::SeqCst);
        }
        tracing::warn!(model = %req.model, version = %req.version, nan_after = req.nan_after, "fault injection: version answers NaN after warm-up");
        Ok(Response::new(PoisonVersionResponse {}))
    }

    async fn deploy(
        &self,
        req: Request<DeployRequest>,
    ) -> Result<Response<DeployResponse>, Status> {
        let req = req.into_inner();
        match deploy::start(&self.node, &req)
            .await
            .map_err(deploy_status)?
        {
            Started::Running(id) => Ok(Response::new(DeployResponse { id })),
            Started::AlreadyLive => Ok(Response::new(DeployResponse { id: String::new() })),
        }
    }

    async fn rollback(
        &self,
        req: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        let req = req.into_inner();
        deploy::rollback(&self.node, &req.model, &req.reason)
            .await
            .map_err(deploy_status)?;
        // The deploy task switches back at once, to the version it started from.
        let rolled_back_to = self
            .node
            .deploys
            .records()
            .into_iter()
            .rev()
            .find(|r| r.model == req.model)
            .map(|r| r.from_version)
            .unwrap_or_default();
        Ok(Response::new(RollbackResponse { rolled_back_to }))
    }

    async fn deploys(
        &self,
        _: Request<DeploysRequest>,
    ) -> Result<Response<DeploysResponse>, Status> {
        let serving = self
            .node
            .models
            .values()
            .map(|served| {
                let r = served.routing();
                let (canary, permille) = r.canary.clone().unwrap_or_default();
                VersionServing {
                    model: served.name.clone(),
                    live: r.live.clone(),
                    loaded: r.hosts.keys().cloned().collect(),
                    canary,
                    canary_pct: f64::from(permille) / 10.0,
                    shadow: r.shadow.clone().map(|(v, _)| v).unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(DeploysResponse {
            node: self.node.config.server.node_name.clone(),
            serving,
            deploys: self.node.deploys.records(),
        }))
    }
}
