//! The actors of a node, one per file, in the order a request meets them: the per-model
//! [`router`] that owns the request queue and the in-flight table ([`work_queue`]), the
//! [`shard`]s that run batches on their [`shard_worker`] threads, the per-model subtree that
//! supervises them ([`model_host`]), and the [`node`] that roots it all. Across nodes, a
//! [`region_link`] per peer keeps a heartbeat stream (authenticated by [`link_auth`]) and
//! feeds the [`membership`] view, judged by the [`phi_accrual`] failure detector.

pub mod deployer;
pub mod infer_error;
pub mod job;
pub mod link_auth;
pub mod membership;
pub mod model_host;
pub mod node;
pub mod phi_accrual;
pub mod region_link;
pub mod router;
pub mod served_model;
pub mod shard;
pub mod shard_slot;
pub mod shard_worker;
pub mod version_stats;
pub mod work_queue;

pub use infer_error::InferError;
pub use job::{Job, JobOutput};
pub use model_host::ModelHost;
pub use node::{Node, NodeHandle};
pub use served_model::ServedModel;
pub use work_queue::WorkQueue;
