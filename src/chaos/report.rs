//! What a chaos run concludes, as data: the verdict, each hypothesis with what was expected
//! and observed, request counts, latency per phase, each fault's throughput ratio and recovery
//! time, the fault log and the per-second timeline. Written as `report.json` (this structure)
//! and `report.md` (for people); see [`super::timeline`] for `timeline.svg`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::deploy_faults::DeployResult;

/// pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every hypothesis held and the run was not aborted.
    Pass,
    /// Otherwise.
    Fail,
}

/// One hypothesis, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HypothesisResult {
    /// What it claims, e.g. `p99 during fault 1 (node-kill tokyo-a-1)`.
    pub name: String,
    /// The bound, e.g. `<= 50 ms`.
    pub expected: String,
    /// What was measured, e.g. `12.3 ms`.
    pub observed: String,
    /// Whether it held.
    pub held: bool,
}

/// Request counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    /// Issued after warm-up.
    pub sent: u64,
    /// Answered with a valid result.
    pub ok: u64,
    /// Everything else.
    pub failed: u64,
    /// Count per final status (`OK` included).
    pub by_status: BTreeMap<String, u64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// One phase of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `before`, `during` or `after`.
    pub phase: String,
    /// The fault (1-based, file order) the phase belongs to; none for `before`.
    pub fault: Option<usize>,
    /// Start, s after warm-up.
    pub from_s: f64,
    /// End, s after warm-up.
    pub to_s: f64,
    /// Requests started in the phase.
    pub sent: u64,
    /// Of which failed.
    pub failed: u64,
    /// Successful requests per second.
    pub ok_per_s: f64,
    /// Latency of the phase's successful and failed requests.
    pub latency_ms: Latency,
}

/// Latency overall and per phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Median of the whole run.
    pub p50: f64,
    /// 99th percentile of the whole run.
    pub p99: f64,
    /// 99.9th percentile of the whole run.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Before, then during and after each fault.
    pub phases: Vec<Phase>,
}

/// One fault's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// 1-based, in file order.
    pub fault: usize,
    /// The fault kind.
    pub kind: String,
    /// What it hit.
    pub target: String,
    /// Injected at, s after warm-up (planned).
    pub at_s: f64,
    /// Healed at, for lasting faults.
    pub heal_at_s: Option<f64>,
    /// End of its "during" window.
    pub window_end_s: f64,
    /// Successful requests per second during the window ÷ before the first fault.
    pub throughput_ratio: f64,
    /// Last affected 100 ms bucket's end − injection time (see `report.md` for the rule).
    pub recovery_s: f64,
    /// Whether the injection itself succeeded.
    pub injected: bool,
    /// Nodes the fault took away from the rest (empty for faults that lose none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_nodes: Vec<String>,
    /// Seconds until the first surviving node declared every lost node dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_s: Option<f64>,
    /// Seconds until every surviving node did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_all_s: Option<f64>,
    /// Whether the gateways lost those nodes too (so their sessions had to move).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost_to_clients: bool,
    /// Recurrent sessions that lived on the lost nodes (when lost to the gateways).
    #[serde(default)]
    pub sessions_on_lost_nodes: u64,
    /// Seconds until the last of them answered from a surviving node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_moved_s: Option<f64>,
}

/// One line of the fault log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Seconds after warm-up.
    pub t_s: f64,
    /// Wall-clock time.
    pub wall: DateTime<Utc>,
    /// 1-based fault number; none for cluster events.
    pub fault: Option<usize>,
    /// `inject`, `heal`, `error`, or a cluster event (`started`, `exited`, ...).
    pub action: String,
    /// Who or what.
    pub target: String,
    /// Details.
    pub detail: String,
}

