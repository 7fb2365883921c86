//! The checks of a scenario's faults and hypotheses against its topology, load and each
//! other: every refusal names the entry's line and what is wrong with it.

use std::ops::Range;

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn check_fault(
    c: &Checker<'_>,
    span: Range<usize>,
    plan: &ClusterPlan,
    duration: Duration,
    time_scale: f64,
    index: usize,
    line: usize,
    f: FaultEntry,
) -> Result<Fault, ScenarioError> {
    let kind = f.kind.scaled(time_scale);
    let name = kind.name();
    if !(f.at_s.is_finite() && f.at_s >= 0.0) {
        return Err(c.err(span, format!("{name}: at_s must be ≥ 0, got {}", f.at_s)));
    }
    let at = secs(f.at_s * time_scale);
    let heal_at = match (kind.lasts(), f.for_s) {
        (true, None) => {
            return Err(c.err(span, format!("{name} lasts: it needs for_s")));
        }
        (false, Some(_)) => {
            return Err(c.err(
                span,
                format!("{name} happens at one instant: use window_s, not for_s"),
            ));
        }
        (true, Some(d)) if !(d.is_finite() && d > 0.0) => {
            return Err(c.err(span, format!("{name}: for_s must be > 0, got {d}")));
        }
        (true, Some(d)) => Some(at + secs(d * time_scale)),
        (false, None) => None,
    };
    let window = f.window_s.unwrap_or(5.0);
    if !(window.is_finite() && window > 0.0) {
        return Err(c.err(span, format!("{name}: window_s must be > 0")));
    }
    let window_end = heal_at.unwrap_or(at + secs(window * time_scale));
    if window_end > duration {
        return Err(c.err(
            span,
            format!(
                "{name} at {:.1} s ends its window at {:.1} s, after the run ends at {:.1} s",
                at.as_secs_f64(),
                window_end.as_secs_f64(),
                duration.as_secs_f64()
            ),
        ));
    }
    if at.is_zero() {
        return Err(c.err(
            span,
            format!("{name}: at_s must be > 0 so that a 'before' phase exists"),
        ));
    }
    let nodes: Vec<String> = plan.topology.nodes().into_iter().map(|n| n.name).collect();
    let zones: Vec<String> = plan
        .topology
        .regions
        .iter()
        .flat_map(|r| std::iter::once(r.name.clone()).chain(r.azs.iter().cloned()))
        .collect();
    let node_ok = |n: &String| -> Result<(), ScenarioError> {
        if nodes.contains(n) {
            Ok(())
        } else {
            Err(c.err(
                span.clone(),
                format!("{name}: unknown node {n:?}; nodes are {nodes:?}"),
            ))
        }
    };
    let zone_ok = |z: &String| -> Result<(), ScenarioError> {
        if zones.contains(z) {
            Ok(())
        } else {
            Err(c.err(
                span.clone(),
                format!("{name}: unknown AZ or region {z:?}; known: {zones:?}"),
            ))
        }
    };
    match &kind {
        FaultKind::ActorPanic {
            node, actor, count, ..
        } => {
            node_ok(node)?;
            if actor.is_empty() || *count == 0 {
                return Err(c.err(span, "actor-panic needs an actor name and count ≥ 1"));
            }
        }
        FaultKind::ShardSlow {
            node,
            actor,
            delay_ms,
        } => {
            node_ok(node)?;
            if actor.is_empty() || *delay_ms == 0 {
                return Err(c.err(span, "shard-slow needs an actor name and delay_ms ≥ 1"));
            }
        }
        FaultKind::NodeKill { down_s, .. } if !(down_s.is_finite() && *down_s >= 0.0) => {
            return Err(c.err(span, "node-kill.down_s must be ≥ 0"));
        }
        FaultKind::NodeKill { node, .. } if node == BUSIEST_OWNER => {}
        FaultKind::RegionKill { region } => {
            if !plan.topology.regions.iter().any(|r| &r.name == region) {
                return Err(c.err(span, format!("region-kill: unknown region {region:?}")));
            }
        }
        FaultKind::NodeKill { node, .. }
        | FaultKind::NodeFreeze { node }
        | FaultKind::Stall { node }
        | FaultKind::ConnectionCut { node }
        | FaultKind::Latency { node, .. } => node_ok(node)?,
        FaultKind::RedisPrimaryKill => {
            if plan.redis != RedisMode::Sentinel {
                return Err(c.err(
                    span,
                    "redis-primary-kill needs cluster.redis = \"sentinel\"",
                ));
            }
        }
        FaultKind::Partition { isolate, between } => match (isolate, between) {
            (Some(z), None) => zone_ok(z)?,
            (None, Some([a, b])) => {
                if a.is_empty() || b.is_empty() {
                    return Err(c.err(span, "partition.between needs two non-empty groups"));
                }
                for z in a.iter().chain(b) {
                    zone_ok(z)?;
                }
            }
            _ => {
                return Err(c.err(
                    span,
                    "partition needs exactly one of `isolate` or `between`",
                ));
            }
        },
        FaultKind::Loss { zone, percent } => {
            zone_ok(zone)?;
            if !(1..=100).contains(percent) {
                return Err(c.err(span, "loss.percent must be 1-100"));
            }
        }
        FaultKind::Deploy {
            strategy, expect, ..
        } => {
            if let Some(request) = kind.deploy_request() {
                crate::deploy::plan::DeployPlan::from_request(&request)
                    .map_err(|e| c.err(span.clone(), format!("deploy: {e}")))?;
            }
            let shadow = strategy == "shadow";
            let allowed: &[&str] = if shadow {
                &["shadowed", "rolled-back"]
            } else {
                &["succeeded", "rolled-back"]
            };
            if !allowed.contains(&expect.as_str()) {
                return Err(c.err(
                    span,
                    format!("deploy.expect must be one of {allowed:?} for strategy {strategy}, got {expect:?}"),
                ));
            }
        }
        FaultKind::PoisonVersion { nan_after: 0, .. } => {
            return Err(c.err(span, "poison-version.nan_after must be ≥ 1"));
        }
        FaultKind::SlowVersion { delay_ms: 0, .. } => {
            return Err(c.err(span, "slow-version.delay_ms must be ≥ 1"));
        }
        FaultKind::PoisonVersion { .. } | FaultKind::SlowVersion { .. } => {}
    }
    let versioned = matches!(
        kind,
        FaultKind::Deploy { .. } | FaultKind::PoisonVersion { .. } | FaultKind::SlowVersion { .. }
    );
    if versioned && plan.models != ModelsMode::DeployFixtures {
        return Err(c.err(
            span,
            format!("{name} needs cluster.models = \"deploy-fixtures\" (a model repository with versions)"),
        ));
    }
    if kind.needs_netns() && plan.network != NetworkMode::Netns {
        return Err(c.err(span, format!("{name} needs cluster.network = \"netns\"")));
    }
    if kind.needs_proxy() && !plan.proxy {
        return Err(c.err(span, format!("{name} needs cluster.proxy = true")));
    }
    Ok(Fault {
        index,
        kind,
        at,
        heal_at,
        window_end,
        line,
    })
}

