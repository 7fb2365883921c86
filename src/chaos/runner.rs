//! `fudo chaos run`: one experiment from start to verdict. Parse and check the scenario (before
//! anything starts), launch the cluster, put the fault proxies in the path, apply the load
//! through the client library, inject and heal the faults on schedule, watch the abort
//! conditions, then analyse the history and write `report.json`, `report.md`,
//! `timeline.svg` and `history.jsonl` into the output directory.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio::sync::watch;

use super::{
    analysis,
    deploy_faults::DeployResult,
    failover,
    faults::Injector,
    history::{self, History},
    load::{self, ModelDims},
    model_fixtures,
    proxy::FaultProxy,
    reference,
    report::{FaultEvent, Report, Verdict},
    scenario::{ClientsMode, ModelsMode, Scenario, ScenarioError},
    timeline,
};
use crate::{
    client::{ClientConfig, FudoClient, HedgeConfig},
    cluster::{Cluster, ClusterError, ClusterSpec},
    model::{LoadedModel, bundled_models},
};

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file is broken (nothing was started).
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The cluster could not be started.
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// Reading the scenario or writing the report failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The models for the reference could not be loaded, or the scenario names one that is
    /// not bundled.
    #[error("models: {0}")]
    Model(String),
    /// The client or a proxy could not be set up.
    #[error("setup: {0}")]
    Setup(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Run the short form.
    pub short: bool,
    /// Output directory (created).
    pub out: PathBuf,
    /// The `fudo` binary for the nodes.
    pub fudo_exe: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads and checks a scenario file without running it.
///
/// # Errors
///
/// [`RunError::Io`] or [`RunError::Scenario`] with the line and the reason.
pub fn load_scenario(path: &Path, short: bool) -> Result<Scenario, RunError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    Ok(Scenario::parse(&path.display().to_string(), &text, short)?)
}

fn model(models: &[LoadedModel], name: &str) -> Result<LoadedModel, RunError> {
    models
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| RunError::Model(format!("model {name:?} is not bundled")))
}

