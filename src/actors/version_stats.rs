//! What one loaded model version did with live traffic since the deployer last looked: the
//! inputs of the deploy gates (error rate, p99 latency, non-finite or out-of-range outputs) and
//! of the shadow comparison against the live version (action agreement, action-distribution
//! divergence). Request handlers record into it; the deployer takes a window at each gate
//! evaluation and starts a fresh one, so gates judge recent traffic, not the whole deploy.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use hdrhistogram::Histogram;

/// Largest latency recorded, in microseconds (longer ones are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;

/// Output values whose magnitude exceeds this are "out of range": a policy's logits and
/// values are O(10); this is far beyond anything a sane policy produces.
pub const OUT_OF_RANGE: f32 = 1.0e6;

/// Counters of one version over one window.
#[derive(Debug, Clone)]
pub struct StatsWindow {
    /// Requests answered (successfully or not) by this version.
    pub requests: u64,
    /// Of those, answered with an error the server is responsible for (not bad input).
    pub errors: u64,
    /// Answers that held NaN or infinity.
    pub non_finite: u64,
    /// Answers with a value beyond [`OUT_OF_RANGE`].
    pub out_of_range: u64,
    /// Latency of successful answers, microseconds.
    pub latency_us: Histogram<u64>,
    /// Shadow comparisons made (this version mirrored, compared to the live version).
    pub compared: u64,
    /// Of those, how many chose the same action as the live version.
    pub agreed: u64,
    /// Sum over comparisons of the total-variation distance between the two action
    /// distributions (softmax of the logits), each in 0..=1.
    pub divergence_sum: f64,
}

impl Default for StatsWindow {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            non_finite: 0,
            out_of_range: 0,
            latency_us: Histogram::new_with_max(MAX_LATENCY_US, 2)
                .expect("static histogram bounds are valid"),
            compared: 0,
            agreed: 0,
            divergence_sum: 0.0,
        }
    }
}

impl StatsWindow {
    /// Errors per request (0 with no requests).
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests)
    }

    /// The 99th percentile latency in milliseconds (0 with no answers).
    pub fn p99_ms(&self) -> f64 {
        if self.latency_us.is_empty() {
            0.0
        } else {
            self.latency_us.value_at_quantile(0.99) as f64 / 1e3
        }
    }

    /// Share of shadow comparisons that chose the live version's action (1 with none).
    pub fn agreement(&self) -> f64 {
        if self.compared == 0 {
            1.0
        } else {
            ratio(self.agreed, self.compared)
        }
    }

    /// Mean total-variation distance between the two versions' action distributions.
    pub fn mean_divergence(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.divergence_sum / self.compared as f64
        }
    }

    /// Adds `other` into this window.
    pub fn merge(&mut self, other: &StatsWindow) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.non_finite += other.non_finite;
        self.out_of_range += other.out_of_range;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.compared += other.compared;
        self.agreed += other.agreed;
        self.divergence_sum += other.divergence_sum;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The running window of one version; cheap to record into from many tasks.
#[derive(Debug, Default)]
pub struct VersionStats {
    window: Mutex<StatsWindow>,
}

