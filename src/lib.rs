//! fudo (不動, "immovable"): a high-availability inference runtime for deep-reinforcement-learning
//! trading policies.
//!
//! Policies trained in PyTorch are loaded from safetensors, run by candle inside supervised
//! ractor actors, and served over the KServe Open Inference Protocol v2 (so unmodified Triton
//! clients work). The crate is laid out like the supervision tree and the request path:
//!
//! - [`supervision`]: OTP-style supervisors on top of ractor's link events.
//! - [`model`]: the policy architectures (candle), the loader and manifest verification.
//! - [`actors`]: the node, the per-model router and the inference shards.
//! - [`deploy`]: model deploys (blue-green, canary, rolling, shadow) with gates and rollback.
//! - [`sessions`]: recurrent session state, idempotent steps and durable storage.
//! - [`api`]: the gRPC services (inference, admin, health) and status mapping.
//! - [`cli`]: the `fudo` command line (serve, ctl, bench, up, chaos).
//! - [`client`]: the gateway client library (endpoints, deadlines, retries, hedging, stickiness).
//! - [`cluster`]: the local cluster launcher (`fudo up`): nodes, Redis with Sentinel.
//! - [`chaos`]: the chaos runner (`fudo chaos run`): faults under load, reports.

pub mod actors;
pub mod api;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod deploy;
pub mod metrics;
pub mod model;
pub mod sessions;
pub mod supervision;