pub(super) fn check_hypothesis(
    c: &Checker<'_>,
    span: Range<usize>,
    h: &Hypothesis,
    faults: &[Fault],
    load: &LoadSpec,
) -> Result<(), ScenarioError> {
    let ratio = |v: f64, what: &str| {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(c.err(span.clone(), format!("{what} must be in [0, 1], got {v}")))
        }
    };
    let needs_fault = |what: &str| {
        if faults.is_empty() {
            Err(c.err(span.clone(), format!("{what} needs at least one [[fault]]")))
        } else {
            Ok(())
        }
    };
    match h {
        Hypothesis::SuccessRatio { min, phase } => {
            ratio(*min, "success-ratio.min")?;
            if matches!(phase, PhaseSel::During | PhaseSel::After) {
                needs_fault("a during/after phase")?;
            }
        }
        Hypothesis::P99Ms { max, phase } => {
            if !(max.is_finite() && *max > 0.0) {
                return Err(c.err(span, "p99-ms.max must be > 0"));
            }
            if matches!(phase, PhaseSel::During | PhaseSel::After) {
                needs_fault("a during/after phase")?;
            }
        }
        Hypothesis::ThroughputRatio { min } => {
            ratio(*min, "throughput-ratio.min")?;
            needs_fault("throughput-ratio")?;
        }
        Hypothesis::RecoveryS { max, slow_ms } => {
            if !(max.is_finite() && *max >= 0.0 && slow_ms.is_finite() && *slow_ms > 0.0) {
                return Err(c.err(span, "recovery-s needs max ≥ 0 and slow_ms > 0"));
            }
            needs_fault("recovery-s")?;
        }
        Hypothesis::SessionsMatchReference => {
            if load.sessions == 0 {
                return Err(c.err(span, "sessions-match-reference needs load.sessions ≥ 1"));
            }
        }
        Hypothesis::DetectionS { max } | Hypothesis::SessionsMovedS { max } => {
            if !(max.is_finite() && *max > 0.0) {
                return Err(c.err(span, "detection-s and sessions-moved-s need max > 0"));
            }
            if !faults.iter().any(|f| f.kind.loses_nodes()) {
                return Err(c.err(
                    span,
                    "detection-s and sessions-moved-s need a fault that loses nodes (node-kill, node-freeze, region-kill, partition.isolate)",
                ));
            }
        }
        Hypothesis::P99Ratio { max, short_max } => {
            if !(max.is_finite() && *max >= 1.0)
                || short_max.is_some_and(|m| !(m.is_finite() && m >= 1.0))
            {
                return Err(c.err(span, "p99-ratio.max and short_max must be ≥ 1"));
            }
            needs_fault("p99-ratio")?;
        }
        Hypothesis::DeploysAsExpected => {
            if !faults
                .iter()
                .any(|f| matches!(f.kind, FaultKind::Deploy { .. }))
            {
                return Err(c.err(span, "deploys-as-expected needs a deploy fault"));
            }
        }
        Hypothesis::MaxFailed { .. } => {}
    }
    Ok(())
}
