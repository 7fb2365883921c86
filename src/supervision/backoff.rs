//! Restart backoff: how long a supervisor waits before restarting a child that keeps failing.
//!
//! A plain panic restart in ractor costs tens of microseconds, and a single failure must be
//! repaired at that speed: the first restart of a child within a window is immediate. A child
//! that fails again soon after is restarted after an exponentially growing delay (from
//! `initial`, doubling, capped at `max`) so that a crash loop does not burn the restart
//! intensity in a few milliseconds. After a quiet window without restarts the delay resets.
//! [`BackoffTracker`] is pure: it takes the time as an argument.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The backoff bounds for consecutive restarts of one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay before the second restart within a window (the first is immediate).
    /// `Duration::ZERO` turns backoff off.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 ms doubling up to 1 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(1),
            max: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// No delay ever: every restart is immediate.
    pub const NONE: Self = Self {
        initial: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The delay before restart number `attempt` (0-based) within a window: zero for the
    /// first, then `initial * 2^(attempt-1)`, capped at `max`.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        if attempt == 0 || self.initial.is_zero() {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Per-child backoff state: how many restarts happened in the current window, and when the last.
#[derive(Clone, Debug, Default)]
pub struct BackoffTracker {
    attempts: u32,
    last: Option<Instant>,
}

impl BackoffTracker {
    /// A fresh tracker: the next restart is immediate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a restart decided at `now` and returns its delay.
    ///
    /// If no restart happened within `quiet` before `now`, the window starts over and the
    /// restart is immediate.
    pub fn next_delay(&mut self, backoff: &Backoff, quiet: Duration, now: Instant) -> Duration {
        if let Some(last) = self.last
            && now.saturating_duration_since(last) >= quiet
        {
            self.attempts = 0;
        }
        let delay = backoff.delay_for(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        self.last = Some(now + delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn first_restart_is_immediate_then_exponential_then_capped() {
        let b = Backoff {
            initial: ms(10),
            max: ms(50),
        };
        let delays: Vec<_> = (0..6).map(|a| b.delay_for(a)).collect();
        assert_eq!(delays, vec![ms(0), ms(10), ms(20), ms(40), ms(50), ms(50)]);
    }

    #[test]
    fn huge_attempt_numbers_saturate_at_max() {
        let b = Backoff::default();
        assert_eq!(b.delay_for(100), b.max);
        assert_eq!(b.delay_for(u32::MAX), b.max);
    }

    #[test]
    fn zero_initial_disables_backoff() {
        assert_eq!(Backoff::NONE.delay_for(7), Duration::ZERO);
    }

    #[test]
    fn tracker_grows_within_window_and_resets_after_quiet() {
        let b = Backoff {
            initial: ms(10),
            max: ms(1000),
        };
        let quiet = ms(500);
        let t0 = Instant::now();
        let mut t = BackoffTracker::new();
        assert_eq!(t.next_delay(&b, quiet, t0), ms(0));
        assert_eq!(t.next_delay(&b, quiet, t0 + ms(1)), ms(10));
        assert_eq!(t.next_delay(&b, quiet, t0 + ms(20)), ms(20));
        // Quiet for longer than the window since the last restart: start over.
        assert_eq!(t.next_delay(&b, quiet, t0 + ms(2000)), ms(0));
        assert_eq!(t.next_delay(&b, quiet, t0 + ms(2001)), ms(10));
    }
}
