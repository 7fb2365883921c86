//! The load loops: closed (N workers back to back), open (fixed schedule, latency from the
//! scheduled send time) and recurrent sessions (sequential steps with Triton sequence
//! parameters). Every loop stops issuing at the end of the window; what is in flight then is
//! bounded by the per-request deadline.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    request::{BAD_RESPONSE, ObsPool, SequenceStep, build_request, response_is_valid},
    stats::Recorder,
};
use crate::{api::proto::inference::ModelInferRequest, client::FudoClient};

/// Failure reason when the open loop's outstanding cap is hit.
pub const CLIENT_OVERLOAD: &str = "client_overload";
/// Consecutive failures after which a session restarts its sequence (`sequence_start`).
const SESSION_RESTART_AFTER: u32 = 3;

/// What every loop shares.
pub struct Shared {
    /// The gateway client library over every target connection (deadline, retries, hedging
    /// and ejection as configured; with the defaults, one attempt per request).
    pub client: FudoClient,
    /// The accounting.
    pub recorder: Mutex<Recorder>,
    /// Start of the run (warmup included).
    pub t0: Instant,
    /// Offset from `t0` at which no more requests are issued (warmup + duration).
    pub stop_at: Duration,
    /// Per-request deadline (client side and `grpc-timeout`).
    pub timeout: Duration,
    /// Model to call.
    pub model: String,
    /// Observation payloads.
    pub pool: ObsPool,
    /// Request counter, for ids and payload choice.
    pub next: AtomicU64,
}

impl Shared {
    fn rec(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_request(&self, step: Option<SequenceStep>) -> ModelInferRequest {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        build_request(&self.model, &self.pool, n, format!("bench-{n}"), step)
    }

    /// Sends one request (as a step of `session` when given); `Err` carries the failure
    /// reason.
    async fn call(
        &self,
        req: ModelInferRequest,
        session: Option<&str>,
    ) -> Result<(), &'static str> {
        let result = match session {
            Some(id) => self.client.infer_session(id, req).await,
            None => self.client.infer(req).await,
        };
        match result {
            Err(e) => Err(e.status_name()),
            Ok(resp) if response_is_valid(&resp, self.pool.batch()) => Ok(()),
            Ok(_) => Err(BAD_RESPONSE),
        }
    }

    /// Sends and records one request sent at offset `sent_at`; latency is measured from
    /// `t0 + sent_at` (which is the scheduled time for the open loop).
    async fn send_recorded(
        &self,
        req: ModelInferRequest,
        session: Option<&str>,
        sent_at: Duration,
    ) -> Result<(), &'static str> {
        self.rec().sent(sent_at);
        let result = self.call(req, session).await;
        let latency = self.t0.elapsed().saturating_sub(sent_at);
        match result {
            Ok(()) => self.rec().ok(sent_at, latency),
            Err(reason) => self.rec().failed(sent_at, reason),
        }
        result
    }

    /// Sleeps after the `consecutive`-th failure in a row (1, 2, 4 .. 64 ms), never past the end
    /// of the window, so a dead server is not hammered in a hot loop.
    async fn backoff(&self, consecutive: u32) {
        let pause = Duration::from_millis(1 << consecutive.clamp(1, 7).saturating_sub(1));
        let until = (self.t0 + self.stop_at).min(Instant::now() + pause);
        tokio::time::sleep_until(until.into()).await;
    }
}

/// Closed loop: `concurrency` workers, each sending its next request when the previous one has
/// been answered.
pub async fn closed_loop(shared: Arc<Shared>, concurrency: usize) {
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let shared = Arc::clone(&shared);
        workers.spawn(async move {
            let mut failures = 0u32;
            loop {
                let sent_at = shared.t0.elapsed();
                if sent_at >= shared.stop_at {
                    break;
                }
                let req = shared.next_request(None);
                if shared.send_recorded(req, None, sent_at).await.is_ok() {
                    failures = 0;
                } else {
                    failures = failures.saturating_add(1);
                    shared.backoff(failures).await;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Open loop: request `n` is scheduled at `n / rate` seconds after `t0`, whatever the answers;
/// at most `max_outstanding` are in flight, beyond which a scheduled request is counted as a
/// `client_overload` failure instead of being sent.
pub async fn open_loop(shared: Arc<Shared>, rate: f64, max_outstanding: usize) {
    let permits = Arc::new(Semaphore::new(max_outstanding));
    let mut n: u64 = 0;
    loop {
        #[allow(clippy::cast_precision_loss)] // exact up to 2^53 requests
        let scheduled = Duration::from_secs_f64(n as f64 / rate);
        if scheduled >= shared.stop_at {
            break;
        }
        let due = shared.t0 + scheduled;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _permit = permit;
                    let req = shared.next_request(None);
                    let _ = shared.send_recorded(req, None, scheduled).await;
                });
            }
            Err(_) => {
                let mut rec = shared.rec();
                rec.sent(scheduled);
                rec.failed(scheduled, CLIENT_OVERLOAD);
            }
        }
        n += 1;
    }
    // Wait for what is in flight: every request is bounded by its deadline; the grace covers a
    // client runtime too busy to poll the timers on time.
    let all = u32::try_from(max_outstanding).unwrap_or(u32::MAX);
    let grace = shared.timeout + Duration::from_secs(2);
    let _ = tokio::time::timeout(grace, permits.acquire_many(all)).await;
}

/// Recurrent sessions: `sessions` tasks, each stepping its own sequence one request at a time
/// (`sequence_start` on step 1, `sequence_seq` 1, 2, 3, ...). A failed step is retried with the
/// same `sequence_seq` (the server answers duplicates idempotently); after
/// [`SESSION_RESTART_AFTER`] failures in a row the session starts over. When the window closes,
/// each session sends one unmeasured step with `sequence_end` so the server can free its state.
pub async fn session_loop(shared: Arc<Shared>, sessions: usize, base_id: i64) {
    let mut workers = JoinSet::new();
    for s in 0..sessions {
        let shared = Arc::clone(&shared);
        let sequence_id = base_id.saturating_add(i64::try_from(s).unwrap_or(i64::MAX));
        workers.spawn(async move {
            let key = sequence_id.to_string();
            let mut seq: i64 = 1;
            let mut failures = 0u32;
            loop {
                let sent_at = shared.t0.elapsed();
                if sent_at >= shared.stop_at {
                    break;
                }
                let step = SequenceStep {
                    sequence_id,
                    seq,
                    start: seq == 1,
                    end: false,
                };
                let req = shared.next_request(Some(step));
                if shared.send_recorded(req, Some(&key), sent_at).await.is_ok() {
                    seq += 1;
                    failures = 0;
                } else {
                    failures = failures.saturating_add(1);
                    if failures >= SESSION_RESTART_AFTER {
                        seq = 1;
                        failures = 0;
                    }
                    shared.backoff(failures.max(1)).await;
                }
            }
            if seq > 1 {
                let step = SequenceStep {
                    sequence_id,
                    seq,
                    start: false,
                    end: true,
                };
                let req = shared.next_request(Some(step));
                let _ = shared.call(req, Some(&key)).await;
            }
            shared.client.end_session(&key);
        });
    }
    while workers.join_next().await.is_some() {}
}
