//! One deploy on one node, from a verified new version to its outcome: start its shards beside
//! the live version, warm it, shadow, shift traffic as the strategy says, bake, then release
//! it and retire the old version — or, the moment a gate fails or an operator asks, put the old
//! version back and retire the new one. The old version stays loaded until the very end, so a
//! rollback is one routing switch.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    board::{Outcome, RecordHandle},
    gates::Gates,
    plan::{DeployPlan, Strategy},
};
use crate::{
    actors::{ModelHost, NodeHandle, ServedModel, deployer::Signal, version_stats::StatsWindow},
    model::ModelRepository,
};

/// How often the gates are evaluated.
pub const TICK: Duration = Duration::from_millis(250);
/// Ticks in the sliding window the gates judge (2 s).
pub const RECENT_TICKS: usize = 8;
/// Longest wait for a latency baseline before traffic moves.
pub const BASELINE_WAIT: Duration = Duration::from_secs(2);
/// Warm-up requests a new version answers before it sees traffic.
pub const WARMUP_REQUESTS: usize = 32;

/// What a running deploy needs.
#[derive(Debug)]
pub struct DeployJob {
    /// The node deploying.
    pub node: Arc<NodeHandle>,
    /// The model it deploys to.
    pub served: Arc<ServedModel>,
    /// The checked request.
    pub plan: DeployPlan,
    /// The verified new version, loaded but not started.
    pub green: Arc<ModelHost>,
    /// Where the released version is recorded.
    pub repository: ModelRepository,
    /// Its record.
    pub record: RecordHandle,
    /// An operator rollback (or shutdown) arrives here with its reason, and the request to
    /// cut the retire window short.
    pub abort: watch::Receiver<Option<Signal>>,
    /// Whether a rollback can still be taken (closed when the previous version is unloaded).
    pub rollback_open: Arc<Mutex<bool>>,
}

/// The sliding windows the gates judge, for the new version and the old one.
struct Judge {
    green: Arc<ModelHost>,
    blue: Arc<ModelHost>,
    gates: Gates,
    recent: VecDeque<StatsWindow>,
    blue_recent: VecDeque<StatsWindow>,
    total: StatsWindow,
    baseline: StatsWindow,
    baseline_open: bool,
}

fn merged(windows: &VecDeque<StatsWindow>) -> StatsWindow {
    let mut all = StatsWindow::default();
    for w in windows {
        all.merge(w);
    }
    all
}

impl Judge {
    fn new(green: Arc<ModelHost>, blue: Arc<ModelHost>, gates: Gates) -> Self {
        // The new version starts from a clean window (its warm-up does not count); what the
        // old version did since it was last judged (its serving history) starts the baseline.
        green.stats.take();
        let baseline = blue.stats.take();
        Self {
            green,
            blue,
            gates,
            recent: VecDeque::new(),
            blue_recent: VecDeque::new(),
            total: StatsWindow::default(),
            baseline,
            baseline_open: true,
        }
    }

    /// The p99 of `window` when it holds enough answers for the latency gate to judge by.
    fn p99_to_judge(&self, window: &StatsWindow) -> Option<f64> {
        (window.latency_us.len() >= self.gates.min_requests).then(|| window.p99_ms())
    }

    /// Whether the baseline holds enough answers for the latency gate.
    fn has_baseline(&self) -> bool {
        self.p99_to_judge(&self.baseline).is_some()
    }

    /// The old version's p99 to compare with: its recent window while it still takes enough
    /// traffic, else what it did before traffic moved (0: unknown).
    fn baseline_p99(&self) -> f64 {
        self.p99_to_judge(&merged(&self.blue_recent))
            .or_else(|| self.p99_to_judge(&self.baseline))
            .unwrap_or(0.0)
    }

    fn tick(&mut self, compare: bool, record: &RecordHandle) -> Result<(), String> {
        let green = self.green.stats.take();
        let blue = self.blue.stats.take();
        self.total.merge(&green);
        if self.baseline_open {
            self.baseline.merge(&blue);
        }
        for (deque, w) in [(&mut self.recent, green), (&mut self.blue_recent, blue)] {
            deque.push_back(w);
            while deque.len() > RECENT_TICKS {
                deque.pop_front();
            }
        }
        record.green(&self.total);
        let baseline = self.baseline_p99();
        self.gates.check(&merged(&self.recent), baseline, compare)
    }

    /// Traffic starts to move: what the old version did so far is the baseline.
    fn close_baseline(&mut self, record: &RecordHandle) {
        if self.baseline_open {
            self.baseline_open = false;
            let p99 = self.p99_to_judge(&self.baseline).unwrap_or(0.0);
            record.baseline(p99);
            if p99 == 0.0 {
                record.event("too little traffic before the switch for a latency baseline; the p99 gate compares with the old version's concurrent traffic only");
            }
        }
    }
}

