//! The chaos runner: every availability number fudo states (failover time, throughput kept
//! during a fault, requests lost) comes from a run of this module that anyone can repeat with
//! `fudo chaos run chaos/<name>.toml --out DIR`.
//!
//! - [`scenario`]: the scenario file format, checked completely before anything starts.
//! - [`netlab`] and [`proxy`]: network faults (namespaces + nftables; a fault-injecting TCP
//!   proxy for latency, stalls and resets, since this kernel has no `netem`).
//! - [`faults`]: injecting and healing each fault kind against a [`crate::cluster::Cluster`].
//! - [`load`] and [`history`]: the load, sent through [`crate::client::FudoClient`], and the
//!   Jepsen-style record of every request.
//! - [`reference`](mod@reference), [`failover`], [`analysis`], [`report`], [`timeline`]: the
//!   verdict and its evidence (session equality, detection and session-move times).
//! - [`runner`]: the whole experiment.

pub mod analysis;
pub mod deploy_faults;
pub mod failover;
pub mod faults;
pub mod history;
pub mod load;
pub mod model_fixtures;
pub mod netlab;
pub mod proxy;
pub mod reference;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod timeline;

pub use self::{
    report::{Report, Verdict},
    runner::{RunError, RunOptions, load_scenario, run},
    scenario::{Scenario, ScenarioError},
};
