//! The phi-accrual failure detector (Hayashibara et al., 2004; the variant Akka and Cassandra
//! use) that region links will run on each peer's heartbeats.
//!
//! Instead of a fixed timeout, it keeps a window of recent heartbeat inter-arrival times and
//! answers "how surprised would we be that no heartbeat has arrived for this long", as
//! `phi = -log10(P(a heartbeat comes later than now))`, with the inter-arrival times modelled
//! as a normal distribution (logistic approximation of its CDF). phi 1 means a 10 % chance the
//! peer is only late, phi 8 one in 10⁸. A steady link with 100 ms heartbeats crosses phi 8
//! about 200 ms after the last heartbeat (sub-second detection), while a link whose heartbeats
//! are jittery widens its own tolerance instead of flapping; a single late heartbeat of a
//! steady link raises phi only briefly. Times are passed in, so it is deterministic to test.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// Tuning of a [`PhiAccrual`] detector.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiConfig {
    /// Inter-arrival samples kept (default 200).
    pub max_samples: usize,
    /// Lower bound of the standard deviation, so a perfectly regular link does not declare a
    /// peer dead a few milliseconds after one late heartbeat (default 25 ms).
    pub min_std_deviation: Duration,
    /// Extra pause tolerated on top of the mean interval, e.g. for a GC-free but busy peer
    /// (default 0).
    pub acceptable_pause: Duration,
    /// Interval assumed before the first two heartbeats have been seen (default 100 ms).
    pub first_interval: Duration,
}

impl Default for PhiConfig {
    fn default() -> Self {
        Self {
            max_samples: 200,
            min_std_deviation: Duration::from_millis(25),
            acceptable_pause: Duration::ZERO,
            first_interval: Duration::from_millis(100),
        }
    }
}

/// A phi-accrual failure detector for one peer.
#[derive(Debug, Clone)]
pub struct PhiAccrual {
    config: PhiConfig,
    intervals_ms: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    last: Option<Instant>,
}

impl PhiAccrual {
    /// A detector that has seen no heartbeat yet.
    #[must_use]
    pub fn new(config: PhiConfig) -> Self {
        Self {
            config,
            intervals_ms: VecDeque::new(),
            sum: 0.0,
            sum_sq: 0.0,
            last: None,
        }
    }

    /// Records a heartbeat that arrived at `at` (earlier times than the last one are ignored).
    pub fn heartbeat(&mut self, at: Instant) {
        if let Some(last) = self.last {
            if at < last {
                return;
            }
            self.push(ms(at - last));
        } else {
            // Seed the window so that phi is meaningful from the first heartbeat on.
            let first = ms(self.config.first_interval);
            self.push(first);
        }
        self.last = Some(at);
    }

    fn push(&mut self, interval: f64) {
        self.intervals_ms.push_back(interval);
        self.sum += interval;
        self.sum_sq += interval * interval;
        while self.intervals_ms.len() > self.config.max_samples.max(1) {
            if let Some(old) = self.intervals_ms.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
    }

    /// Mean inter-arrival time in milliseconds (with the acceptable pause added).
    #[must_use]
    pub fn mean_ms(&self) -> f64 {
        let n = self.intervals_ms.len().max(1) as f64;
        self.sum / n + ms(self.config.acceptable_pause)
    }

    /// Standard deviation of the inter-arrival times in milliseconds (at least the minimum).
    #[must_use]
    pub fn std_deviation_ms(&self) -> f64 {
        let n = self.intervals_ms.len().max(1) as f64;
        let mean = self.sum / n;
        let variance = (self.sum_sq / n - mean * mean).max(0.0);
        variance.sqrt().max(ms(self.config.min_std_deviation))
    }

    /// The suspicion level at `now`: 0 right after a heartbeat, growing while none arrives.
    /// 0 before the first heartbeat (a peer never heard from is not suspected, it is unknown).
    #[must_use]
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else { return 0.0 };
        let elapsed = ms(now.saturating_duration_since(last));
        let y = (elapsed - self.mean_ms()) / self.std_deviation_ms();
        let e = (-y * (1.5976 + 0.070_566 * y * y)).exp();
        let phi = if elapsed > self.mean_ms() {
            -(e / (1.0 + e)).log10()
        } else {
            -(1.0 - 1.0 / (1.0 + e)).log10()
        };
        if phi.is_finite() {
            phi.max(0.0)
        } else {
            f64::MAX
        }
    }

