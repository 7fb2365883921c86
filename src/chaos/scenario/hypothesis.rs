//! The steady-state hypotheses a scenario's `[[hypothesis]]` entries state, and the phases of
//! a run they look at.

use serde::Deserialize;

/// Which part of the run a hypothesis looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseSel {
    /// The whole measured run (after warm-up).
    #[default]
    All,
    /// Before the first fault.
    Before,
    /// Inside each fault's window (each checked separately).
    During,
    /// After the last fault's window.
    After,
}

/// A steady-state hypothesis (a `[[hypothesis]]` entry).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Hypothesis {
    /// ok / sent ≥ `min` in the phase.
    SuccessRatio {
        /// Lowest acceptable ratio.
        min: f64,
        /// Phase.
        #[serde(default)]
        phase: PhaseSel,
    },
    /// At most `max` failed requests in the whole run.
    MaxFailed {
        /// Most failures allowed.
        max: u64,
    },
    /// p99 latency ≤ `max` ms in the phase.
    P99Ms {
        /// Highest acceptable p99.
        max: f64,
        /// Phase.
        #[serde(default)]
        phase: PhaseSel,
    },
    /// Successful requests per second during each fault ≥ `min` × before.
    ThroughputRatio {
        /// Lowest acceptable ratio.
        min: f64,
    },
    /// Each fault's recovery (last bad request − fault start) ≤ `max` s.
    RecoveryS {
        /// Longest acceptable recovery.
        max: f64,
        /// A request slower than this counts as affected by the fault.
        #[serde(default = "default_slow_ms")]
        slow_ms: f64,
    },
    /// Every recurrent session's actions equal a fault-free reference computation, and no
    /// session step was answered by a stale owner.
    SessionsMatchReference,
    /// Each node-loss fault (kill, freeze, region kill, partition) is detected — every
    /// surviving node's region links declare the lost nodes dead — within `max` s. For
    /// `partition.between`, the second group counts as lost, seen from the first.
    DetectionS {
        /// Longest acceptable detection time.
        max: f64,
    },
    /// The sessions a node-loss fault took from the gateways (a kill, freeze, region kill or
    /// isolation; not a partition between regions, where gateways still reach every node)
    /// answer again from a surviving node within `max` s of the fault.
    SessionsMovedS {
        /// Longest acceptable time.
        max: f64,
    },
    /// p99 latency during each fault ≤ `max` × p99 before the first fault.
    P99Ratio {
        /// Largest acceptable ratio.
        max: f64,
        /// The bound of the short form, if different: its phases last a few seconds, where
        /// one scheduler stall on a small machine moves a p99 by tens of percent.
        #[serde(default)]
        short_max: Option<f64>,
    },
    /// Every `deploy` fault ended as its `expect` says, on every node: `succeeded` with every
    /// live node serving the version, or `rolled-back` automatically, with the reason recorded,
    /// before the end of its bake window.
    DeploysAsExpected,
}

impl Hypothesis {
    /// The hypothesis as the short form checks it.
    #[must_use]
    pub fn for_short_form(self) -> Self {
        match self {
            Hypothesis::P99Ratio {
                max: _,
                short_max: Some(short),
            } => Hypothesis::P99Ratio {
                max: short,
                short_max: None,
            },
            other => other,
        }
    }
}

fn default_slow_ms() -> f64 {
    50.0
}