impl VersionStats {
    fn with<R>(&self, f: impl FnOnce(&mut StatsWindow) -> R) -> R {
        f(&mut self.window.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records one answer: its latency and whether its outputs were sane.
    pub fn record_ok(&self, took: Duration, logits: &[f32], values: &[f32]) {
        let verdict = OutputCheck::of(logits, values);
        self.with(|w| {
            w.requests += 1;
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            w.latency_us.saturating_record(us.clamp(1, MAX_LATENCY_US));
            match verdict {
                OutputCheck::Sane => {}
                OutputCheck::NonFinite => w.non_finite += 1,
                OutputCheck::OutOfRange => w.out_of_range += 1,
            }
        });
    }

    /// Records a request this version failed.
    pub fn record_error(&self) {
        self.with(|w| {
            w.requests += 1;
            w.errors += 1;
        });
    }

    /// Records one shadow comparison of this version's answer with the live version's, for
    /// one row: the chosen actions and the logits they came from.
    pub fn record_comparison(&self, live: (i64, &[f32]), shadow: (i64, &[f32])) {
        let distance = total_variation(live.1, shadow.1);
        self.with(|w| {
            w.compared += 1;
            w.agreed += u64::from(live.0 == shadow.0);
            w.divergence_sum += distance;
        });
    }

    /// Returns the window so far and starts a new one.
    pub fn take(&self) -> StatsWindow {
        self.with(std::mem::take)
    }
}

/// Whether a set of outputs is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCheck {
    /// Every value finite and within [`OUT_OF_RANGE`].
    Sane,
    /// A NaN or an infinity.
    NonFinite,
    /// A finite value beyond [`OUT_OF_RANGE`].
    OutOfRange,
}

impl OutputCheck {
    /// Checks every value of `logits` and `values`.
    pub fn of(logits: &[f32], values: &[f32]) -> Self {
        let mut verdict = Self::Sane;
        for v in logits.iter().chain(values) {
            if !v.is_finite() {
                return Self::NonFinite;
            }
            if v.abs() > OUT_OF_RANGE {
                verdict = Self::OutOfRange;
            }
        }
        verdict
    }
}

/// Softmax of `logits` (numerically stable; empty for empty input).
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Total-variation distance between the action distributions of two logit rows: 0 when they
/// agree exactly, 1 when they share no probability mass (also for unusable or mismatched rows).
pub fn total_variation(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 1.0;
    }
    let (p, q) = (softmax(a), softmax(b));
    let d: f64 = p.iter().zip(&q).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0;
    if d.is_finite() {
        d.clamp(0.0, 1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_classified() {
        assert_eq!(OutputCheck::of(&[1.0, -2.0], &[0.5]), OutputCheck::Sane);
        assert_eq!(
            OutputCheck::of(&[1.0, f32::NAN], &[0.5]),
            OutputCheck::NonFinite
        );
        assert_eq!(
            OutputCheck::of(&[1.0], &[f32::INFINITY]),
            OutputCheck::NonFinite
        );
        assert_eq!(OutputCheck::of(&[2.0e7], &[0.0]), OutputCheck::OutOfRange);
    }

    #[test]
    fn divergence_is_a_distance_between_distributions() {
        assert!(total_variation(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) < 1e-12);
        // Shifting every logit by a constant leaves the distribution unchanged.
        assert!(total_variation(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0]) < 1e-9);
        let far = total_variation(&[50.0, 0.0], &[0.0, 50.0]);
        assert!(far > 0.999, "{far}");
        assert_eq!(total_variation(&[1.0], &[1.0, 2.0]), 1.0);
        assert_eq!(total_variation(&[f32::NAN, 1.0], &[0.0, 1.0]), 1.0);
    }

    #[test]
    fn windows_are_taken_and_restarted() {
        let stats = VersionStats::default();
        stats.record_ok(Duration::from_millis(2), &[0.0, 1.0], &[0.1]);
        stats.record_ok(Duration::from_millis(4), &[f32::NAN, 1.0], &[0.1]);
        stats.record_error();
        stats.record_comparison((1, &[0.0, 1.0]), (1, &[0.0, 1.0]));
        stats.record_comparison((1, &[0.0, 9.0]), (0, &[9.0, 0.0]));
        let w = stats.take();
        assert_eq!((w.requests, w.errors, w.non_finite), (3, 1, 1));
        assert!((w.error_rate() - 1.0 / 3.0).abs() < 1e-9);
        assert!((w.p99_ms() - 4.0).abs() < 0.1, "{}", w.p99_ms());
        assert_eq!((w.compared, w.agreed), (2, 1));
        assert!((w.agreement() - 0.5).abs() < 1e-9);
        assert!(w.mean_divergence() > 0.49 && w.mean_divergence() < 0.5);
        let next = stats.take();
        assert_eq!(next.requests, 0);
        assert_eq!(next.agreement(), 1.0);
        let mut total = w.clone();
        total.merge(&w);
        assert_eq!(total.requests, 6);
        assert_eq!(total.latency_us.len(), 4);
    }
}