    /// Whether the peer is considered alive at `now` for the given phi threshold.
    #[must_use]
    pub fn is_available(&self, now: Instant, threshold: f64) -> bool {
        self.phi(now) < threshold
    }

    /// When the last heartbeat arrived.
    #[must_use]
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn steady(period_ms: u64, beats: u32) -> (PhiAccrual, Instant) {
        let mut d = PhiAccrual::new(PhiConfig::default());
        let t0 = Instant::now();
        let mut t = t0;
        for _ in 0..beats {
            d.heartbeat(t);
            t += Duration::from_millis(period_ms);
        }
        (d, t - Duration::from_millis(period_ms))
    }

    /// Milliseconds after the last heartbeat at which phi first reaches `threshold`.
    fn detection_ms(d: &PhiAccrual, last: Instant, threshold: f64) -> u64 {
        (0..10_000u64)
            .find(|&ms| d.phi(last + Duration::from_millis(ms)) >= threshold)
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn a_steady_link_is_declared_dead_well_under_a_second() {
        let (d, last) = steady(100, 50);
        assert!(
            d.phi(last + Duration::from_millis(100)) < 1.0,
            "on time is not suspicious"
        );
        assert!(
            d.phi(last + Duration::from_millis(130)) < 8.0,
            "one slightly late beat is tolerated"
        );
        let t = detection_ms(&d, last, 8.0);
        assert!((150..400).contains(&t), "phi 8 after {t} ms");
    }

    #[test]
    fn a_jittery_link_tolerates_more_before_suspecting() {
        let (steady_d, steady_last) = steady(100, 50);
        let mut d = PhiAccrual::new(PhiConfig::default());
        let mut t = Instant::now();
        for i in 0..50u64 {
            d.heartbeat(t);
            t += Duration::from_millis(if i % 2 == 0 { 40 } else { 160 });
        }
        let last = d.last_heartbeat().expect("beats");
        assert!(detection_ms(&d, last, 8.0) > detection_ms(&steady_d, steady_last, 8.0));
    }

    #[test]
    fn unknown_peers_and_fresh_heartbeats_are_not_suspected() {
        let d = PhiAccrual::new(PhiConfig::default());
        assert_eq!(d.phi(Instant::now()), 0.0);
        let (d, last) = steady(100, 3);
        assert!(d.is_available(last, 8.0));
        assert!(!d.is_available(last + Duration::from_secs(5), 8.0));
    }

    #[test]
    fn the_window_forgets_old_intervals() {
        let mut d = PhiAccrual::new(PhiConfig {
            max_samples: 10,
            ..PhiConfig::default()
        });
        let mut t = Instant::now();
        for _ in 0..20 {
            d.heartbeat(t);
            t += Duration::from_millis(1000);
        }
        for _ in 0..20 {
            d.heartbeat(t);
            t += Duration::from_millis(100);
        }
        assert!((d.mean_ms() - 100.0).abs() < 1e-6, "{}", d.mean_ms());
    }

    proptest! {
        #[test]
        fn phi_is_finite_non_negative_and_grows_with_silence(
            intervals in proptest::collection::vec(1u64..2_000, 1..100),
            a in 0u64..5_000,
            b in 0u64..5_000,
        ) {
            let mut d = PhiAccrual::new(PhiConfig::default());
            let mut t = Instant::now();
            for i in &intervals {
                d.heartbeat(t);
                t += Duration::from_millis(*i);
            }
            let last = d.last_heartbeat().expect("beats");
            let (lo, hi) = (a.min(b), a.max(b));
            let p_lo = d.phi(last + Duration::from_millis(lo));
            let p_hi = d.phi(last + Duration::from_millis(hi));
            prop_assert!(p_lo >= 0.0 && !p_lo.is_nan());
            prop_assert!(p_hi >= p_lo - 1e-9, "phi fell from {p_lo} to {p_hi}");
        }
    }
}
