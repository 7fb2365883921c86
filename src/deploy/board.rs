//! The deploy history of a node: one record per deploy (what, how, each phase and event with
//! its time, the new version's gate statistics, the outcome and its reason). It lives outside
//! the deployer actor, so a deployer restart loses nothing, and it is what `fudo ctl deploys`
//! and the chaos reports read.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use crate::{
    actors::version_stats::StatsWindow,
    api::proto::fudo::v1::{DeployEvent, DeployRecord, DeployStats},
};

/// Records kept per node (older ones are dropped).
pub const KEPT_RECORDS: usize = 100;

/// How a deploy ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still in progress.
    Running,
    /// The new version serves all traffic and held its gates through the bake.
    Succeeded,
    /// A gate failed or an operator asked; the previous version serves again.
    RolledBack,
    /// The version never loaded (verification failed, wrong shape).
    Refused,
    /// A shadow-only deploy finished its comparison.
    Shadowed,
    /// Stopped by something other than a gate (the node shut down, the deployer restarted).
    Aborted,
}

impl Outcome {
    /// The name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled-back",
            Self::Refused => "refused",
            Self::Shadowed => "shadowed",
            Self::Aborted => "aborted",
        }
    }
}

/// Converts gate statistics to their wire form.
pub fn stats_proto(w: &StatsWindow) -> DeployStats {
    DeployStats {
        requests: w.requests,
        errors: w.errors,
        non_finite: w.non_finite,
        out_of_range: w.out_of_range,
        p99_ms: w.p99_ms(),
        compared: w.compared,
        agreement: w.agreement(),
        divergence: w.mean_divergence(),
    }
}

/// One deploy's record, shared between the task running it and the board.
#[derive(Debug, Clone)]
pub struct RecordHandle {
    record: Arc<Mutex<DeployRecord>>,
    started: Instant,
}

impl RecordHandle {
    fn with<R>(&self, f: impl FnOnce(&mut DeployRecord) -> R) -> R {
        f(&mut self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The record's id.
    pub fn id(&self) -> String {
        self.with(|r| r.id.clone())
    }

    /// Appends an event, logged as it happens.
    pub fn event(&self, what: impl Into<String>) {
        let what = what.into();
        let at_s = self.started.elapsed().as_secs_f64();
        self.with(|r| {
            tracing::info!(deploy = %r.id, model = %r.model, to = %r.to_version, at_s, "{what}");
            r.events.push(DeployEvent { at_s, what });
        });
    }

    /// Enters a phase.
    pub fn phase(&self, phase: &str) {
        self.with(|r| r.phase = phase.to_owned());
        self.event(format!("phase: {phase}"));
    }

    /// Records the old version's p99 the latency gate compares with.
    pub fn baseline(&self, p99_ms: f64) {
        self.with(|r| r.baseline_p99_ms = p99_ms);
    }

    /// Records the new version's statistics so far.
    pub fn green(&self, stats: &StatsWindow) {
        self.with(|r| r.green = Some(stats_proto(stats)));
    }

    /// The current phase.
    pub fn phase_now(&self) -> String {
        self.with(|r| r.phase.clone())
    }

    /// The outcome so far.
    pub fn outcome(&self) -> String {
        self.with(|r| r.outcome.clone())
    }

    /// Ends the deploy (a later call, e.g. an operator rollback after success, overrides).
    pub fn finish(&self, outcome: Outcome, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|r| {
            r.outcome = outcome.as_str().to_owned();
            r.reason = reason.clone();
            r.finished_at = chrono::Utc::now().to_rfc3339();
        });
        if matches!(
            outcome,
            Outcome::RolledBack | Outcome::Refused | Outcome::Aborted
        ) {
            self.with(|r| tracing::warn!(deploy = %r.id, model = %r.model, to = %r.to_version, outcome = outcome.as_str(), %reason, "deploy ended"));
        }
        self.event(format!("{}: {reason}", outcome.as_str()));
    }
}

/// All deploy records of a node, newest last.
#[derive(Debug)]
pub struct DeployBoard {
    node: String,
    records: Mutex<VecDeque<RecordHandle>>,
    next: Mutex<u64>,
}

impl DeployBoard {
    /// An empty board for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            records: Mutex::default(),
            next: Mutex::new(1),
        }
    }

    /// Opens a record for a deploy of `model` from `from` to `to`.
    pub fn open(&self, model: &str, from: &str, to: &str, strategy: &str) -> RecordHandle {
        let n = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let n = *next;
            *next += 1;
            n
        };
        let handle = RecordHandle {
            record: Arc::new(Mutex::new(DeployRecord {
                id: format!("{}-{model}-{to}-{n}", self.node),
                node: self.node.clone(),
                model: model.to_owned(),
                from_version: from.to_owned(),
                to_version: to.to_owned(),
                strategy: strategy.to_owned(),
                phase: "loading".to_owned(),
                outcome: Outcome::Running.as_str().to_owned(),
                started_at: chrono::Utc::now().to_rfc3339(),
                ..Default::default()
            })),
            started: Instant::now(),
        };
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.push_back(handle.clone());
        while records.len() > KEPT_RECORDS {
            records.pop_front();
        }
        handle
    }

    /// Copies of every record, oldest first.
    pub fn records(&self) -> Vec<DeployRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|h| h.with(|r| r.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_events_and_outcome() {
        let board = DeployBoard::new("n1");
        let r = board.open("ppo_mlp", "1", "2", "canary");
        assert_eq!(r.id(), "n1-ppo_mlp-2-1");
        r.phase("canary");
        r.finish(Outcome::RolledBack, "p99 above gate");
        let records = board.records();
        assert_eq!(records.len(), 1);
        let rec = &records[0];
        assert_eq!(
            (rec.phase.as_str(), rec.outcome.as_str()),
            ("canary", "rolled-back")
        );
        assert_eq!(rec.reason, "p99 above gate");
        assert_eq!(rec.events.len(), 2);
        assert!(!rec.finished_at.is_empty());
        for _ in 0..KEPT_RECORDS + 5 {
            board.open("m", "1", "2", "rolling");
        }
        assert_eq!(board.records().len(), KEPT_RECORDS);
    }
}
