//! Model deploys: a new version reaches traffic beside the serving one, is checked against it,
//! and takes over or is rolled back by itself.
//!
//! - [`plan`]: what a deploy was asked to do (strategy, timings, gates);
//! - [`gates`]: the limits a new version must hold while it takes traffic;
//! - [`run`]: one deploy on one node, phase by phase;
//! - [`board`]: the deploy history a node keeps;
//! - [`cluster`]: the driver that deploys across every node of a cluster (`fudo deploy`).
//!
//! The deployer actor (`actors::deployer`) owns the running deploys; this function prepares one
//! (verifies and loads the version, so a refused version never touches traffic) and hands it
//! over.

pub mod board;
pub mod cluster;
pub mod gates;
pub mod plan;
pub mod run;

use std::{sync::Arc, time::Duration};

use ractor::{ActorRef, rpc::CallResult};
use thiserror::Error;

use crate::{
    actors::{
        ModelHost, NodeHandle,
        deployer::{DeployJobSeed, DeployerMsg},
    },
    api::proto::fudo::v1::DeployRequest,
    model::{self, ModelError, ModelRepository},
};
use board::Outcome;
use plan::DeployPlan;
use run::DeployJob;

/// The registered name of a node's deployer actor.
pub const DEPLOYER: &str = "deployer";

/// Why a deploy or rollback was not started.
#[derive(Debug, Clone, Error)]
pub enum DeployError {
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The node does not serve the model.
    #[error("model `{0}` is not served on this node")]
    NotServed(String),
    /// The node serves bundled models, which have no versions to deploy.
    #[error(
        "this node serves the bundled models; deploys need a model repository (models.repository)"
    )]
    NoRepository,
    /// The version is not in the repository.
    #[error(
        "{model}/{version} is not in the model repository {repository} (see `fudo models list`)"
    )]
    NotInRepository {
        /// Model.
        model: String,
        /// Version.
        version: String,
        /// Repository root.
        repository: String,
    },
    /// The version failed verification or does not fit the serving one.
    #[error("{model}/{version} refused before serving: {reason}")]
    Refused {
        /// Model.
        model: String,
        /// Version.
        version: String,
        /// What failed, naming the file.
        reason: String,
    },
    /// Another deploy of the model is running.
    #[error("a deploy of `{model}` is running ({running}); wait for it or roll it back")]
    Busy {
        /// Model.
        model: String,
        /// Its record id.
        running: String,
    },
    /// The version is loaded already (a deploy is running or retiring it).
    #[error(
        "{model}/{version} is already loaded on this node (a deploy is running or just ended); see `fudo ctl deploys`"
    )]
    Loaded {
        /// Model.
        model: String,
        /// Version.
        version: String,
    },
    /// Nothing to roll back.
    #[error(
        "no deploy of `{0}` is running or retiring its previous version; to go back further, deploy the older version"
    )]
    NothingToRollBack(String),
    /// The deployer actor is not running (it is restarting).
    #[error("the deployer is unavailable: {0}")]
    Unavailable(String),
}

/// What [`start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A deploy with this record id is running.
    Running(String),
    /// The version already serves all traffic here: nothing to do.
    AlreadyLive,
}

fn deployer(node: &NodeHandle) -> Result<ActorRef<DeployerMsg>, DeployError> {
    node.directory
        .lookup(DEPLOYER)
        .map(|p| ActorRef::from(p.cell))
        .ok_or_else(|| DeployError::Unavailable("restarting; try again".into()))
}

async fn call<T>(
    node: &NodeHandle,
    msg: impl FnOnce(ractor::RpcReplyPort<Result<T, DeployError>>) -> DeployerMsg,
) -> Result<T, DeployError>
where
    T: Send + 'static,
{
    match deployer(node)?
        .call(msg, Some(Duration::from_secs(10)))
        .await
    {
        Ok(CallResult::Success(answer)) => answer,
        Ok(CallResult::Timeout) => Err(DeployError::Unavailable("timed out".into())),
        Ok(CallResult::SenderError) | Err(_) => {
            Err(DeployError::Unavailable("the deployer stopped".into()))
        }
    }
}

