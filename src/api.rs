//! The gRPC surface of a node: the Open Inference Protocol v2 service that trading gateways
//! call, the `fudo.v1.Admin` service operators call, health, reflection, and the single place
//! where internal errors become gRPC statuses.

pub mod admin;
#[cfg(test)]
pub mod fake_inference;
pub mod inference;
pub mod proto;
pub mod sequence;
pub mod server;
pub mod status;
pub mod tensor;
