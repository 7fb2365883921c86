//! Spill-over: a stateless request this node is short of capacity for (no live shard for the
//! model, its queue over `cluster.spill_queue_ratio`, or local admission refused it) goes to
//! the best live peer over the region link's own HTTP/2 connection instead of failing:
//! preferably in the other region, since a region short of capacity is what this is for.
//!
//! A spilled request carries the `fudo_spilled_from` parameter, and a node never spills a
//! request that already has it, so a request crosses at most one link. Recurrent steps are
//! not spilled: a session's state lives with its owner, and the client library moves the
//! session (with its replay buffer) when the owner cannot serve it.

use std::time::Instant;

use tonic::{Code, Status};

use super::{
    proto::inference::{
        ModelInferRequest, ModelInferResponse,
        grpc_inference_service_client::GrpcInferenceServiceClient,
    },
    sequence,
};
use crate::actors::{ModelHost, NodeHandle, membership::SpillTarget};

/// Request parameter naming the node a request was spilled from; response parameter too.
pub const SPILLED_FROM: &str = "fudo_spilled_from";

/// Whether `req` was already spilled by another node.
pub fn was_spilled(req: &ModelInferRequest) -> bool {
    req.parameters.contains_key(SPILLED_FROM)
}

/// Whether this node should send a stateless request for `host` to a peer without trying it
/// locally: no live shard, or the queue filled beyond `ratio` of its capacity.
pub fn short_of_capacity(host: &ModelHost, ratio: f64) -> bool {
    let capacity = host.queue.limits().capacity as f64;
    host.queue.live_workers() == 0 || host.queue.depth() as f64 >= ratio * capacity
}

/// Whether a local refusal may be retried on a peer (the request never ran here).
pub fn is_spillable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
}

/// The peer to spill a request for `model` to, if any.
pub fn target(node: &NodeHandle, model: &str) -> Option<SpillTarget> {
    node.membership
        .spill_target(model, &node.config.server.region)
}

/// Sends `req` to `target` within `deadline`. If the peer cannot be reached, the caller gets
/// `local` (why this node could not serve it) with the peer's failure added.
pub async fn forward(
    node: &NodeHandle,
    target: SpillTarget,
    mut req: ModelInferRequest,
    deadline: Instant,
    local: Status,
) -> Result<ModelInferResponse, Status> {
    let from = node.config.server.node_name.clone();
    req.parameters
        .insert(SPILLED_FROM.into(), sequence::string_param(from.clone()));
    let mut request = tonic::Request::new(req);
    request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    node.record_spill();
    tracing::debug!(
        peer = %target.node,
        region = %target.region,
        reason = local.message(),
        "spilling request"
    );
    match GrpcInferenceServiceClient::new(target.channel)
        .model_infer(request)
        .await
    {
        Ok(response) => {
            let mut response = response.into_inner();
            response
                .parameters
                .insert(SPILLED_FROM.into(), sequence::string_param(from));
            Ok(response)
        }
        Err(peer) if peer.code() == Code::Unavailable || peer.code() == Code::Unknown => {
            Err(Status::new(
                local.code(),
                format!(
                    "{}; spilling to {} failed too: {}",
                    local.message(),
                    target.node,
                    peer.message()
                ),
            ))
        }
        Err(peer) => Err(peer),
    }
}
