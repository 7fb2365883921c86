//! The gRPC surface of a node: the Open Inference Protocol v2 service that trading gateways
//! call, the `fudo.v1.Admin` service operators call, the `fudo.v1.Cluster` service region
//! links dial, health, reflection, and the single place where internal errors become gRPC
//! statuses. Requests a node is short of capacity for [`spill`] to a peer.

pub mod admin;
pub mod cluster;
#[cfg(test)]
pub mod fake_inference;
pub mod inference;
pub mod mirror;
pub mod proto;
pub mod rewarm;
pub mod sequence;
pub mod server;
pub mod spill;
pub mod status;
pub mod tensor;
