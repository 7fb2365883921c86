//! The deployer: one actor per node that runs model deploys, at most one per model at a time,
//! and takes operator rollbacks. Each deploy runs as its own task (`deploy::run`); the actor
//! keeps the abort channel of each, so a rollback reaches a deploy in any phase, including the
//! retire window after success. If the deployer itself stops (its supervisor restarts it, or the
//! node shuts down), every running deploy is undone and recorded as aborted — a deploy without
//! an owner must not finish on its own — while one that already succeeded stands.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::deploy::{
    DeployError,
    board::{Outcome, RecordHandle},
    run::DeployJob,
};

/// What the deployer is asked.
pub enum DeployerMsg {
    /// Run a prepared deploy (its version is verified and loaded, not yet started).
    Start(
        Box<DeployJobSeed>,
        RpcReplyPort<Result<String, DeployError>>,
    ),
    /// Roll back the running deploy of a model, with the reason to record.
    Rollback(String, String, RpcReplyPort<Result<(), DeployError>>),
    /// A deploy of the model that succeeded and is retiring its previous version: retire it
    /// now (a newer deploy is waiting). Answers whether such a deploy was running.
    RetireNow(String, RpcReplyPort<Result<bool, DeployError>>),
    /// A deploy task ended.
    Finished(String),
}

impl std::fmt::Debug for DeployerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start(..) => f.write_str("Start(..)"),
            Self::Rollback(model, reason, _) => write!(f, "Rollback({model}, {reason})"),
            Self::Finished(model) => write!(f, "Finished({model})"),
            Self::RetireNow(model, _) => write!(f, "RetireNow({model})"),
        }
    }
}

/// A deploy job without its abort channel, which the deployer creates.
pub type DeployJobSeed = dyn FnOnce(DeployControl) -> DeployJob + Send;

/// How the deployer reaches a running deploy: its signals, and whether a rollback can still be
/// taken. The deploy closes the gate (under its lock) when it starts unloading the previous
/// version; the deployer sends a rollback only while holding the same lock with the gate
/// open, so a rollback is either seen by the deploy or refused, never lost.
#[derive(Debug)]
pub struct DeployControl {
    /// Rollback, retire-now and abandon signals.
    pub signals: watch::Receiver<Option<Signal>>,
    /// Whether a rollback can still be taken.
    pub rollback_open: Arc<Mutex<bool>>,
}

/// What a running deploy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Roll back now, recording this reason.
    Rollback(String),
    /// If retiring the previous version after success, retire it now (ignored otherwise).
    RetireNow,
    /// The deployer stopped (restart or node shutdown): a running deploy is undone and recorded
    /// as aborted; a succeeded one in its retire window stands.
    Abandon(String),
}

/// The deployer actor.
#[derive(Debug)]
pub struct Deployer;

/// One running deploy as the deployer holds it.
#[derive(Debug)]
struct Running {
    id: String,
    signals: watch::Sender<Option<Signal>>,
    record: RecordHandle,
    rollback_open: Arc<Mutex<bool>>,
}

/// Running deploys by model.
#[derive(Debug, Default)]
pub struct DeployerState {
    running: HashMap<String, Running>,
}

impl Actor for Deployer {
    type Msg = DeployerMsg;
    type State = DeployerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DeployerState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DeployerMsg::Start(seed, reply) => {
                let (tx, rx) = watch::channel(None);
                let rollback_open = Arc::new(Mutex::new(true));
                let job = seed(DeployControl {
                    signals: rx,
                    rollback_open: rollback_open.clone(),
                });
                let model = job.plan.model.clone();
                // A deploy that has reached its end but whose task has not reported yet.
                if state
                    .running
                    .get(&model)
                    .is_some_and(|r| r.record.phase_now() == "done")
                {
                    state.running.remove(&model);
                }
                if let Some(Running { id, .. }) = state.running.get(&model) {
                    job.record.finish(
                        Outcome::Aborted,
                        format!("another deploy of {model} is running ({id})"),
                    );
                    job.record.phase("done");
                    let _ = reply.send(Err(DeployError::Busy {
                        model,
                        running: id.clone(),
                    }));
                    return Ok(());
                }
                let id = job.record.id();
                state.running.insert(
                    model.clone(),
                    Running {
                        id: id.clone(),
                        signals: tx,
                        record: job.record.clone(),
                        rollback_open,
                    },
                );
                tokio::spawn(async move {
                    job.run().await;
                    let _ = myself.cast(DeployerMsg::Finished(model));
                });
                let _ = reply.send(Ok(id));
            }
            DeployerMsg::Rollback(model, reason, reply) => {
                let answer = match state.running.get(&model) {
                    Some(running) => {
                        let open = running
                            .rollback_open
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if *open {
                            running.signals.send_replace(Some(Signal::Rollback(reason)));
                            Ok(())
                        } else {
                            Err(DeployError::NothingToRollBack(model))
                        }
                    }
                    None => Err(DeployError::NothingToRollBack(model)),
                };
                let _ = reply.send(answer);
            }
            DeployerMsg::RetireNow(model, reply) => {
                let retiring = match state.running.get(&model) {
                    Some(r) if r.record.outcome() == Outcome::Succeeded.as_str() => {
                        r.signals.send_replace(Some(Signal::RetireNow));
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(Ok(retiring));
            }
            DeployerMsg::Finished(model) => {
                state.running.remove(&model);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for running in state.running.values() {
            running
                .signals
                .send_replace(Some(Signal::Abandon("the deployer stopped".to_owned())));
        }
        Ok(())
    }
}
