//! Hedging: when to send a second copy of a stateless call, how many copies may be sent at
//! all, and the race between the two.
//!
//! Hedging trades extra load for tail latency. Two things keep that trade safe: the hedge delay
//! tracks a percentile of recent successful latencies (so only the slow tail is hedged), and a
//! budget caps hedged calls at a fixed share of all calls, so that during a partial outage (when
//! every call looks slow) hedging does not double the traffic sent to the surviving nodes.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use super::{CallState, HedgeConfig, Inner, Traffic, is_retryable};
use crate::api::proto::inference::{ModelInferRequest, ModelInferResponse};

/// Samples needed before the tracked percentile replaces `min_delay`.
const MIN_SAMPLES: u64 = 100;
/// The percentile is recomputed every this many samples.
const RECOMPUTE_EVERY: u64 = 100;
/// Latencies are tracked over tumbling windows of this many samples, so the delay follows drift.
const LATENCY_WINDOW: u64 = 4096;
/// When this many calls have been counted, both budget counters are halved (a decaying window).
const BUDGET_WINDOW: u64 = 1000;
/// Largest latency the histogram tracks, in microseconds (60 s); larger samples are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Latency tracker and hedge budget for one client.
#[derive(Debug)]
pub(super) struct HedgeState {
    config: HedgeConfig,
    latencies: Mutex<Histogram<u64>>,
    /// Current hedge delay in microseconds.
    delay_us: AtomicU64,
    /// (calls, hedged) in the current decaying window.
    budget: Mutex<(u64, u64)>,
    /// Lifetime count of hedges sent.
    hedges_sent: AtomicU64,
}

impl HedgeState {
    /// A tracker that hedges after `config.min_delay` until it has enough samples.
    pub(super) fn new(config: HedgeConfig) -> Result<Self, String> {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map_err(|e| format!("latency histogram: {e}"))?;
        Ok(Self {
            delay_us: AtomicU64::new(duration_us(config.min_delay)),
            config,
            latencies: Mutex::new(histogram),
            budget: Mutex::new((0, 0)),
            hedges_sent: AtomicU64::new(0),
        })
    }

    /// How long to wait for the first attempt before hedging.
    pub(super) fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Records the latency of a successful attempt.
    pub(super) fn record_success(&self, latency: Duration) {
        let mut h = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        h.saturating_record(duration_us(latency).clamp(1, MAX_LATENCY_US));
        let n = h.len();
        if n >= MIN_SAMPLES && n.is_multiple_of(RECOMPUTE_EVERY) {
            let p = h.value_at_quantile(self.config.percentile);
            let delay = p.max(duration_us(self.config.min_delay));
            self.delay_us.store(delay, Ordering::Relaxed);
        }
        if n >= LATENCY_WINDOW {
            // Keep the last computed delay until the new window has enough samples.
            h.reset();
        }
    }

    /// Counts one stateless call (hedged or not) towards the budget.
    pub(super) fn count_call(&self) {
        let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        b.0 += 1;
        if b.0 >= BUDGET_WINDOW {
            b.0 /= 2;
            b.1 /= 2;
        }
    }

    /// Takes a hedge from the budget if `hedged + 1 <= budget_ratio * calls`.
    pub(super) fn try_acquire(&self) -> bool {
        let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        #[allow(clippy::cast_precision_loss)] // counters stay below BUDGET_WINDOW
        let allowed = (b.1 + 1) as f64 <= self.config.budget_ratio * b.0 as f64;
        if allowed {
            b.1 += 1;
            self.hedges_sent.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Lifetime count of hedges sent.
    pub(super) fn hedges_sent(&self) -> u64 {
        self.hedges_sent.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// The first attempt of a hedged call: wait for it up to the hedge delay, then (budget
    /// allowing) race a second attempt on another endpoint and take the first success.
    ///
    /// The attempt that loses the race is not cancelled: it runs on, within its own attempt
    /// budget, so that its outcome still counts for its node. Cancelling it would let hedging
    /// hide a stalled node (every call to it rescued by the hedge, none recorded as a failure,
    /// so never ejected) until the hedge budget ran out and calls started waiting out the
    /// attempt timeout.
    pub(super) async fn hedged_attempt(
        self: &Arc<Self>,
        hedge: &HedgeState,
        idx: usize,
        req: &ModelInferRequest,
        call: &mut CallState,
    ) -> Result<ModelInferResponse, Status> {
        call.attempts += 1;
        call.tried.push(idx);
        let mut first = self.spawn_attempt(idx, req.clone(), self.attempt_budget(call));
        tokio::select! {
            r = &mut first => return joined(r),
            () = tokio::time::sleep(hedge.delay()) => {}
        }
        let second_idx = match self.next_endpoint(call, None, None) {
            Ok(Some(i)) if i != idx && hedge.try_acquire() => i,
            _ => return joined(first.await),
        };
        tracing::debug!(first = idx, second = second_idx, "hedging inference call");
        call.attempts += 1;
        call.tried.push(second_idx);
        let mut second = self.spawn_attempt(second_idx, req.clone(), self.attempt_budget(call));
        let (done, other) = tokio::select! {
            r = &mut first => (joined(r), true),
            r = &mut second => (joined(r), false),
        };
        match done {
            Err(s) if is_retryable(&s) || s.code() == Code::DeadlineExceeded => {
                call.last = Some(s);
                joined(if other { second.await } else { first.await })
            }
            // Dropping the loser's handle detaches it; it finishes on its own.
            done => done,
        }
    }

    /// A stateless attempt as a task of its own, so that it can outlive the call that started
    /// it (see [`Inner::hedged_attempt`]).
    fn spawn_attempt(
        self: &Arc<Self>,
        idx: usize,
        req: ModelInferRequest,
        budget: Duration,
    ) -> JoinHandle<Result<ModelInferResponse, Status>> {
        let inner = Arc::clone(self);
        tokio::spawn(async move { inner.attempt_on(idx, req, budget, Traffic::Stateless).await })
    }
}

/// The result of an attempt task; a task that panicked is an internal error of this client.
fn joined(
    r: Result<Result<ModelInferResponse, Status>, tokio::task::JoinError>,
) -> Result<ModelInferResponse, Status> {
    r.unwrap_or_else(|e| Err(Status::internal(format!("attempt task failed: {e}"))))
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ratio: f64) -> HedgeState {
        HedgeState::new(HedgeConfig {
            percentile: 0.9,
            min_delay: Duration::from_millis(5),
            budget_ratio: ratio,
        })
        .expect("hedge state")
    }

    #[test]
    fn delay_uses_min_delay_until_enough_samples_then_percentile() {
        let s = state(0.1);
        for _ in 0..99 {
            s.record_success(Duration::from_millis(50));
        }
        assert_eq!(s.delay(), Duration::from_millis(5));
        s.record_success(Duration::from_millis(50));
        let d = s.delay();
        assert!(
            d >= Duration::from_millis(49) && d <= Duration::from_millis(51),
            "{d:?}"
        );
    }

    #[test]
    fn budget_caps_hedged_share() {
        let s = state(0.1);
        let mut hedged = 0u64;
        for _ in 0..5000 {
            s.count_call();
            if s.try_acquire() {
                hedged += 1;
            }
        }
        assert_eq!(hedged, s.hedges_sent());
        assert!(hedged <= 500 + 1, "{hedged}");
        assert!(hedged >= 450, "{hedged}");
    }
}