/// The recurrent-session check against a fault-free reference computation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionsReport {
    /// Sessions compared.
    pub checked: u64,
    /// Successful steps compared.
    pub steps_checked: u64,
    /// Steps whose action differs from the reference (or from another answer for the same seq).
    pub divergent_steps: u64,
    /// Steps answered by a replay of a stored result.
    pub replayed_steps: u64,
    /// Times a session moved to another node.
    pub node_moves: u64,
    /// Steps answered by a stale owner: under an owner epoch older than one that had already
    /// answered a step of the same session (or the same epoch from a second node). Two nodes
    /// advancing one session would show here; the target is 0.
    pub double_owner_steps: u64,
    /// Steps whose answer carried an owner epoch (the Redis store's leases), so the
    /// double-owner check covered them.
    pub epoch_steps: u64,
    /// Times a session moved to another model version (re-warmed by replay; the reference
    /// replays the same observations).
    #[serde(default)]
    pub version_moves: u64,
}

/// One second of the timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Second index after warm-up.
    pub t: u64,
    /// Requests started.
    pub sent: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Of which failed.
    pub failed: u64,
    /// p99 latency (ms) of those requests.
    pub p99_ms: f64,
}

/// The whole report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Whether the short form ran.
    pub short: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the run was aborted, if it was.
    pub aborted: Option<String>,
    /// Start of the measured run.
    pub started_at: DateTime<Utc>,
    /// Measured duration.
    pub duration_s: f64,
    /// The load applied.
    pub load: serde_json::Value,
    /// The cluster it ran on.
    pub cluster: serde_json::Value,
    /// The client library's counters: calls, attempts, hedges, session steps replayed.
    pub client: serde_json::Value,
    /// Each hypothesis.
    pub hypotheses: Vec<HypothesisResult>,
    /// Request counts.
    pub requests: Requests,
    /// Latency, overall and per phase.
    pub latency_ms: LatencyReport,
    /// Lowest throughput ratio over the faults (1.0 without faults).
    pub throughput_ratio_during_fault: f64,
    /// Recovery time of each fault, in fault order.
    pub recovery_s: Vec<f64>,
    /// Each fault.
    pub faults: Vec<FaultReport>,
    /// Every injection, heal and cluster process event, by time.
    pub fault_log: Vec<FaultEvent>,
    /// The recurrent-session check.
    pub sessions: SessionsReport,
    /// Per second.
    pub timeline: Vec<Second>,
    /// The history file, relative to the report.
    pub history: String,
    /// How each deploy fault ended, on the cluster and on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploys: Vec<DeployResult>,
}

/// A number of seconds, or `-`.
fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

