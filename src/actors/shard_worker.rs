//! The inference thread of one shard generation.
//!
//! Forward passes are CPU-bound and must not block the async runtime, so each shard runs them
//! on a dedicated OS thread. A panic inside the forward pass is caught here and reported to
//! the shard actor, which then fails so that its supervisor restarts it; the batch that was
//! running stays in the router's in-flight table and is re-dispatched when the shard dies.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::mpsc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use ractor::ActorRef;

use super::{
    InferError, WorkQueue,
    shard::ShardMsg,
    shard_slot::ShardSlot,
    work_queue::{Batch, WorkerId},
};
use crate::{metrics::Metrics, model::Policy};

/// Everything a worker thread needs.
pub struct WorkerContext {
    /// Unique id of this generation's worker.
    pub id: WorkerId,
    /// The model's queue.
    pub queue: Arc<WorkQueue>,
    /// The policy (weights shared by all shards).
    pub policy: Arc<dyn Policy>,
    /// The shard's slot (fault injection, restart clock).
    pub slot: Arc<ShardSlot>,
    /// The shard actor to report a panic to.
    pub shard: ActorRef<ShardMsg>,
    /// Set when the shard generation ends.
    pub stop: Arc<AtomicBool>,
    /// Metrics sink.
    pub metrics: Arc<Metrics>,
}

/// How long a worker thread waits, idle, for the next generation of its shard before it exits.
const IDLE_THREAD_TTL: Duration = Duration::from_secs(60);

/// Starts serving a shard generation: on the slot's idle worker thread when there is one (a
/// thread whose previous generation ended, typically by a caught panic), otherwise on a new
/// thread. Reusing the thread keeps a restart at actor-spawn cost instead of thread-spawn cost.
pub fn spawn(ctx: WorkerContext) -> std::io::Result<()> {
    let slot = ctx.slot.clone();
    let ctx = match slot.take_idle_thread() {
        Some(handoff) => match handoff.send(ctx) {
            Ok(()) => return Ok(()),
            Err(mpsc::SendError(ctx)) => ctx,
        },
        None => ctx,
    };
    std::thread::Builder::new()
        .name(format!("fudo-{}", slot.name))
        .spawn(move || thread_main(ctx))
        .map(drop)
}

/// A worker thread: serves one generation after another until it has been idle for
/// [`IDLE_THREAD_TTL`].
fn thread_main(first: WorkerContext) {
    let slot = first.slot.clone();
    let (handoff, next) = mpsc::channel();
    let id = std::thread::current().id();
    let mut ctx = first;
    loop {
        run(ctx);
        if !slot.park_idle_thread(id, handoff.clone()) {
            return;
        }
        ctx = match next.recv_timeout(IDLE_THREAD_TTL) {
            Ok(ctx) => ctx,
            // Leave only if no starting generation took our handoff; if one did, its context
            // is on the way.
            Err(_) if slot.unpark_idle_thread(id) => return,
            Err(_) => match next.recv() {
                Ok(ctx) => ctx,
                Err(_) => return,
            },
        };
    }
}

fn run(ctx: WorkerContext) {
    ctx.queue.worker_started();
    if let Some(took) = ctx.slot.take_restart_time() {
        ctx.metrics.observe_restart(&ctx.slot.name, took);
        tracing::info!(shard = %ctx.slot.name, restart_us = took.as_micros() as u64, "shard replacement serving");
    }
    while let Some(batch) = ctx.queue.next_batch(ctx.id, &ctx.stop) {
        if !run_batch(&ctx, batch) {
            break;
        }
    }
    ctx.queue.worker_stopped();
}

/// Runs one batch; returns false when the forward pass panicked and this thread must end.
fn run_batch(ctx: &WorkerContext, batch: Batch) -> bool {
    let started = Instant::now();
    // A slowed shard (chaos) behaves like a slow forward pass, so the delay counts in the
    // batch time that admission control learns from.
    if let Some(delay) = ctx.slot.delay() {
        std::thread::sleep(delay);
    }
    let inject = ctx.slot.panic_next_forward.swap(false, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(|| {
        if inject {
            panic!(
                "fault injection: panic in forward pass of {}",
                ctx.slot.name
            );
        }
        ctx.policy.forward(&batch.obs, batch.rows, &batch.state)
    }));
    let took = started.elapsed();
    match result {
        Ok(Ok(mut output)) => {
            if ctx.slot.poisoned(batch.rows) {
                // Chaos: a version that goes bad after warm-up answers NaN.
                output.logits.fill(f32::NAN);
                output.values.fill(f32::NAN);
            }
            ctx.metrics.observe_batch(ctx.queue.model(), batch.rows);
            ctx.queue.complete(batch.id, output, &ctx.slot.name, took);
            true
        }
        Ok(Err(err)) => {
            tracing::error!(shard = %ctx.slot.name, error = %err, "forward pass failed");
            ctx.queue
                .fail(batch.id, InferError::Policy(err.to_string()));
            true
        }
        Err(panic) => {
            ctx.slot.mark_failed();
            let message = panic_message(panic.as_ref());
            tracing::error!(shard = %ctx.slot.name, %message, "forward pass panicked");
            // The batch stays in flight; the shard's death reclaims it for a live shard.
            let _ = ctx.shard.cast(ShardMsg::WorkerPanicked(message));
            false
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
