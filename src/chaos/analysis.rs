//! Turns a run's history into its report: phases, percentiles, throughput ratios, recovery
//! times and the verdict of each hypothesis. Pure functions of the history, so a report can
//! be recomputed from `history.jsonl` and the scenario.

use std::collections::BTreeMap;

use super::{
    deploy_faults::DeployResult,
    history::Op,
    report::{
        FaultReport, HypothesisResult, Latency, LatencyReport, Phase, Requests, Second,
        SessionsReport,
    },
    scenario::{Fault, FaultKind, Hypothesis, PhaseSel, Scenario},
};

const BUCKET_US: i64 = 100_000;
/// A bucket is affected when more than this share of its requests are slow.
const SLOW_SHARE: f64 = 0.01;

/// Percentiles of `lat` (ms); zeros when empty.
#[must_use]
pub fn latency(mut lat: Vec<f64>) -> Latency {
    if lat.is_empty() {
        return Latency::default();
    }
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i]
    };
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: lat[lat.len() - 1],
    }
}

fn us(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The measured ops (started at or after `t = 0`).
fn measured(ops: &[Op]) -> impl Iterator<Item = &Op> {
    ops.iter().filter(|o| o.start_us >= 0)
}

fn phase(ops: &[Op], name: &str, fault: Option<usize>, from: i64, to: i64) -> Phase {
    let inside: Vec<&Op> = measured(ops)
        .filter(|o| o.start_us >= from && o.start_us < to)
        .collect();
    let ok = inside.iter().filter(|o| o.ok).count();
    let secs = ((to - from) as f64 / 1e6).max(1e-6);
    Phase {
        phase: name.into(),
        fault,
        from_s: from as f64 / 1e6,
        to_s: to as f64 / 1e6,
        sent: inside.len() as u64,
        failed: (inside.len() - ok) as u64,
        ok_per_s: ok as f64 / secs,
        latency_ms: latency(inside.iter().map(|o| o.latency_ms()).collect()),
    }
}

/// Before the first fault, then during and after each fault.
#[must_use]
pub fn phases(ops: &[Op], faults: &[Fault], end: i64) -> Vec<Phase> {
    let first = faults.first().map_or(end, |f| us(f.at));
    let mut out = vec![phase(ops, "before", None, 0, first)];
    for (i, f) in faults.iter().enumerate() {
        let n = f.index + 1;
        out.push(phase(ops, "during", Some(n), us(f.at), us(f.window_end)));
        let next = faults.get(i + 1).map_or(end, |g| us(g.at));
        if next > us(f.window_end) {
            out.push(phase(ops, "after", Some(n), us(f.window_end), next));
        }
    }
    out
}

/// Recovery of a fault: the end of the last affected 100 ms bucket in `[at, window_end + 1 s]`
/// (a bucket with a failure, or with more than 1 % of requests slower than `slow_ms`), minus
/// `at`; 0 if no bucket was affected.
#[must_use]
pub fn recovery_s(ops: &[Op], fault: &Fault, end: i64, slow_ms: f64) -> f64 {
    let from = us(fault.at);
    let to = (us(fault.window_end) + 1_000_000).min(end);
    let mut buckets: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
    for o in measured(ops).filter(|o| o.start_us >= from && o.start_us < to) {
        let b = buckets.entry((o.start_us - from) / BUCKET_US).or_default();
        b.0 += 1;
        if !o.ok {
            b.1 += 1;
        } else if o.latency_ms() > slow_ms {
            b.2 += 1;
        }
    }
    buckets
        .iter()
        .rev()
        .find(|(_, (n, failed, slow))| *failed > 0 || *slow as f64 > SLOW_SHARE * *n as f64)
        .map_or(0.0, |(b, _)| ((b + 1) * BUCKET_US) as f64 / 1e6)
}

/// Counts of the measured ops.
#[must_use]
pub fn requests(ops: &[Op]) -> Requests {
    let mut r = Requests::default();
    for o in measured(ops) {
        r.sent += 1;
        if o.ok {
            r.ok += 1;
        } else {
            r.failed += 1;
        }
        *r.by_status.entry(o.status.clone()).or_default() += 1;
    }
    r
}

/// One entry per second of the measured run.
#[must_use]
pub fn timeline(ops: &[Op], end: i64) -> Vec<Second> {
    let n = usize::try_from((end + 999_999) / 1_000_000).unwrap_or(0);
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut out: Vec<Second> = (0..n as u64)
        .map(|t| Second {
            t,
            ..Second::default()
        })
        .collect();
    for o in measured(ops) {
        let Ok(i) = usize::try_from(o.start_us / 1_000_000) else {
            continue;
        };
        let Some(s) = out.get_mut(i) else { continue };
        s.sent += 1;
        if o.ok {
            s.ok += 1;
        } else {
            s.failed += 1;
        }
        lat[i].push(o.latency_ms());
    }
    for (s, l) in out.iter_mut().zip(lat) {
        s.p99_ms = latency(l).p99;
    }
    out
}

/// Everything the report needs from the history.
#[derive(Debug)]
pub struct Analysis {
    /// Counts.
    pub requests: Requests,
    /// Latency overall and per phase.
    pub latency: LatencyReport,
    /// Per fault.
    pub faults: Vec<FaultReport>,
    /// Per second.
    pub timeline: Vec<Second>,
}

/// Analyses `ops` of a run of `scenario`; `injected[i]` says whether fault `i` (sorted order)
/// was injected.
#[must_use]
pub fn analyse(scenario: &Scenario, ops: &[Op], injected: &[bool]) -> Analysis {
    let end = us(scenario.load.duration);
    let all = latency(measured(ops).map(Op::latency_ms).collect());
    let phases = phases(ops, &scenario.faults, end);
    let before = phases.first().map_or(0.0, |p| p.ok_per_s);
    let slow_ms = scenario
        .hypotheses
        .iter()
        .find_map(|h| match h {
            Hypothesis::RecoveryS { slow_ms, .. } => Some(*slow_ms),
            _ => None,
        })
        .unwrap_or(50.0);
    let faults = scenario
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let during = phases
                .iter()
                .find(|p| p.phase == "during" && p.fault == Some(f.index + 1))
                .map_or(0.0, |p| p.ok_per_s);
            FaultReport {
                fault: f.index + 1,
                kind: f.kind.name().into(),
                target: f.kind.target(),
                at_s: f.at.as_secs_f64(),
                heal_at_s: f.heal_at.map(|d| d.as_secs_f64()),
                window_end_s: f.window_end.as_secs_f64(),
                throughput_ratio: if before > 0.0 { during / before } else { 0.0 },
                recovery_s: recovery_s(ops, f, end, slow_ms),
                injected: injected.get(i).copied().unwrap_or(false),
                lost_nodes: Vec::new(),
                detected_s: None,
                detected_all_s: None,
                lost_to_clients: false,
                sessions_on_lost_nodes: 0,
                sessions_moved_s: None,
            }
        })
        .collect();
    Analysis {
        requests: requests(ops),
        latency: LatencyReport {
            p50: all.p50,
            p99: all.p99,
            p999: all.p999,
            max: all.max,
            phases,
        },
        faults,
        timeline: timeline(ops, end),
    }
}

