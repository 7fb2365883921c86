//! `fudo.v1.Cluster`: the answering side of region links, and the membership view.
//!
//! A peer's link dials in and streams heartbeats; each one is answered at once with an echo
//! that carries this node's identity and load, so the peer measures the round trip and runs
//! its failure detector on the echoes. A frozen or partitioned node stops echoing, which is
//! exactly what its peers must notice. Credentials are checked before the first echo.

use std::{pin::Pin, sync::Arc};

use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use super::proto::fudo::v1::{Heartbeat, MembersRequest, MembersResponse, cluster_server::Cluster};
use crate::actors::NodeHandle;

/// The cluster service of a node.
#[derive(Debug, Clone)]
pub struct ClusterService {
    node: Arc<NodeHandle>,
    stop: watch::Receiver<bool>,
}

impl ClusterService {
    /// The service for `node`; incoming links end when `stop` turns true (shutdown).
    pub fn new(node: Arc<NodeHandle>, stop: watch::Receiver<bool>) -> Self {
        Self { node, stop }
    }
}

type EchoStream = Pin<Box<dyn Stream<Item = Result<Heartbeat, Status>> + Send>>;

#[tonic::async_trait]
impl Cluster for ClusterService {
    type LinkStream = EchoStream;

    async fn link(
        &self,
        request: Request<Streaming<Heartbeat>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        self.node.link_auth.verify(request.metadata())?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let node = self.node.clone();
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut peer = String::new();
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    _ = stop.wait_for(|stopped| *stopped) => break,
                };
                let beat = match next {
                    Ok(Some(beat)) => beat,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%peer, %status, "incoming region link ended");
                        break;
                    }
                };
                if peer.is_empty()
                    && let Some(from) = &beat.from
                {
                    peer = from.node.clone();
                    tracing::info!(%peer, region = %from.region, "incoming region link");
                }
                let echo = Heartbeat {
                    from: Some(node.identity.clone()),
                    seq: beat.seq,
                    sent_unix_us: chrono::Utc::now().timestamp_micros(),
                    echo_seq: beat.seq,
                    echo_sent_unix_us: beat.sent_unix_us,
                    load: Some(node.load()),
                };
                // A peer that does not read its echoes fills the queue; dropping echoes then is
                // right: it will judge us by the silence it causes itself.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(echo)) {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let node = &self.node;
        Ok(Response::new(MembersResponse {
            self_: Some(node.identity.clone()),
            load: Some(node.load()),
            members: node.membership.members(tokio::time::Instant::now()),
            spilled_requests: node.spilled(),
        }))
    }
}
