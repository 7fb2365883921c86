//! What one shard position keeps across restarts: fault-injection settings, the moment of the
//! last failure (so the next generation can report how long the restart took), and counters.
//! It lives outside the shard actor so that a restart costs microseconds and loses nothing.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Per-shard state that outlives each shard generation.
#[derive(Debug)]
pub struct ShardSlot {
    /// Actor name, e.g. `ppo_mlp/shard-0`.
    pub name: String,
    /// Extra latency added to every batch (chaos), in milliseconds.
    pub delay_ms: AtomicU64,
    /// Panic inside the next forward pass (chaos).
    pub panic_next_forward: AtomicBool,
    failed_at: Mutex<Option<Instant>>,
    /// Generations started so far.
    pub generation: AtomicU64,
}

impl ShardSlot {
    /// A fresh slot.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            delay_ms: AtomicU64::new(0),
            panic_next_forward: AtomicBool::new(false),
            failed_at: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Records the moment this shard failed.
    pub fn mark_failed(&self) {
        *self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Called by a new generation when it is ready to serve: how long since the failure that
    /// caused this restart, if there was one.
    pub fn take_restart_time(&self) -> Option<Duration> {
        self.failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|t| t.elapsed())
    }

    /// Extra latency per batch, if any.
    pub fn delay(&self) -> Option<Duration> {
        match self.delay_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}
