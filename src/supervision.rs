//! OTP-style supervision on top of ractor.
//!
//! ractor links actors and reports their exits, but has no restart policy. This module adds
//! one, following Erlang/OTP's `supervisor`: strategies (`one_for_one`, `one_for_all`,
//! `rest_for_one`), restart types (permanent, transient, temporary), restart intensity with
//! escalation to the parent supervisor, restart backoff, a generation counter per child, a
//! [`Directory`] where every new incarnation is re-published for routers, and a [`TreeNode`]
//! snapshot for introspection.
//!
//! The decision rules live in the pure [`planner`]; [`Supervisor`] is the actor that applies
//! them. A typical tree:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use fudo::supervision::*;
//! # async fn demo(router: ChildSpec, shards: Arc<dyn Fn() -> SupervisorSpec + Send + Sync>)
//! # -> Result<(), ractor::SpawnErr> {
//! let directory = Directory::default();
//! let model = SupervisorSpec::new("ppo_mlp", Strategy::RestForOne)
//!     .with_directory(directory.clone())
//!     .with_child(router)
//!     .with_child(Supervisor::child_spec(shards, RestartType::Permanent));
//! let (sup, _handle) = Supervisor::start(model, None).await?;
//! # let _ = sup; Ok(()) }
//! ```

pub mod backoff;
pub mod child_spec;
pub mod directory;
pub mod error;
pub mod intensity;
pub mod planner;
pub mod restart;
pub mod strategy;
pub mod supervisor;
pub mod testkit;
pub mod tree;

pub use backoff::{Backoff, BackoffTracker};
pub use child_spec::{
    ChildSpec, DEFAULT_SHUTDOWN, QueueDepthProbe, StartContext, StartFn, StartFuture,
    spawn_linked_fn,
};
pub use directory::{Directory, DirectoryEvent, Published};
pub use error::SupervisorError;
pub use intensity::{Intensity, IntensityTracker, IntensityVerdict};
pub use planner::{ChildState, ChildView, ExitEvent, Plan, Planner};
pub use restart::{Exit, ExitKind, RestartType, classify_exit};
pub use strategy::Strategy;
pub use supervisor::{
    SUPERVISOR_KIND, SUPERVISOR_SHUTDOWN, Supervisor, SupervisorMsg, SupervisorSpec,
    SupervisorState, TREE_CALL_TIMEOUT,
};
pub use tree::{ChildStatus, TreeNode};
