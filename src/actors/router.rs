//! The router of one model: the owner of its request queue and in-flight table.
//!
//! Requests enter the [`WorkQueue`] directly from the gRPC handlers (admission is a lock, not
//! a mailbox hop), and shards take batches from it; the router actor is the supervised owner
//! of that table. It outlives shard restarts (the model subtree is `rest_for_one` with the
//! router first), and because the table itself is held outside the actor, even a router
//! restart loses no queued or in-flight request.

use std::sync::{Arc, atomic::Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::WorkQueue;

/// A snapshot of a router's queue.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RouterStats {
    /// Rows waiting.
    pub queued_rows: usize,
    /// Batches running on shards.
    pub in_flight_batches: usize,
    /// Worker threads taking batches.
    pub live_workers: usize,
    /// Batches completed.
    pub batches: u64,
    /// Rows completed.
    pub rows: u64,
    /// Requests re-dispatched after a shard failure.
    pub redispatched: u64,
    /// Requests shed at admission.
    pub shed: u64,
    /// Requests whose deadline passed in the queue.
    pub expired: u64,
}

impl RouterStats {
    /// Reads the counters of `queue`.
    pub fn of(queue: &WorkQueue) -> Self {
        let s = queue.stats();
        Self {
            queued_rows: queue.depth(),
            in_flight_batches: queue.in_flight(),
            live_workers: queue.live_workers(),
            batches: s.batches.load(Ordering::Relaxed),
            rows: s.rows.load(Ordering::Relaxed),
            redispatched: s.redispatched.load(Ordering::Relaxed),
            shed: s.shed.load(Ordering::Relaxed),
            expired: s.expired.load(Ordering::Relaxed),
        }
    }
}

/// Messages a router handles.
#[derive(Debug)]
pub enum RouterMsg {
    /// Reply with the queue's counters.
    Stats(RpcReplyPort<RouterStats>),
    /// Fault injection: panic now.
    Panic,
}

/// The router actor.
pub struct Router;

impl Actor for Router {
    type Msg = RouterMsg;
    type State = Arc<WorkQueue>;
    type Arguments = Arc<WorkQueue>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        queue: Arc<WorkQueue>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(queue)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        queue: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Stats(reply) => {
                let _ = reply.send(RouterStats::of(queue));
            }
            RouterMsg::Panic => panic!("fault injection: panic in router of {}", queue.model()),
        }
        Ok(())
    }
}