impl Report {
    /// `report.md`: the verdict, the hypotheses table, the faults and the phases.
    #[must_use]
    pub fn to_markdown(&self, why: &str) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let verdict = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        };
        let _ = writeln!(s, "# Chaos run: {} — {verdict}\n", self.scenario);
        let _ = writeln!(
            s,
            "Form: {}. Started {} UTC, {:.1} s measured. Load: `{}`.\n",
            if self.short { "short" } else { "long" },
            self.started_at.format("%Y-%m-%d %H:%M:%S"),
            self.duration_s,
            self.load
        );
        if let Some(reason) = &self.aborted {
            let _ = writeln!(s, "**Aborted:** {reason}\n");
        }
        let _ = writeln!(s, "## Why these hypotheses\n\n{}\n", why.trim());
        let _ = writeln!(s, "Client library counters: `{}`.\n", self.client);
        let _ = writeln!(
            s,
            "## Hypotheses\n\n| hypothesis | expected | observed | held |\n|---|---|---|---|"
        );
        for h in &self.hypotheses {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                h.name,
                h.expected,
                h.observed,
                if h.held { "yes" } else { "**no**" }
            );
        }
        let r = &self.requests;
        let _ = writeln!(
            s,
            "\n## Requests\n\nsent {}, ok {}, failed {}; by status: {:?}\n",
            r.sent, r.ok, r.failed, r.by_status
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "Latency (ms): p50 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}\n",
            l.p50, l.p99, l.p999, l.max
        );
        let _ = writeln!(
            s,
            "| phase | fault | from s | to s | sent | failed | ok/s | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in &l.phases {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                p.phase,
                p.fault.map_or_else(|| "-".into(), |f| f.to_string()),
                p.from_s,
                p.to_s,
                p.sent,
                p.failed,
                p.ok_per_s,
                p.latency_ms.p50,
                p.latency_ms.p99,
                p.latency_ms.p999,
                p.latency_ms.max
            );
        }
        let _ = writeln!(
            s,
            "\n## Faults\n\nRecovery is the end of the last 100 ms bucket, from the injection to one second after the fault's window, with a failed request or more than 1 % of requests slower than the scenario's slow threshold, minus the injection time.\n"
        );
        let _ = writeln!(
            s,
            "| # | kind | target | at s | healed s | throughput ratio | recovery s | injected |\n|---|---|---|---|---|---|---|---|"
        );
        for f in &self.faults {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {} | {:.3} | {:.2} | {} |",
                f.fault,
                f.kind,
                f.target,
                f.at_s,
                f.heal_at_s
                    .map_or_else(|| "-".into(), |h| format!("{h:.1}")),
                f.throughput_ratio,
                f.recovery_s,
                f.injected
            );
        }
        let lost: Vec<&FaultReport> = self
            .faults
            .iter()
            .filter(|f| !f.lost_nodes.is_empty())
            .collect();
        if !lost.is_empty() {
            let _ = writeln!(
                s,
                "\n## Detection and session moves\n\nDetection: time until the first surviving node, and every surviving node, declared all lost nodes dead (from `members.jsonl`). Sessions moved: time until every session that lived on the lost nodes answered from another node.\n\n| # | lost nodes | detected s (first / all) | sessions on them | moved s |\n|---|---|---|---|---|"
            );
            for f in lost {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} / {} | {} | {} |",
                    f.fault,
                    f.lost_nodes.join(", "),
                    opt(f.detected_s),
                    opt(f.detected_all_s),
                    if f.lost_to_clients {
                        f.sessions_on_lost_nodes.to_string()
                    } else {
                        "- (gateways still reach them)".to_owned()
                    },
                    opt(f.sessions_moved_s)
                );
            }
        }
        if !self.deploys.is_empty() {
            let _ = writeln!(
                s,
                "\n## Deploys\n\nEach node's own record: its outcome, when it ended and when its bake began (seconds from its deploy start).\n\n| # | deploy | expected | cluster outcome | took s | node | node outcome | ended s | bake from s | reason |\n|---|---|---|---|---|---|---|---|---|---|"
            );
            for d in &self.deploys {
                for n in &d.nodes {
                    let _ = writeln!(
                        s,
                        "| {} | {}/{} ({}) | {} | {} | {:.1} | {} ({}) | {} | {} | {} | {} |",
                        d.fault,
                        d.model,
                        d.version,
                        d.strategy,
                        d.expect,
                        d.outcome,
                        d.took_s,
                        n.node,
                        if n.serving.is_empty() {
                            "unreachable"
                        } else {
                            &n.serving
                        },
                        if n.outcome.is_empty() {
                            "-"
                        } else {
                            &n.outcome
                        },
                        opt(n.ended_at_s),
                        opt(n.bake_started_at_s),
                        n.reason.replace('|', "/")
                    );
                }
            }
        }
        let se = &self.sessions;
        let _ = writeln!(
            s,
            "\n## Recurrent sessions\n\n{} sessions, {} steps compared with the reference: {} divergent, {} replayed, {} node moves, {} version moves; {} steps answered by a stale owner (of {} with an owner epoch).\n",
            se.checked,
            se.steps_checked,
            se.divergent_steps,
            se.replayed_steps,
            se.node_moves,
            se.version_moves,
            se.double_owner_steps,
            se.epoch_steps
        );
        let _ = writeln!(
            s,
            "## Fault log\n\n| t s | fault | action | target | detail |\n|---|---|---|---|---|"
        );
        for e in &self.fault_log {
            let _ = writeln!(
                s,
                "| {:.3} | {} | {} | {} | {} |",
                e.t_s,
                e.fault.map_or_else(|| "-".into(), |f| f.to_string()),
                e.action,
                e.target,
                e.detail.replace('|', "/")
            );
        }
        let _ = writeln!(
            s,
            "\nTimeline: `timeline.svg`. Every request: `{}`.",
            self.history
        );
        s
    }
}