/// Runs the scenario and writes the report. The verdict is in the returned report.
///
/// # Errors
///
/// A [`RunError`] when no report could be produced at all.
pub async fn run(opts: &RunOptions) -> Result<Report, RunError> {
    let scenario = load_scenario(&opts.scenario, opts.short)?;
    if scenario.cluster.network == crate::cluster::NetworkMode::Netns
        && !nix::unistd::geteuid().is_root()
    {
        return Err(RunError::Setup(format!(
            "{} uses network = \"netns\" (network namespaces and nftables), which needs root; \
             run it as root",
            opts.scenario.display()
        )));
    }
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let models =
        bundled_models(&candle_core::Device::Cpu).map_err(|e| RunError::Model(e.to_string()))?;
    let stateless = model(&models, &scenario.load.stateless_model)?;
    let recurrent = model(&models, &scenario.load.recurrent_model)?;
    if !recurrent.spec().is_recurrent() || stateless.spec().is_recurrent() {
        return Err(RunError::Model(
            "load.stateless_model must be stateless and load.recurrent_model recurrent".into(),
        ));
    }
    let dims = ModelDims {
        stateless_obs: stateless.spec().obs_dim,
        recurrent_obs: recurrent.spec().obs_dim,
    };
    let mut spec = ClusterSpec::local(opts.out.join("cluster")).map_err(io(&opts.out))?;
    spec.fudo_exe.clone_from(&opts.fudo_exe);
    spec.topology = scenario.cluster.topology.clone();
    spec.redis = scenario.cluster.redis;
    spec.network = scenario.cluster.network;
    spec.node_settings = scenario.cluster.settings.clone();
    if scenario.cluster.models == ModelsMode::DeployFixtures {
        let root = std::path::absolute(opts.out.join("models")).map_err(io(&opts.out))?;
        // The run's own output: a previous run into the same folder leaves its fixtures.
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(io(&root))?;
        }
        model_fixtures::write_deploy_fixtures(&root)
            .map_err(|e| RunError::Model(format!("deploy fixtures: {e}")))?;
        spec.node_settings
            .push(format!("models.repository={}", root.display()));
    }
    eprintln!(
        "chaos: {} ({} form): starting {} nodes, redis {:?}, network {:?}",
        scenario.name,
        if scenario.short { "short" } else { "long" },
        spec.topology.nodes().len(),
        spec.redis,
        spec.network
    );
    let cluster = Cluster::start(spec).await?;
    let result = drive(&scenario, &cluster, dims).await;
    let events = cluster.events().clone();
    let described = cluster.describe();
    eprintln!("chaos: stopping the cluster");
    cluster.stop().await;
    let (client_stats, ops, mut fault_log, injected, aborted, t0, started_at, seen) = result?;
    for e in events.snapshot() {
        fault_log.push(FaultEvent {
            t_s: signed_secs(e.at, t0),
            wall: e.wall,
            fault: None,
            action: format!("{:?}", e.kind).to_lowercase(),
            target: e.who,
            detail: e.detail,
        });
    }
    fault_log.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let mut analysis = analysis::analyse(&scenario, &ops, &injected);
    failover::annotate(
        &scenario.faults,
        &mut analysis.faults,
        &seen.lost,
        &seen.members,
        &ops,
    );
    let members_path = opts.out.join("members.jsonl");
    history::write_jsonl(&members_path, &seen.members).map_err(io(&members_path))?;
    let sessions = reference::check_sessions(
        &ops,
        recurrent.policy.as_ref(),
        scenario.load.seed,
        replay_window(&scenario.cluster.settings),
    )
    .map_err(|e| RunError::Model(e.to_string()))?;
    let hypotheses = analysis::check(&scenario, &analysis, &sessions, &seen.deploys);
    let verdict = if aborted.is_none() && hypotheses.iter().all(|h| h.held) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let report = Report {
        scenario: scenario.name.clone(),
        short: scenario.short,
        verdict,
        aborted,
        started_at,
        duration_s: scenario.load.duration.as_secs_f64(),
        load: serde_json::json!({
            "rate": scenario.load.rate,
            "stateless_rate": scenario.load.stateless_rate(),
            "sessions": scenario.load.sessions,
            "session_rate": scenario.load.session_rate,
            "deadline_ms": scenario.load.deadline.as_millis() as u64,
            "attempt_timeout_ms": scenario.load.attempt_timeout.as_millis() as u64,
            "hedge": scenario.load.hedge,
            "warmup_s": scenario.load.warmup.as_secs_f64(),
        }),
        cluster: described,
        client: client_stats,
        hypotheses,
        requests: analysis.requests,
        throughput_ratio_during_fault: analysis
            .faults
            .iter()
            .map(|f| f.throughput_ratio)
            .reduce(f64::min)
            .unwrap_or(1.0),
        recovery_s: analysis.faults.iter().map(|f| f.recovery_s).collect(),
        latency_ms: analysis.latency,
        faults: analysis.faults,
        fault_log,
        sessions,
        timeline: analysis.timeline,
        history: "history.jsonl".into(),
        deploys: seen.deploys,
    };
    write_outputs(&opts.out, &scenario, &report, &ops)?;
    Ok(report)
}

fn write_outputs(
    out: &Path,
    scenario: &Scenario,
    report: &Report,
    ops: &[history::Op],
) -> Result<(), RunError> {
    let json = out.join("report.json");
    let body = serde_json::to_string_pretty(report).map_err(|e| RunError::Setup(e.to_string()))?;
    std::fs::write(&json, body + "\n").map_err(io(&json))?;
    let md = out.join("report.md");
    std::fs::write(&md, report.to_markdown(&scenario.why)).map_err(io(&md))?;
    let svg = out.join("timeline.svg");
    let title = format!(
        "{} ({}) — {}",
        scenario.name,
        if scenario.short { "short" } else { "long" },
        if report.verdict == Verdict::Pass {
            "pass"
        } else {
            "fail"
        }
    );
    std::fs::write(
        &svg,
        timeline::render(&title, &report.timeline, &report.faults, report.duration_s),
    )
    .map_err(io(&svg))?;
    let hist = out.join("history.jsonl");
    history::write_jsonl(&hist, ops).map_err(io(&hist))?;
    Ok(())
}

