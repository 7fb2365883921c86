//! Latency and outcome accounting for `fudo bench`: one overall hdrhistogram, one histogram per
//! second of the measurement window (the timeline), request counters and errors by status.
//!
//! Every request is attributed to the moment it was *sent* (for the open loop: the moment it was
//! *scheduled*), as an offset from the start of the run. Requests sent during the warmup, or after
//! the window closed, are not measured. Latencies are recorded only for successful requests, so a
//! burst of fast `UNAVAILABLE` answers during a failover cannot flatter the percentiles.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// The highest latency tracked, in µs (60 s); slower answers are clamped to it.
const MAX_TRACKABLE_US: u64 = 60_000_000;

/// Request counters of the measurement window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Requests issued (scheduled, for the open loop) in the window.
    pub sent: u64,
    /// Requests answered with a valid response.
    pub ok: u64,
    /// Requests that failed (gRPC error, local deadline, bad response or client overload).
    pub failed: u64,
}

/// Latency percentiles of the successful requests, in milliseconds (µs resolution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest answer.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// One second of the measurement window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// Start of the second, counted from the start of the measurement window (0, 1, 2, ...).
    pub t: u64,
    /// Requests sent (scheduled) during this second.
    pub sent: u64,
    /// Of those, how many succeeded.
    pub ok: u64,
    /// Of those, how many failed.
    pub failed: u64,
    /// Median latency of the successful ones (2 significant figures).
    pub p50_ms: f64,
    /// 99th percentile latency of the successful ones (2 significant figures).
    pub p99_ms: f64,
}

/// A live view for the progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Counters so far.
    pub counts: RequestCounts,
    /// 99th percentile so far, in ms.
    pub p99_ms: f64,
}

/// The final accounting of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Counters of the window.
    pub requests: RequestCounts,
    /// Latency percentiles.
    pub latency_ms: LatencySummary,
    /// Failure reason (gRPC code name or client-side reason) to count.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Per-second breakdown.
    pub timeline: Vec<TimelineEntry>,
}

struct Second {
    counts: RequestCounts,
    hist: Histogram<u32>,
}

