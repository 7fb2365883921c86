//! What one shard position keeps across restarts: fault-injection settings, the moment of the
//! last failure (so the next generation can report how long the restart took), and counters.
//! It lives outside the shard actor so that a restart costs microseconds and loses nothing.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::Sender,
    },
    thread::ThreadId,
    time::{Duration, Instant},
};

use super::shard_worker::WorkerContext;

/// Per-shard state that outlives each shard generation.
#[derive(Debug)]
pub struct ShardSlot {
    /// Actor name, e.g. `ppo_mlp/shard-0`.
    pub name: String,
    /// Extra latency added to every batch (chaos), in milliseconds.
    pub delay_ms: AtomicU64,
    /// Panic inside the next forward pass (chaos).
    pub panic_next_forward: AtomicBool,
    /// Rows still answered normally before answers turn NaN (chaos); `u64::MAX`: never.
    pub nan_after: AtomicU64,
    failed_at: Mutex<Option<Instant>>,
    /// Generations started so far.
    pub generation: AtomicU64,
    idle_thread: Mutex<Option<(ThreadId, Sender<WorkerContext>)>>,
}

impl ShardSlot {
    /// A fresh slot.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            delay_ms: AtomicU64::new(0),
            panic_next_forward: AtomicBool::new(false),
            nan_after: AtomicU64::new(u64::MAX),
            failed_at: Mutex::new(None),
            generation: AtomicU64::new(0),
            idle_thread: Mutex::new(None),
        }
    }

    /// Counts `rows` answered; true when the slot is poisoned (chaos) and they must be NaN.
    pub fn poisoned(&self, rows: usize) -> bool {
        let left = self.nan_after.load(Ordering::Relaxed);
        if left == u64::MAX {
            return false;
        }
        let rows = rows as u64;
        if left >= rows {
            self.nan_after.fetch_sub(rows, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Takes the handoff of this slot's idle worker thread, if one is waiting; the caller must
    /// send it the next generation's context.
    pub fn take_idle_thread(&self) -> Option<Sender<WorkerContext>> {
        self.idle_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|(_, handoff)| handoff)
    }

    /// Offers the calling worker thread for the next generation; false when another thread is
    /// already offered (the caller should then exit).
    pub fn park_idle_thread(&self, id: ThreadId, handoff: Sender<WorkerContext>) -> bool {
        let mut idle = self
            .idle_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.is_some() {
            return false;
        }
        *idle = Some((id, handoff));
        true
    }

    /// Withdraws thread `id`'s offer; false when a starting generation already took it.
    pub fn unpark_idle_thread(&self, id: ThreadId) -> bool {
        let mut idle = self
            .idle_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match idle.as_ref() {
            Some((parked, _)) if *parked == id => {
                *idle = None;
                true
            }
            // Offers are never overwritten, so ours was taken (and another thread parked
            // since): our next context is on the way.
            Some(_) | None => false,
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
