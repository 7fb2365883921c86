//! Restart intensity: how many restarts a supervisor may make within a period.
//!
//! A child that fails on every start would otherwise be restarted forever. OTP bounds this with
//! a restart intensity: when more than `max_restarts` restarts happen within `period`, the
//! supervisor gives up, stops its children and fails itself, so its own supervisor can try a
//! wider restart (escalation). [`IntensityTracker`] is the pure sliding-window counter behind
//! that decision; it takes the time as an argument so that it can be tested without clocks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The restart intensity limit: at most `max_restarts` restarts within any `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intensity {
    /// Restarts allowed within `period`; one more escalates. `0` forbids any restart.
    pub max_restarts: u32,
    /// The sliding window over which restarts are counted.
    pub period: Duration,
}

impl Default for Intensity {
    /// 10 restarts in 5 seconds.
    fn default() -> Self {
        Self {
            max_restarts: 10,
            period: Duration::from_secs(5),
        }
    }
}

/// The outcome of recording a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntensityVerdict {
    /// The restart is allowed.
    Within,
    /// The restart would exceed the limit: the supervisor must escalate.
    Exceeded,
}

/// The timestamps of recent restarts, pruned to the intensity period.
#[derive(Clone, Debug, Default)]
pub struct IntensityTracker {
    restarts: VecDeque<Instant>,
}

impl IntensityTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a restart at `now` and says whether it stays within `intensity`.
    ///
    /// A restart at time `t` counts while `now - t < period`. The restart is recorded even when
    /// it exceeds the limit (the supervisor escalates then, so the tracker is not used again).
    pub fn record(&mut self, intensity: &Intensity, now: Instant) -> IntensityVerdict {
        self.prune(intensity, now);
        self.restarts.push_back(now);
        if self.restarts.len() > intensity.max_restarts as usize {
            IntensityVerdict::Exceeded
        } else {
            IntensityVerdict::Within
        }
    }

    /// The number of restarts that still count at `now`.
    pub fn count(&mut self, intensity: &Intensity, now: Instant) -> usize {
        self.prune(intensity, now);
        self.restarts.len()
    }

    fn prune(&mut self, intensity: &Intensity, now: Instant) {
        while let Some(oldest) = self.restarts.front() {
            if now.saturating_duration_since(*oldest) >= intensity.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_restarts: u32, period_ms: u64) -> Intensity {
        Intensity {
            max_restarts,
            period: Duration::from_millis(period_ms),
        }
    }

    #[test]
    fn default_is_ten_in_five_seconds() {
        let d = Intensity::default();
        assert_eq!(d.max_restarts, 10);
        assert_eq!(d.period, Duration::from_secs(5));
    }

    #[test]
    fn the_restart_after_max_within_period_exceeds() {
        let t0 = Instant::now();
        let i = limit(3, 1000);
        let mut tracker = IntensityTracker::new();
        for k in 0..3 {
            let at = t0 + Duration::from_millis(k * 10);
            assert_eq!(tracker.record(&i, at), IntensityVerdict::Within);
        }
        assert_eq!(
            tracker.record(&i, t0 + Duration::from_millis(40)),
            IntensityVerdict::Exceeded
        );
    }

    #[test]
    fn old_restarts_fall_out_of_the_window() {
        let t0 = Instant::now();
        let i = limit(2, 100);
        let mut tracker = IntensityTracker::new();
        assert_eq!(tracker.record(&i, t0), IntensityVerdict::Within);
        assert_eq!(
            tracker.record(&i, t0 + Duration::from_millis(50)),
            IntensityVerdict::Within
        );
        // The first restart is exactly one period old and no longer counts.
        assert_eq!(
            tracker.record(&i, t0 + Duration::from_millis(100)),
            IntensityVerdict::Within
        );
        assert_eq!(tracker.count(&i, t0 + Duration::from_millis(100)), 2);
        assert_eq!(tracker.count(&i, t0 + Duration::from_millis(1000)), 0);
    }

    #[test]
    fn zero_max_restarts_forbids_any_restart() {
        let mut tracker = IntensityTracker::new();
        assert_eq!(
            tracker.record(&limit(0, 1000), Instant::now()),
            IntensityVerdict::Exceeded
        );
    }
}