/// Accumulates outcomes; all times are offsets from the start of the run (warmup included).
pub struct Recorder {
    warmup: Duration,
    duration: Duration,
    counts: RequestCounts,
    hist: Histogram<u64>,
    seconds: Vec<Second>,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// A recorder for a run whose measurement window is `[warmup, warmup + duration)`.
    pub fn new(warmup: Duration, duration: Duration) -> Result<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKABLE_US, 3)
            .context("creating the latency histogram")?;
        let n_seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        let seconds = (0..n_seconds)
            .map(|_| {
                Ok(Second {
                    counts: RequestCounts::default(),
                    hist: Histogram::new_with_bounds(1, MAX_TRACKABLE_US, 2)
                        .context("creating a timeline histogram")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            warmup,
            duration,
            counts: RequestCounts::default(),
            hist,
            seconds,
            errors: BTreeMap::new(),
        })
    }

    /// The timeline bucket of a request sent at `sent_at`, or `None` when it is not measured
    /// (warmup, or after the window).
    fn bucket(&self, sent_at: Duration) -> Option<usize> {
        let into_window = sent_at.checked_sub(self.warmup)?;
        if into_window >= self.duration {
            return None;
        }
        usize::try_from(into_window.as_secs())
            .ok()
            .filter(|&i| i < self.seconds.len())
    }

    /// Whether a request sent at `sent_at` counts towards the statistics.
    #[cfg(test)]
    pub fn is_measured(&self, sent_at: Duration) -> bool {
        self.bucket(sent_at).is_some()
    }

    /// A request was sent (scheduled) at `sent_at`.
    pub fn sent(&mut self, sent_at: Duration) {
        if let Some(i) = self.bucket(sent_at) {
            self.counts.sent += 1;
            self.seconds[i].counts.sent += 1;
        }
    }

    /// The request sent at `sent_at` succeeded after `latency`.
    pub fn ok(&mut self, sent_at: Duration, latency: Duration) {
        if let Some(i) = self.bucket(sent_at) {
            let us = u64::try_from(latency.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            self.counts.ok += 1;
            self.hist.saturating_record(us);
            let second = &mut self.seconds[i];
            second.counts.ok += 1;
            second.hist.saturating_record(us);
        }
    }

    /// The request sent at `sent_at` failed with `reason` (a gRPC code name such as
    /// `UNAVAILABLE`, or a client-side reason such as `client_overload`).
    pub fn failed(&mut self, sent_at: Duration, reason: &str) {
        if let Some(i) = self.bucket(sent_at) {
            self.counts.failed += 1;
            self.seconds[i].counts.failed += 1;
            match self.errors.get_mut(reason) {
                Some(n) => *n += 1,
                None => {
                    self.errors.insert(reason.to_owned(), 1);
                }
            }
        }
    }

    /// Counters and p99 so far.
    pub fn progress(&self) -> Progress {
        Progress {
            counts: self.counts,
            p99_ms: us_to_ms(self.hist.value_at_quantile(0.99)),
        }
    }

    /// The final accounting.
    pub fn summary(&self) -> Summary {
        let h = &self.hist;
        Summary {
            requests: self.counts,
            latency_ms: LatencySummary {
                p50: us_to_ms(h.value_at_quantile(0.50)),
                p90: us_to_ms(h.value_at_quantile(0.90)),
                p99: us_to_ms(h.value_at_quantile(0.99)),
                p999: us_to_ms(h.value_at_quantile(0.999)),
                max: us_to_ms(h.max()),
                mean: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            },
            errors_by_status: self.errors.clone(),
            timeline: self
                .seconds
                .iter()
                .zip(0u64..)
                .map(|(s, t)| TimelineEntry {
                    t,
                    sent: s.counts.sent,
                    ok: s.counts.ok,
                    failed: s.counts.failed,
                    p50_ms: us_to_ms(s.hist.value_at_quantile(0.50)),
                    p99_ms: us_to_ms(s.hist.value_at_quantile(0.99)),
                })
                .collect(),
        }
    }
}

#[allow(clippy::cast_precision_loss)] // µs latencies are far below 2^52
fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn secs(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    /// Within hdrhistogram's 3-significant-figure precision.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 1e-3 + 1e-9
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut r = Recorder::new(Duration::ZERO, secs(10.0)).expect("recorder");
        // 1..=1000 ms, one each.
        for i in 1..=1000u64 {
            r.sent(ms(0));
            r.ok(ms(0), ms(i));
        }
        let s = r.summary();
        assert_eq!(
            s.requests,
            RequestCounts {
                sent: 1000,
                ok: 1000,
                failed: 0
            }
        );
        let l = s.latency_ms;
        assert!(close(l.p50, 500.0), "p50 {}", l.p50);
        assert!(close(l.p90, 900.0), "p90 {}", l.p90);
        assert!(close(l.p99, 990.0), "p99 {}", l.p99);
        assert!(close(l.p999, 999.0), "p999 {}", l.p999);
        assert!(close(l.max, 1000.0), "max {}", l.max);
        assert!(close(l.mean, 500.5), "mean {}", l.mean);
    }

    #[test]
    fn microsecond_resolution() {
        let mut r = Recorder::new(Duration::ZERO, secs(1.0)).expect("recorder");
        r.ok(ms(0), Duration::from_micros(123));
        let l = r.summary().latency_ms;
        assert!(close(l.p50, 0.123), "p50 {}", l.p50);
        assert!(close(l.max, 0.123), "max {}", l.max);
    }

    #[test]
    fn empty_summary_is_all_zero() {
        let r = Recorder::new(Duration::ZERO, secs(2.0)).expect("recorder");
        let s = r.summary();
        assert_eq!(s.requests, RequestCounts::default());
        assert_eq!(s.latency_ms, LatencySummary::default());
        assert!(s.errors_by_status.is_empty());
        assert_eq!(s.timeline.len(), 2);
        assert_eq!(r.progress(), Progress::default());
    }

    #[test]
    fn warmup_and_after_window_are_excluded() {
        let mut r = Recorder::new(secs(1.0), secs(2.0)).expect("recorder");
        for at in [ms(0), ms(999), ms(3000), ms(5000)] {
            assert!(!r.is_measured(at));
            r.sent(at);
            r.ok(at, ms(1));
            r.failed(at, "UNAVAILABLE");
        }
        assert!(r.is_measured(ms(1000)));
        assert!(r.is_measured(ms(2999)));
        let s = r.summary();
        assert_eq!(s.requests, RequestCounts::default());
        assert!(s.errors_by_status.is_empty());
        assert_eq!(s.latency_ms.max, 0.0);
    }

    #[test]
    fn per_second_bucketing_by_send_time() {
        let mut r = Recorder::new(secs(1.0), secs(3.0)).expect("recorder");
        // Second 0 of the window ([1 s, 2 s) of the run): 3 ok at 2 ms, 1 failure.
        for at in [ms(1000), ms(1500), ms(1999)] {
            r.sent(at);
            r.ok(at, ms(2));
        }
        r.sent(ms(1200));
        r.failed(ms(1200), "DEADLINE_EXCEEDED");
        // Second 2: one ok at 10 ms, answered long after the second ended: still bucketed by
        // its send time.
        r.sent(ms(3100));
        r.ok(ms(3100), ms(10));
        let s = r.summary();
        let t: Vec<_> = s
            .timeline
            .iter()
            .map(|e| (e.t, e.sent, e.ok, e.failed))
            .collect();
        assert_eq!(t, vec![(0, 4, 3, 1), (1, 0, 0, 0), (2, 1, 1, 0)]);
        // The timeline histograms keep 2 significant figures.
        assert!((s.timeline[0].p50_ms - 2.0).abs() < 0.02);
        assert!((s.timeline[0].p99_ms - 2.0).abs() < 0.02);
        assert_eq!(s.timeline[1].p99_ms, 0.0);
        assert!((s.timeline[2].p99_ms - 10.0).abs() < 0.1);
        assert_eq!(
            s.requests,
            RequestCounts {
                sent: 5,
                ok: 4,
                failed: 1
            }
        );
    }

    #[test]
    fn fractional_duration_gets_a_partial_last_second() {
        let mut r = Recorder::new(Duration::ZERO, secs(1.5)).expect("recorder");
        r.sent(ms(1400));
        r.sent(ms(1500)); // past the window
        let s = r.summary();
        assert_eq!(s.timeline.len(), 2);
        assert_eq!(s.timeline[1].sent, 1);
        assert_eq!(s.requests.sent, 1);
    }

    #[test]
    fn errors_are_counted_by_reason() {
        let mut r = Recorder::new(Duration::ZERO, secs(1.0)).expect("recorder");
        for reason in [
            "UNAVAILABLE",
            "UNAVAILABLE",
            "client_overload",
            "UNAVAILABLE",
            "RESOURCE_EXHAUSTED",
        ] {
            r.sent(ms(10));
            r.failed(ms(10), reason);
        }
        let s = r.summary();
        let errors: Vec<_> = s
            .errors_by_status
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            errors,
            vec![
                ("RESOURCE_EXHAUSTED", 1),
                ("UNAVAILABLE", 3),
                ("client_overload", 1)
            ]
        );
        assert_eq!(s.requests.failed, 5);
        assert_eq!(s.requests.ok, 0);
        assert_eq!(s.latency_ms.p99, 0.0);
        assert_eq!(r.progress().counts.failed, 5);
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut r = Recorder::new(Duration::ZERO, secs(1.0)).expect("recorder");
        r.ok(ms(0), Duration::from_secs(3600));
        let max = r.summary().latency_ms.max;
        assert!((59_000.0..=61_000.0).contains(&max), "max {max}");
    }
}
