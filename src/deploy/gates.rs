//! The deploy gates: what a new version must keep doing while it takes traffic, judged on a
//! sliding window of its recent answers. A gate that fails names what it saw and the limit, and
//! that sentence is the recorded reason of the rollback.

use crate::actors::version_stats::StatsWindow;

/// Limits a version under deploy must stay within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gates {
    /// Largest share of failed requests.
    pub max_error_rate: f64,
    /// The new version's p99 may be at most this multiple of the baseline p99 ...
    pub max_p99_ratio: f64,
    /// ... or this many milliseconds above it, whichever is larger (a 2-core machine's p99
    /// jitters by milliseconds; a ratio alone would fail healthy versions).
    pub p99_slack_ms: f64,
    /// Smallest share of shadow comparisons choosing the live version's action.
    pub min_agreement: f64,
    /// Largest mean total-variation distance between the two action distributions.
    pub max_divergence: f64,
    /// Fewest requests in the window before the error-rate and latency gates judge.
    pub min_requests: u64,
    /// Fewest shadow comparisons before the agreement and divergence gates judge.
    pub min_compared: u64,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            max_error_rate: 0.01,
            max_p99_ratio: 3.0,
            p99_slack_ms: 5.0,
            min_agreement: 0.9,
            max_divergence: 0.1,
            min_requests: 50,
            min_compared: 50,
        }
    }
}

impl Gates {
    /// Checks `recent` (the new version's recent window) against the gates; `baseline_p99_ms`
    /// is the old version's p99 before the deploy (0: unknown, the latency gate is skipped);
    /// `compare` says whether shadow comparisons are being made and judged.
    pub fn check(
        &self,
        recent: &StatsWindow,
        baseline_p99_ms: f64,
        compare: bool,
    ) -> Result<(), String> {
        if recent.non_finite > 0 {
            return Err(format!(
                "{} answer(s) held NaN or infinity",
                recent.non_finite
            ));
        }
        if recent.out_of_range > 0 {
            return Err(format!(
                "{} answer(s) held values beyond ±{:e}",
                recent.out_of_range,
                crate::actors::version_stats::OUT_OF_RANGE
            ));
        }
        if recent.requests >= self.min_requests && recent.error_rate() > self.max_error_rate {
            return Err(format!(
                "error rate {:.2}% ({} of {}) above the {:.2}% gate",
                recent.error_rate() * 100.0,
                recent.errors,
                recent.requests,
                self.max_error_rate * 100.0
            ));
        }
        let answered = recent.latency_us.len();
        if answered >= self.min_requests && baseline_p99_ms > 0.0 {
            let limit =
                (baseline_p99_ms * self.max_p99_ratio).max(baseline_p99_ms + self.p99_slack_ms);
            let p99 = recent.p99_ms();
            if p99 > limit {
                return Err(format!(
                    "p99 {p99:.2} ms above the {limit:.2} ms gate (baseline p99 {baseline_p99_ms:.2} ms)"
                ));
            }
        }
        if compare && recent.compared >= self.min_compared {
            if recent.agreement() < self.min_agreement {
                return Err(format!(
                    "chose the live version's action in {:.1}% of {} shadow comparisons, below the {:.1}% gate",
                    recent.agreement() * 100.0,
                    recent.compared,
                    self.min_agreement * 100.0
                ));
            }
            if recent.mean_divergence() > self.max_divergence {
                return Err(format!(
                    "action-distribution divergence {:.3} above the {:.3} gate ({} shadow comparisons)",
                    recent.mean_divergence(),
                    self.max_divergence,
                    recent.compared
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::version_stats::VersionStats;

    fn window(n: u64, ms: u64, errors: u64) -> StatsWindow {
        let stats = VersionStats::default();
        for _ in 0..n {
            stats.record_ok(Duration::from_millis(ms), &[0.0, 1.0], &[0.5]);
        }
        for _ in 0..errors {
            stats.record_error();
        }
        stats.take()
    }

    #[test]
    fn a_healthy_window_passes() {
        assert_eq!(
            Gates::default().check(&window(100, 2, 0), 2.0, true),
            Ok(())
        );
        // Too few requests to judge anything but NaN.
        assert_eq!(
            Gates::default().check(&window(10, 200, 5), 2.0, true),
            Ok(())
        );
    }

    #[test]
    fn each_gate_names_what_it_saw() {
        let g = Gates::default();
        let err = g.check(&window(100, 2, 5), 2.0, false).unwrap_err();
        assert!(err.starts_with("error rate 4.76% (5 of 105)"), "{err}");
        let err = g.check(&window(100, 20, 0), 2.0, false).unwrap_err();
        assert!(err.starts_with("p99 20.0"), "{err}");
        assert!(err.contains("7.00 ms gate (baseline p99 2.00 ms)"), "{err}");
        // Unknown baseline: the latency gate does not judge.
        assert_eq!(g.check(&window(100, 20, 0), 0.0, false), Ok(()));

        let stats = VersionStats::default();
        stats.record_ok(Duration::from_millis(1), &[f32::NAN], &[0.0]);
        let err = g.check(&stats.take(), 2.0, false).unwrap_err();
        assert_eq!(err, "1 answer(s) held NaN or infinity");

        let stats = VersionStats::default();
        for i in 0..100 {
            let shadow_action = if i % 4 == 0 { 0 } else { 1 };
            stats.record_comparison((1, &[0.0, 1.0]), (shadow_action, &[0.0, 1.0]));
        }
        let err = g.check(&stats.take(), 2.0, true).unwrap_err();
        assert!(
            err.starts_with("chose the live version's action in 75.0% of 100"),
            "{err}"
        );

        let stats = VersionStats::default();
        for _ in 0..100 {
            stats.record_comparison((1, &[0.0, 1.0]), (1, &[0.0, 0.2]));
        }
        let w = stats.take();
        assert!(
            g.check(&w, 2.0, true)
                .unwrap_err()
                .starts_with("action-distribution divergence")
        );
        // Comparisons are only judged while a shadow runs.
        assert_eq!(g.check(&w, 2.0, false), Ok(()));
    }
}