impl DeployJob {
    /// Why the deploy must stop, if it must: an operator rollback or an abandoned deploy.
    fn aborted(&self) -> Option<String> {
        match &*self.abort.borrow() {
            Some(Signal::Rollback(reason) | Signal::Abandon(reason)) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Whether the deploy was abandoned (its deployer stopped).
    fn abandoned(&self) -> bool {
        matches!(&*self.abort.borrow(), Some(Signal::Abandon(_)))
    }

    /// Holds for `time`, judging the gates every tick.
    async fn hold(
        &mut self,
        judge: &mut Judge,
        time: Duration,
        compare: bool,
    ) -> Result<(), String> {
        let until = Instant::now() + time;
        while Instant::now() < until {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.abort.changed() => {}
            }
            // (A retire-now signal means nothing before success.)
            if let Some(reason) = self.aborted() {
                return Err(reason);
            }
            judge.tick(compare, &self.record)?;
        }
        Ok(())
    }

    async fn start_green(&self) -> Result<(), String> {
        self.node
            .start_version(&self.green)
            .await
            .map_err(|e| format!("cannot start its shards: {e}"))?;
        let until = Instant::now() + Duration::from_secs(10);
        while self.green.queue.live_workers() < self.green.slots.len() {
            if Instant::now() > until {
                return Err(format!(
                    "only {} of {} shards came up in 10 s",
                    self.green.queue.live_workers(),
                    self.green.slots.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Runs a few requests through the new version's own queue before it sees traffic, and
    /// checks that its answers are sane.
    async fn warm(&self) -> Result<(), String> {
        let spec = self.green.spec().clone();
        let rows = 4;
        for i in 0..WARMUP_REQUESTS {
            let obs: Vec<f32> = (0..rows * spec.obs_dim)
                .map(|j| ((i * 31 + j * 17) % 200) as f32 / 100.0 - 1.0)
                .collect();
            let state = vec![0.0; rows * spec.state_dim];
            let deadline = Instant::now() + Duration::from_secs(5);
            let out = self
                .green
                .infer(format!("warmup-{i}"), rows, obs, state, deadline)
                .await
                .map_err(|e| format!("warm-up request failed: {e}"))?;
            if out.logits.iter().chain(&out.values).any(|v| !v.is_finite()) {
                return Err("warm-up answers held NaN or infinity".into());
            }
        }
        Ok(())
    }

    /// Runs the deploy to its end.
    pub async fn run(mut self) {
        let blue = self.served.live();
        let green_version = self.green.version.clone();
        if let Err(reason) = self.start_green().await {
            return self.undo(&blue, Outcome::Aborted, reason).await;
        }
        if let Err(reason) = self.served.add(self.green.clone()) {
            return self.undo(&blue, Outcome::Aborted, reason.to_string()).await;
        }
        self.record.phase("warming");
        if let Err(reason) = self.warm().await {
            return self.undo(&blue, Outcome::RolledBack, reason).await;
        }
        let mut judge = Judge::new(self.green.clone(), blue.clone(), self.plan.gates);
        match self.shift(&mut judge, &blue, &green_version).await {
            Ok(true) => {}
            Ok(false) => {
                self.record.green(&judge.total);
                self.record
                    .finish(Outcome::Shadowed, "shadow comparison held every gate");
                self.retire(&self.green.clone()).await;
                self.record.phase("done");
                return;
            }
            Err(reason) => {
                self.record.green(&judge.total);
                return self.undo(&blue, Outcome::RolledBack, reason).await;
            }
        }
        let released = green_version
            .parse::<u64>()
            .map_err(|e| e.to_string())
            .and_then(|v| {
                self.repository
                    .set_released(&self.plan.model, v)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = released {
            self.record
                .event(format!("could not record the released version: {e}"));
        }
        self.record.finish(
            Outcome::Succeeded,
            format!("{green_version} serves all traffic and held every gate"),
        );
        // The old version stays warm for an instant rollback, and for sessions pinned to it.
        self.record.phase("retiring");
        self.wait_to_retire(&blue).await;
        if *self.abort.borrow() == Some(Signal::RetireNow) {
            self.record
                .event("a newer deploy is waiting: retiring the previous version now");
        }
        if self.abandoned() {
            // The node is going away: the deploy stands (the version stays released); the
            // old version goes with the process.
            self.record
                .event("the deployer stopped during the retire window; the release stands");
            self.record.phase("done");
            return;
        }
        {
            // The point of no return: from here the previous version is unloaded, so a
            // rollback is refused (deploy the old version again instead). Any rollback sent
            // before the gate closed is taken now.
            let mut open = self
                .rollback_open
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.aborted().is_none() {
                *open = false;
            }
        }
        if let Some(reason) = self.aborted() {
            return self.undo(&blue, Outcome::RolledBack, reason).await;
        }
        self.retire(&blue).await;
        self.record.phase("done");
    }

    /// The retire window: the old version stays loaded for an instant rollback and for the
    /// sessions still pinned to it, at least a tenth of `retire` and at most `retire`, or until
    /// an operator rolls back or a newer deploy asks to retire it now. Sessions still pinned at
    /// the end move to the live version on their next step (re-warmed by replay).
    async fn wait_to_retire(&mut self, blue: &ModelHost) {
        let started = tokio::time::Instant::now();
        let until = started + self.plan.retire;
        let floor = started + self.plan.retire / 10;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                changed = self.abort.changed() => if changed.is_err() { break },
            }
            if self.abort.borrow().is_some() {
                break;
            }
            let pinned = self.node.sessions.pinned_to(&blue.name, &blue.version);
            if pinned == 0 && tokio::time::Instant::now() >= floor {
                self.record
                    .event(format!("no session is pinned to {} any more", blue.version));
                break;
            }
        }
        let pinned = self.node.sessions.pinned_to(&blue.name, &blue.version);
        if pinned > 0 {
            self.record.event(format!(
                "{pinned} session(s) still on {}: they move to the live version on their next step",
                blue.version
            ));
        }
    }

    /// Moves traffic as the strategy says; true when the new version ended up live.
    async fn shift(
        &mut self,
        judge: &mut Judge,
        blue: &Arc<ModelHost>,
        green: &str,
    ) -> Result<bool, String> {
        let plan = self.plan.clone();
        if !plan.shadow.is_zero() || plan.strategy == Strategy::Shadow {
            self.record.phase("shadow");
            self.served
                .set_shadow(Some((green, plan.shadow_permille)))
                .map_err(|e| e.to_string())?;
            let time = if plan.strategy == Strategy::Shadow {
                plan.bake
            } else {
                plan.shadow
            };
            let held = self.hold(judge, time, true).await;
            self.served.set_shadow(None).map_err(|e| e.to_string())?;
            held?;
            let total = &judge.total;
            self.record.event(format!(
                "shadow: {} comparisons, {:.2}% same action, divergence {:.4}, p99 {:.2} ms vs {:.2} ms",
                total.compared,
                total.agreement() * 100.0,
                total.mean_divergence(),
                total.p99_ms(),
                judge.baseline_p99()
            ));
            if plan.strategy == Strategy::Shadow {
                return Ok(false);
            }
        }
        // Without a baseline the latency gate cannot judge: watch the old version a moment.
        let until = Instant::now() + BASELINE_WAIT;
        while !judge.has_baseline() && Instant::now() < until {
            self.hold(judge, TICK, false).await?;
        }
        judge.close_baseline(&self.record);
        let steps: Vec<u32> = match plan.strategy {
            Strategy::Canary => plan.steps_permille.clone(),
            Strategy::Rolling => {
                let n = self.green.slots.len().max(1) as u32;
                (1..n).map(|k| k * 1000 / n).collect()
            }
            Strategy::BlueGreen | Strategy::Shadow => Vec::new(),
        };
        if !steps.is_empty() {
            self.record.phase(plan.strategy.as_str());
        }
        for permille in steps {
            self.served
                .set_canary(Some((green, permille)))
                .map_err(|e| e.to_string())?;
            self.record.event(format!(
                "{} takes {:.1}% of new traffic",
                green,
                f64::from(permille) / 10.0
            ));
            self.hold(judge, plan.step, false).await?;
        }
        self.record.phase("switching");
        self.served.set_live(green).map_err(|e| e.to_string())?;
        self.record
            .event(format!("{green} is live; {} stays warm", blue.version));
        if plan.migrate_sessions {
            self.served.set_migrate(true).map_err(|e| e.to_string())?;
            self.record.event(format!(
                "sessions move to {green} on their next step, re-warmed by replaying their recent observations"
            ));
        }
        self.record.phase("baking");
        self.hold(judge, plan.bake, false).await?;
        Ok(true)
    }

    /// Puts `blue` back in charge and retires the new version.
    async fn undo(&self, blue: &Arc<ModelHost>, outcome: Outcome, reason: String) {
        let outcome = if self.abandoned() {
            Outcome::Aborted
        } else {
            outcome
        };
        if let Err(e) = self.served.set_live(&blue.version) {
            self.record
                .event(format!("could not make {} live again: {e}", blue.version));
        }
        let _ = self.served.set_canary(None);
        let _ = self.served.set_shadow(None);
        if outcome == Outcome::RolledBack
            && self.record.outcome() == Outcome::Succeeded.as_str()
            && let Ok(v) = blue.version.parse::<u64>()
            && let Err(e) = self.repository.set_released(&self.plan.model, v)
        {
            self.record
                .event(format!("could not record the released version: {e}"));
        }
        self.record.finish(outcome, reason);
        self.retire(&self.green.clone()).await;
        self.record.phase("done");
    }

    /// Removes `host` from routing, lets the requests that picked it finish, then stops it.
    async fn retire(&self, host: &Arc<ModelHost>) {
        if self.served.live().version == host.version {
            return;
        }
        let _ = self.served.remove(&host.version);
        let grace = Duration::from_millis(self.node.config.server.default_deadline_ms)
            + Duration::from_secs(1);
        tokio::time::sleep(grace).await;
        match self.node.stop_version(host).await {
            Ok(()) => self.record.event(format!("{} unloaded", host.prefix)),
            Err(e) => self
                .record
                .event(format!("could not stop {}: {e}", host.prefix)),
        }
    }
}