/// Checks every hypothesis. A fault that could not be injected fails every hypothesis about
/// faults: nothing was tested.
#[must_use]
pub fn check(
    scenario: &Scenario,
    a: &Analysis,
    sessions: &SessionsReport,
    deploys: &[DeployResult],
) -> Vec<HypothesisResult> {
    let mut out = Vec::new();
    let phase_list = |sel: PhaseSel| -> Vec<&Phase> {
        a.latency
            .phases
            .iter()
            .filter(|p| match sel {
                PhaseSel::All => false,
                PhaseSel::Before => p.phase == "before",
                PhaseSel::During => p.phase == "during",
                PhaseSel::After => p.phase == "after",
            })
            .collect()
    };
    let fault_name = |n: Option<usize>| {
        n.and_then(|n| a.faults.iter().find(|f| f.fault == n))
            .map_or_else(String::new, |f| {
                format!(" fault {} ({} {})", f.fault, f.kind, f.target)
            })
    };
    let all_injected = a.faults.iter().all(|f| f.injected);
    for h in &scenario.hypotheses {
        match h {
            Hypothesis::SuccessRatio { min, phase } => {
                let items: Vec<(String, u64, u64)> = if *phase == PhaseSel::All {
                    vec![("whole run".into(), a.requests.sent, a.requests.failed)]
                } else {
                    phase_list(*phase)
                        .into_iter()
                        .map(|p| {
                            (
                                format!("{}{}", p.phase, fault_name(p.fault)),
                                p.sent,
                                p.failed,
                            )
                        })
                        .collect()
                };
                for (name, sent, failed) in items {
                    let ratio = if sent == 0 {
                        0.0
                    } else {
                        (sent - failed) as f64 / sent as f64
                    };
                    out.push(HypothesisResult {
                        name: format!("success ratio, {name}"),
                        expected: format!(">= {min}"),
                        observed: format!("{ratio:.5} ({failed} of {sent} failed)"),
                        held: sent > 0 && ratio >= *min,
                    });
                }
            }
            Hypothesis::MaxFailed { max } => out.push(HypothesisResult {
                name: "failed requests, whole run".into(),
                expected: format!("<= {max}"),
                observed: format!("{} ({:?})", a.requests.failed, a.requests.by_status),
                held: a.requests.failed <= *max && a.requests.sent > 0,
            }),
            Hypothesis::P99Ms { max, phase } => {
                let items: Vec<(String, f64, u64)> = if *phase == PhaseSel::All {
                    vec![("whole run".into(), a.latency.p99, a.requests.sent)]
                } else {
                    phase_list(*phase)
                        .into_iter()
                        .map(|p| {
                            (
                                format!("{}{}", p.phase, fault_name(p.fault)),
                                p.latency_ms.p99,
                                p.sent,
                            )
                        })
                        .collect()
                };
                for (name, p99, sent) in items {
                    out.push(HypothesisResult {
                        name: format!("p99 latency, {name}"),
                        expected: format!("<= {max} ms"),
                        observed: format!("{p99:.2} ms"),
                        held: sent > 0 && p99 <= *max,
                    });
                }
            }
            Hypothesis::ThroughputRatio { min } => {
                for f in &a.faults {
                    out.push(HypothesisResult {
                        name: format!("throughput during{} vs before", fault_name(Some(f.fault))),
                        expected: format!(">= {min}"),
                        observed: format!("{:.3}", f.throughput_ratio),
                        held: f.injected && f.throughput_ratio >= *min,
                    });
                }
            }
            Hypothesis::RecoveryS { max, slow_ms } => {
                for f in &a.faults {
                    out.push(HypothesisResult {
                        name: format!(
                            "recovery of{} (slow = {slow_ms} ms)",
                            fault_name(Some(f.fault))
                        ),
                        expected: format!("<= {max} s"),
                        observed: format!("{:.2} s", f.recovery_s),
                        held: f.injected && f.recovery_s <= *max,
                    });
                }
            }
            Hypothesis::DetectionS { max } => {
                for f in a.faults.iter().filter(|f| !f.lost_nodes.is_empty()) {
                    out.push(HypothesisResult {
                        name: format!(
                            "detection of{} by every survivor",
                            fault_name(Some(f.fault))
                        ),
                        expected: format!("<= {max} s"),
                        observed: f.detected_all_s.map_or_else(
                            || "not detected by every survivor".to_owned(),
                            |s| {
                                format!(
                                    "{s:.3} s (first survivor {:.3} s)",
                                    f.detected_s.unwrap_or(s)
                                )
                            },
                        ),
                        held: f.injected && f.detected_all_s.is_some_and(|s| s <= *max),
                    });
                }
            }
            Hypothesis::SessionsMovedS { max } => {
                for f in a.faults.iter().filter(|f| f.lost_to_clients) {
                    out.push(HypothesisResult {
                        name: format!(
                            "sessions of{} serving again elsewhere",
                            fault_name(Some(f.fault))
                        ),
                        expected: format!("<= {max} s"),
                        observed: match (f.sessions_on_lost_nodes, f.sessions_moved_s) {
                            (0, _) => "no session lived on the lost nodes".to_owned(),
                            (n, Some(s)) => format!("{s:.3} s for {n} sessions"),
                            (n, None) => format!("{n} sessions, not all came back"),
                        },
                        held: f.injected
                            && (f.sessions_on_lost_nodes == 0
                                || f.sessions_moved_s.is_some_and(|s| s <= *max)),
                    });
                }
            }
            Hypothesis::P99Ratio { max, .. } => {
                let before = phase_list(PhaseSel::Before)
                    .first()
                    .map_or(0.0, |p| p.latency_ms.p99);
                for p in phase_list(PhaseSel::During) {
                    let ratio = if before > 0.0 {
                        p.latency_ms.p99 / before
                    } else {
                        f64::INFINITY
                    };
                    out.push(HypothesisResult {
                        name: format!("p99 during{} vs before", fault_name(p.fault)),
                        expected: format!("<= {max} ×"),
                        observed: format!(
                            "{ratio:.3} ({:.2} ms vs {before:.2} ms)",
                            p.latency_ms.p99
                        ),
                        held: p.sent > 0 && ratio <= *max,
                    });
                }
            }
            Hypothesis::DeploysAsExpected => {
                for f in scenario
                    .faults
                    .iter()
                    .filter(|f| matches!(f.kind, FaultKind::Deploy { .. }))
                {
                    let expect = match &f.kind {
                        FaultKind::Deploy { expect, .. } => expect.clone(),
                        _ => String::new(),
                    };
                    let (held, observed) =
                        deploys.iter().find(|d| d.fault == f.index + 1).map_or_else(
                            || (false, "the deploy did not report".to_owned()),
                            DeployResult::judge,
                        );
                    out.push(HypothesisResult {
                        name: format!("deploy{} ends as expected", fault_name(Some(f.index + 1))),
                        expected: match expect.as_str() {
                            "succeeded" => "succeeded; every live node serves it".into(),
                            "shadowed" => "compared in shadow; never served".into(),
                            _ => "rolled back by its gates within the bake window, reason recorded"
                                .into(),
                        },
                        observed,
                        held,
                    });
                }
            }
            Hypothesis::SessionsMatchReference => {
                out.push(HypothesisResult {
                    name: "recurrent sessions equal the fault-free reference".into(),
                    expected: "0 divergent steps".into(),
                    observed: format!(
                        "{} divergent of {} steps in {} sessions",
                        sessions.divergent_steps, sessions.steps_checked, sessions.checked
                    ),
                    held: sessions.divergent_steps == 0 && sessions.steps_checked > 0,
                });
                out.push(HypothesisResult {
                    name: "no session advanced by two owners".into(),
                    expected: "0 double-owner steps".into(),
                    observed: format!(
                        "{} of {} steps with an owner epoch",
                        sessions.double_owner_steps, sessions.epoch_steps
                    ),
                    held: sessions.double_owner_steps == 0,
                });
            }
        }
    }
    if !all_injected {
        out.push(HypothesisResult {
            name: "every fault was injected".into(),
            expected: "all".into(),
            observed: format!(
                "not injected: {:?}",
                a.faults
                    .iter()
                    .filter(|f| !f.injected)
                    .map(|f| f.fault)
                    .collect::<Vec<_>>()
            ),
            held: false,
        });
    }
    out
}

#[cfg(test)]
mod tests;
