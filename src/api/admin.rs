//! `fudo.v1.Admin`: what operators and chaos engineers ask of a node — the live actor tree,
//! drain, and fault injection. Fault injection answers FAILED_PRECONDITION unless the node was
//! started with `chaos.enabled = true`.

use std::{sync::Arc, time::Duration};

use ractor::ActorRef;
use tonic::{Request, Response, Status};

use super::proto::fudo::v1::{
    ActorNode, DrainRequest, DrainResponse, PanicActorRequest, PanicActorResponse,
    SlowShardRequest, SlowShardResponse, TreeRequest, TreeResponse, admin_server::Admin,
};
use crate::{
    actors::{NodeHandle, router::RouterMsg, shard::ShardMsg},
    supervision::TreeNode,
};

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

    fn slot(&self, name: &str) -> Option<&Arc<crate::actors::shard_slot::ShardSlot>> {
        self.node
            .models
            .values()
            .flat_map(|m| m.slots.iter())
            .find(|s| s.name == name)
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
        let req = req.into_inner();
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
        } else if self
            .node
            .models
            .values()
            .any(|m| m.router_name() == req.name)
        {
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
        let req = req.into_inner();
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
}