/// The nodes' `sessions.replay_window` (a scenario may set it in `cluster.settings`).
fn replay_window(settings: &[String]) -> usize {
    settings
        .iter()
        .filter_map(|s| s.strip_prefix("sessions.replay_window="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(crate::sessions::DEFAULT_REPLAY_WINDOW)
}

fn signed_secs(at: Instant, t0: Instant) -> f64 {
    history::offset_us(at, t0) as f64 / 1e6
}

type Driven = (
    serde_json::Value,
    Vec<history::Op>,
    Vec<FaultEvent>,
    Vec<bool>,
    Option<String>,
    Instant,
    chrono::DateTime<Utc>,
    Failover,
);

/// What the runner saw of the cluster's own failure handling.
struct Failover {
    /// Per fault (sorted order), the nodes it took away.
    lost: Vec<Vec<String>>,
    /// Membership changes every node reported.
    members: Vec<failover::MemberSample>,
    /// How the deploy faults ended.
    deploys: Vec<DeployResult>,
}

/// Proxies (if asked for), client, load, fault schedule and abort watch.
async fn drive(
    scenario: &Scenario,
    cluster: &Cluster,
    dims: ModelDims,
) -> Result<Driven, RunError> {
    let mut endpoints = cluster.endpoints();
    let mut proxies = Vec::new();
    let mut controls = HashMap::new();
    if scenario.cluster.proxy {
        for (node, endpoint) in cluster.nodes().iter().zip(endpoints.iter_mut()) {
            let proxy = FaultProxy::start(
                "127.0.0.1:0"
                    .parse()
                    .map_err(|_| RunError::Setup("address".into()))?,
                node.grpc,
            )
            .await
            .map_err(|e| RunError::Setup(format!("proxy for {}: {e}", node.place.name)))?;
            endpoint.url = format!("http://{}", proxy.local_addr());
            controls.insert(node.place.name.clone(), proxy.control());
            proxies.push(proxy);
        }
    }
    let load = &scenario.load;
    let mut config = ClientConfig::new(endpoints);
    config.deadline = load.deadline;
    config.attempt_timeout = Some(load.attempt_timeout);
    config.max_attempts = 4;
    config.eject_after = 2;
    config.probe_interval = Duration::from_millis(100);
    config.keepalive = Some(Duration::from_millis(500));
    if load.hedge {
        config.hedge = Some(HedgeConfig {
            percentile: 0.99,
            min_delay: Duration::from_millis(10),
            budget_ratio: 0.1,
        });
    }
    // One gateway that knows every node, or one per region that knows only its own.
    let groups: Vec<Vec<_>> = match load.clients {
        ClientsMode::Global => vec![config.endpoints.clone()],
        ClientsMode::PerRegion => {
            let mut by_region: std::collections::BTreeMap<String, Vec<_>> = Default::default();
            for e in &config.endpoints {
                by_region
                    .entry(e.region.clone())
                    .or_default()
                    .push(e.clone());
            }
            by_region.into_values().collect()
        }
    };
    let mut clients = Vec::new();
    for endpoints in groups {
        let mut c = config.clone();
        c.endpoints = endpoints;
        clients.push(
            FudoClient::connect(c)
                .await
                .map_err(|e| RunError::Setup(e.to_string()))?,
        );
    }
    let injector = Injector::new(cluster, controls);
    let history = History::default();
    let (abort_tx, abort_rx) = watch::channel(false);
    let start = Instant::now();
    let t0 = start + load.warmup;
    let started_at = Utc::now() + chrono::Duration::from_std(load.warmup).unwrap_or_default();
    let (watch_stop, watch_rx) = watch::channel(false);
    let watcher = tokio::spawn(failover::watch_members(
        cluster
            .nodes()
            .iter()
            .map(|n| (n.place.name.clone(), format!("http://{}", n.grpc)))
            .collect(),
        t0,
        Duration::from_millis(25),
        watch_rx,
    ));
    let load_task = tokio::spawn(load::run(
        clients.clone(),
        load.clone(),
        dims,
        start,
        history.clone(),
        abort_rx.clone(),
    ));
    // The schedule: (time, fault position, inject?)
    let mut schedule: Vec<(Duration, usize, bool)> = Vec::new();
    for (i, f) in scenario.faults.iter().enumerate() {
        schedule.push((f.at, i, true));
        if let Some(h) = f.heal_at {
            schedule.push((h, i, false));
        }
    }
    schedule.sort_by_key(|(t, i, inject)| (*t, !*inject, *i));
    let mut fault_log = Vec::new();
    let mut injected = vec![false; scenario.faults.len()];
    let mut lost: Vec<Vec<String>> = vec![Vec::new(); scenario.faults.len()];
    let mut monitor = Monitor::new(scenario, history.clone());
    let mut next_tick = t0 + Duration::from_secs(1);
    let mut steps = schedule.into_iter().peekable();
    let mut aborted = None;
    let end = t0 + load.duration;
    loop {
        let next_fault = steps.peek().map(|(t, _, _)| t0 + *t);
        let wake = next_fault.map_or(next_tick, |f| f.min(next_tick)).min(end);
        tokio::time::sleep_until(wake.into()).await;
        let now = Instant::now();
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            if let Some(reason) = monitor.tick(now.saturating_duration_since(t0)) {
                eprintln!("chaos: ABORT: {reason}");
                aborted = Some(reason);
                let _ = abort_tx.send(true);
                break;
            }
        }
        while let Some((t, i, inject)) = steps.peek().copied() {
            if Instant::now() < t0 + t {
                break;
            }
            steps.next();
            let f = &scenario.faults[i];
            let at = Instant::now();
            let result = if inject {
                injector.inject(f).await
            } else {
                injector.heal(f).await
            };
            if inject {
                injected[i] = result.is_ok();
                lost[i] = injector.targets(f);
            }
            let (action, detail) = match result {
                Ok(d) => (if inject { "inject" } else { "heal" }, d),
                Err(e) => ("error", e.to_string()),
            };
            eprintln!(
                "chaos: t={:.2}s fault {} {} {}: {action}: {detail}",
                signed_secs(at, t0),
                f.index + 1,
                f.kind.name(),
                f.kind.target()
            );
            fault_log.push(FaultEvent {
                t_s: signed_secs(at, t0),
                wall: Utc::now(),
                fault: Some(f.index + 1),
                action: action.into(),
                target: f.kind.target(),
                detail,
            });
        }
        if Instant::now() >= end {
            break;
        }
    }
    // Heal whatever is still active (an abort, or a heal that failed), then let the load end.
    for (i, f) in scenario.faults.iter().enumerate() {
        let healed = fault_log
            .iter()
            .any(|e| e.fault == Some(f.index + 1) && e.action == "heal");
        if injected[i] && f.heal_at.is_some() && !healed {
            let detail = injector.heal(f).await.unwrap_or_else(|e| e.to_string());
            fault_log.push(FaultEvent {
                t_s: signed_secs(Instant::now(), t0),
                wall: Utc::now(),
                fault: Some(f.index + 1),
                action: "heal".into(),
                target: f.kind.target(),
                detail,
            });
        }
    }
    for (index, result) in injector.finish().await {
        let f = scenario.faults.iter().position(|f| f.index == index);
        let (action, detail) = match result {
            Ok(d) => ("inject-done", d),
            Err(e) => {
                if let Some(i) = f {
                    injected[i] = false;
                }
                ("error", e.to_string())
            }
        };
        fault_log.push(FaultEvent {
            t_s: signed_secs(Instant::now(), t0),
            wall: Utc::now(),
            fault: Some(index + 1),
            action: action.into(),
            target: f
                .map(|i| scenario.faults[i].kind.target())
                .unwrap_or_default(),
            detail,
        });
    }
    if load_task.await.is_err() {
        return Err(RunError::Setup("the load generator panicked".into()));
    }
    drop(proxies);
    let _ = watch_stop.send(true);
    let members = watcher.await.unwrap_or_default();
    let mut stats = crate::client::ClientStats::default();
    for c in &clients {
        let s = c.stats();
        stats.calls += s.calls;
        stats.attempts += s.attempts;
        stats.hedges += s.hedges;
        stats.replays += s.replays;
    }
    eprintln!(
        "chaos: load done: {} calls, {} attempts, {} hedges, {} session steps replayed",
        stats.calls, stats.attempts, stats.hedges, stats.replays
    );
    let client_stats = serde_json::json!({
        "calls": stats.calls,
        "attempts": stats.attempts,
        "hedges": stats.hedges,
        "session_replays": stats.replays,
    });
    Ok((
        client_stats,
        history.snapshot(),
        fault_log,
        injected,
        aborted,
        t0,
        started_at,
        Failover {
            lost,
            members,
            deploys: injector.deploy_results(),
        },
    ))
}

/// Prints a progress line every second and checks the abort condition.
struct Monitor {
    history: History,
    seen: usize,
    error_ratio: f64,
    seconds: u32,
    bad_seconds: u32,
    duration: Duration,
    name: Arc<str>,
}

impl Monitor {
    fn new(scenario: &Scenario, history: History) -> Self {
        Self {
            history,
            seen: 0,
            error_ratio: scenario.abort.error_ratio,
            seconds: scenario.abort.seconds,
            bad_seconds: 0,
            duration: scenario.load.duration,
            name: scenario.name.as_str().into(),
        }
    }

    /// One second passed; `Some(reason)` to abort.
    fn tick(&mut self, elapsed: Duration) -> Option<String> {
        let (new, next) = self.history.since(self.seen);
        self.seen = next;
        let failed = new.iter().filter(|o| !o.ok).count();
        let lat = analysis::latency(new.iter().map(history::Op::latency_ms).collect());
        eprintln!(
            "chaos: {} t={:>3.0}/{:.0}s completed={} failed={} p99={:.2}ms",
            self.name,
            elapsed.as_secs_f64(),
            self.duration.as_secs_f64(),
            new.len(),
            failed,
            lat.p99
        );
        let ratio = if new.is_empty() {
            1.0
        } else {
            failed as f64 / new.len() as f64
        };
        if ratio > self.error_ratio {
            self.bad_seconds += 1;
        } else {
            self.bad_seconds = 0;
        }
        (self.bad_seconds >= self.seconds).then(|| {
            format!(
                "more than {:.0}% of requests failed for {} consecutive seconds",
                self.error_ratio * 100.0,
                self.seconds
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::{Op, OpKind};

    fn op(id: u64, ok: bool) -> Op {
        Op {
            id,
            process: "stateless".into(),
            kind: OpKind::Infer,
            seq: None,
            start_us: 0,
            end_us: 1000,
            ok,
            status: if ok {
                "OK".into()
            } else {
                "UNAVAILABLE".into()
            },
            error: None,
            served_by: None,
            action: None,
            replayed: false,
            owner_epoch: None,
        }
    }

    #[test]
    fn the_monitor_aborts_after_consecutive_bad_seconds_only() {
        let text = "name = \"m\"\nsummary = \"s\"\nwhy = \"w\"\n[load]\nrate = 10\nduration_s = 10\n[[hypothesis]]\nkind = \"max-failed\"\nmax = 0\n[abort]\nerror_ratio = 0.5\nseconds = 2\n";
        let scenario = Scenario::parse("m.toml", text, false).expect("parses");
        let history = History::default();
        let mut m = Monitor::new(&scenario, history.clone());
        let second = |ok: usize, failed: usize| {
            for i in 0..ok {
                history.push(op(i as u64, true));
            }
            for i in 0..failed {
                history.push(op(i as u64, false));
            }
        };
        second(10, 0);
        assert!(m.tick(Duration::from_secs(1)).is_none());
        second(2, 8);
        assert!(
            m.tick(Duration::from_secs(2)).is_none(),
            "one bad second is not enough"
        );
        second(9, 1);
        assert!(
            m.tick(Duration::from_secs(3)).is_none(),
            "a good second resets the count"
        );
        second(0, 10);
        assert!(m.tick(Duration::from_secs(4)).is_none());
        // Nothing completed at all is as bad as everything failing.
        let reason = m.tick(Duration::from_secs(5)).expect("aborts");
        assert!(reason.contains("2 consecutive seconds"), "{reason}");
    }
}
