//! A shard: one replica of a model on one device, supervised.
//!
//! The actor itself holds almost nothing (the weights are shared, the requests belong to the
//! router), so restarting it costs a thread spawn. When a generation ends for any reason its
//! state is dropped, which stops its worker thread and hands the worker's in-flight batches
//! back to the router's queue.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{WorkQueue, shard_slot::ShardSlot, shard_worker, work_queue::WorkerId};
use crate::{metrics::Metrics, model::Policy};

static NEXT_WORKER: AtomicU64 = AtomicU64::new(1);

/// Messages a shard handles.
#[derive(Debug)]
pub enum ShardMsg {
    /// The worker thread's forward pass panicked: fail so the supervisor restarts us.
    WorkerPanicked(String),
    /// Fault injection: panic in the actor now.
    Panic,
}

/// What a shard is started with; cheap to clone (all shared).
#[derive(Clone)]
pub struct ShardArgs {
    /// The model's queue.
    pub queue: Arc<WorkQueue>,
    /// The model's policy.
    pub policy: Arc<dyn Policy>,
    /// This shard position's slot.
    pub slot: Arc<ShardSlot>,
    /// Metrics sink.
    pub metrics: Arc<Metrics>,
}

/// The shard actor.
pub struct Shard;

/// A live shard generation. Dropping it ends the generation.
pub struct ShardState {
    worker: WorkerId,
    stop: Arc<AtomicBool>,
    queue: Arc<WorkQueue>,
    slot: Arc<ShardSlot>,
}

impl Drop for ShardState {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.queue.reclaim(self.worker);
    }
}

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ShardArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let worker = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        args.slot.generation.fetch_add(1, Ordering::Relaxed);
        let state = ShardState {
            worker,
            stop: stop.clone(),
            queue: args.queue.clone(),
            slot: args.slot.clone(),
        };
        shard_worker::spawn(shard_worker::WorkerContext {
            id: worker,
            queue: args.queue,
            policy: args.policy,
            slot: args.slot,
            shard: myself,
            stop,
            metrics: args.metrics,
        })?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::WorkerPanicked(message) => {
                Err(format!("forward pass panicked: {message}").into())
            }
            ShardMsg::Panic => {
                state.slot.mark_failed();
                panic!(
                    "fault injection: panic in shard actor {}",
                    myself.get_name().unwrap_or_default()
                )
            }
        }
    }
}