/// Verifies and loads the requested version, then has the deployer run the deploy.
pub async fn start(node: &Arc<NodeHandle>, req: &DeployRequest) -> Result<Started, DeployError> {
    let plan = DeployPlan::from_request(req).map_err(DeployError::BadRequest)?;
    let served = node
        .model(&plan.model)
        .cloned()
        .ok_or_else(|| DeployError::NotServed(plan.model.clone()))?;
    let root = node
        .config
        .models
        .repository
        .clone()
        .ok_or(DeployError::NoRepository)?;
    wait_for_previous(node, &plan.model).await?;
    let routing = served.routing();
    if routing.live == plan.version && routing.hosts.len() == 1 {
        return Ok(Started::AlreadyLive);
    }
    if routing.hosts.contains_key(&plan.version) {
        return Err(DeployError::Loaded {
            model: plan.model.clone(),
            version: plan.version.clone(),
        });
    }
    let repository = ModelRepository::new(root);
    let version: u64 = plan.version.parse().map_err(|_| {
        DeployError::BadRequest(format!("`version` must be a number, got {}", plan.version))
    })?;
    if !repository
        .versions(&plan.model)
        .map_err(|e| refused(&plan, e))?
        .contains(&version)
    {
        return Err(DeployError::NotInRepository {
            model: plan.model.clone(),
            version: plan.version.clone(),
            repository: repository.root().display().to_string(),
        });
    }
    let record = node.deploys.open(
        &plan.model,
        &routing.live,
        &plan.version,
        plan.strategy.as_str(),
    );
    let loaded = {
        let (repository, name, device) = (
            repository.clone(),
            plan.model.clone(),
            node.config.models.device.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let device = model::select_device(&device)?;
            repository.load(&name, version, &device)
        })
        .await
        .map_err(|e| DeployError::Unavailable(format!("loader task failed: {e}")))?
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            let err = refused(&plan, e);
            record.finish(Outcome::Refused, err.to_string());
            record.phase("done");
            return Err(err);
        }
    };
    let live_spec = routing.live_host().spec().clone();
    if loaded.spec() != &live_spec {
        let err = DeployError::Refused {
            model: plan.model.clone(),
            version: plan.version.clone(),
            reason: format!(
                "config.json: its dimensions {:?} differ from the serving version's {:?}; a different interface is a new model, not a new version",
                loaded.spec(),
                live_spec
            ),
        };
        record.finish(Outcome::Refused, err.to_string());
        record.phase("done");
        return Err(err);
    }
    record.event("verified: manifest checksums, config and golden outputs");
    let green = Arc::new(ModelHost::new(
        loaded,
        &node.config.models,
        node.metrics.clone(),
    ));
    let node_for_job = node.clone();
    let seed: Box<DeployJobSeed> = Box::new(move |control| DeployJob {
        node: node_for_job,
        served,
        plan,
        green,
        repository,
        record,
        abort: control.signals,
        rollback_open: control.rollback_open,
    });
    call(node, |reply| DeployerMsg::Start(seed, reply))
        .await
        .map(Started::Running)
}

/// Lets the previous deploy of `model` end before a new one starts: a succeeded deploy still
/// retiring the old version is told to retire it now, and a deploy that has ended (succeeded
/// or rolled back) but is still unloading a version is waited for (bounded). A deploy still
/// running is left alone: the deployer refuses the new one as busy.
async fn wait_for_previous(node: &NodeHandle, model: &str) -> Result<(), DeployError> {
    call(node, |reply| {
        DeployerMsg::RetireNow(model.to_owned(), reply)
    })
    .await?;
    let until = std::time::Instant::now()
        + Duration::from_millis(node.config.server.default_deadline_ms)
        + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        let ending = node.deploys.records().iter().any(|r| {
            r.model == model && r.outcome != Outcome::Running.as_str() && r.phase != "done"
        });
        if !ending {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(DeployError::Unavailable(format!(
        "the previous deploy of `{model}` is still unloading a version"
    )))
}

fn refused(plan: &DeployPlan, e: ModelError) -> DeployError {
    DeployError::Refused {
        model: plan.model.clone(),
        version: plan.version.clone(),
        reason: e.to_string(),
    }
}

/// Rolls back the running (or retiring) deploy of `model`.
pub async fn rollback(node: &NodeHandle, model: &str, reason: &str) -> Result<(), DeployError> {
    if node.model(model).is_none() {
        return Err(DeployError::NotServed(model.to_owned()));
    }
    let reason = if reason.is_empty() {
        "operator rollback".to_owned()
    } else {
        format!("operator rollback: {reason}")
    };
    call(node, |reply| {
        DeployerMsg::Rollback(model.to_owned(), reason, reply)
    })
    .await
}
