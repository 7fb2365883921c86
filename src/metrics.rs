//! Prometheus metrics for `/metrics` on the metrics port: request latency per model, batch
//! sizes, queue depth, restarts per actor, sessions and the session store's state, and the
//! cluster as this node sees it (members by state, link round trips, spilled requests).
//!
//! Restart latency is also kept in an exact HDR histogram, because the interesting values are
//! tens of microseconds and Prometheus buckets are too coarse to report a median that small.

use std::{
    sync::{Mutex, PoisonError, atomic::AtomicU64},
    time::Duration,
};

use hdrhistogram::Histogram as Hdr;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use serde::Serialize;

/// Label set: one model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    /// Model name.
    pub model: String,
}

/// Label set: one model and one gRPC status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelCodeLabel {
    /// Model name.
    pub model: String,
    /// gRPC status code name, e.g. `OK`, `INVALID_ARGUMENT`.
    pub code: String,
}

/// Label set: one actor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabel {
    /// Actor name.
    pub actor: String,
}

/// Label set: a cluster member state (`joining`, `alive`, `suspect`, `dead`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The state.
    pub state: String,
}

/// Label set: one peer node.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The peer's node name (its URL until it has introduced itself).
    pub peer: String,
}

/// Percentiles of the observed restart latencies, in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RestartLatency {
    /// Restarts observed.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
}

/// Every metric a node exports.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by model and status code.
    pub requests: Family<ModelCodeLabel, Counter>,
    /// End-to-end request latency inside the node, by model.
    pub request_seconds: Family<ModelLabel, Histogram>,
    /// Rows per batch, by model.
    pub batch_rows: Family<ModelLabel, Histogram>,
    /// Rows queued, by model.
    pub queue_depth: Family<ModelLabel, Gauge>,
    /// Requests re-dispatched after a shard failure, by model.
    pub redispatched: Family<ModelLabel, Gauge>,
    /// Restarts, by actor.
    pub restarts: Family<ActorLabel, Counter>,
    /// Failure to replacement-serving time of shards.
    pub restart_seconds: Histogram,
    /// Recurrent sessions in memory.
    pub sessions: Gauge,
    /// 1 while the session store buffers writes because its backend is unreachable.
    pub session_store_degraded: Gauge,
    /// Session writes waiting for the store.
    pub session_store_buffered: Gauge,
    /// 1 while the node drains.
    pub draining: Gauge,
    /// 1 while `grpc.health.v1` says SERVING.
    pub serving: Gauge,
    /// Cluster members by the state this node's detector gives them.
    pub cluster_members: Family<StateLabel, Gauge>,
    /// Smoothed region-link round trip per peer.
    pub link_rtt_seconds: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    /// Times each peer was declared dead.
    pub member_deaths: Family<PeerLabel, Gauge>,
    /// Stateless requests forwarded to a peer because this node was short of capacity.
    pub spilled: Counter,
    /// Session writes the store refused because another node holds a newer lease.
    pub session_writes_fenced: Gauge,
    restart_hdr: Mutex<Hdr<u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every fudo metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fudo");
        let requests = Family::<ModelCodeLabel, Counter>::default();
        registry.register("requests", "Inference requests answered", requests.clone());
        let request_seconds = Family::<ModelLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(25e-6, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Inference latency inside the node, from receipt to answer",
            request_seconds.clone(),
        );
        let batch_rows = Family::<ModelLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 10))
        });
        registry.register(
            "batch_rows",
            "Rows per batch a shard ran",
            batch_rows.clone(),
        );
        let queue_depth = Family::<ModelLabel, Gauge>::default();
        registry.register(
            "queue_depth_rows",
            "Rows waiting in a model's queue",
            queue_depth.clone(),
        );
        let redispatched = Family::<ModelLabel, Gauge>::default();
        registry.register(
            "redispatched",
            "Requests re-dispatched to a live shard after a shard failed",
            redispatched.clone(),
        );
        let restarts = Family::<ActorLabel, Counter>::default();
        registry.register(
            "actor_restarts",
            "Actor restarts by supervisors",
            restarts.clone(),
        );
        let restart_seconds = Histogram::new(exponential_buckets(5e-6, 2.0, 16));
        registry.register(
            "shard_restart_duration_seconds",
            "Time from a shard failure to its replacement serving",
            restart_seconds.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions", "Recurrent sessions in memory", sessions.clone());
        let session_store_degraded = Gauge::default();
        registry.register(
            "session_store_degraded",
            "1 while session writes are buffered because the store is unreachable",
            session_store_degraded.clone(),
        );
        let session_store_buffered = Gauge::default();
        registry.register(
            "session_store_buffered_writes",
            "Session writes waiting for the store",
            session_store_buffered.clone(),
        );
        let draining = Gauge::default();
        registry.register("draining", "1 while the node drains", draining.clone());
        let serving = Gauge::default();
        registry.register(
            "serving",
            "1 while grpc.health.v1 says SERVING (0: draining, no live shard, or fenced)",
            serving.clone(),
        );
        let cluster_members = Family::<StateLabel, Gauge>::default();
        registry.register(
            "cluster_members",
            "Cluster peers by the state this node's failure detector gives them",
            cluster_members.clone(),
        );
        let link_rtt_seconds = Family::<PeerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "cluster_link_rtt_seconds",
            "Smoothed round trip of the region link to each peer",
            link_rtt_seconds.clone(),
        );
        let member_deaths = Family::<PeerLabel, Gauge>::default();
        registry.register(
            "cluster_member_deaths",
            "Times each peer was declared dead",
            member_deaths.clone(),
        );
        let spilled = Counter::default();
        registry.register(
            "spilled_requests",
            "Stateless requests forwarded to a peer because this node was short of capacity",
            spilled.clone(),
        );
        let session_writes_fenced = Gauge::default();
        registry.register(
            "session_writes_fenced",
            "Session writes refused because another node holds a newer lease",
            session_writes_fenced.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            batch_rows,
            queue_depth,
            redispatched,
            restarts,
            restart_seconds,
            sessions,
            session_store_degraded,
            session_store_buffered,
            draining,
            serving,
            cluster_members,
            link_rtt_seconds,
            member_deaths,
            spilled,
            session_writes_fenced,
            restart_hdr: Mutex::new(new_hdr()),
        }
    }

    /// Records one answered request.
    pub fn observe_request(&self, model: &str, code: tonic::Code, took: Duration) {
        self.requests
            .get_or_create(&ModelCodeLabel {
                model: model.to_owned(),
                code: code_name(code).to_owned(),
            })
            .inc();
        if code == tonic::Code::Ok {
            self.request_seconds
                .get_or_create(&ModelLabel {
                    model: model.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// Records one batch.
    pub fn observe_batch(&self, model: &str, rows: usize) {
        self.batch_rows
            .get_or_create(&ModelLabel {
                model: model.to_owned(),
            })
            .observe(rows as f64);
    }

    /// Records one restart of `actor` that took `took` from failure to serving.
    pub fn observe_restart(&self, actor: &str, took: Duration) {
        self.restarts
            .get_or_create(&ActorLabel {
                actor: actor.to_owned(),
            })
            .inc();
        self.restart_seconds.observe(took.as_secs_f64());
        let us = took.as_micros().clamp(1, u128::from(u64::MAX)) as u64;
        let mut hdr = self
            .restart_hdr
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Values beyond the histogram's range are clamped rather than lost.
        hdr.saturating_record(us);
    }

    /// Percentiles of every restart observed so far.
    pub fn restart_latency(&self) -> RestartLatency {
        let hdr = self
            .restart_hdr
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        RestartLatency {
            count: hdr.len(),
            p50_us: hdr.value_at_quantile(0.5),
            p99_us: hdr.value_at_quantile(0.99),
            max_us: hdr.max(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn new_hdr() -> Hdr<u64> {
    // 1 µs .. 60 s at 3 significant figures; these bounds are valid constants.
    Hdr::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Hdr::new(3).expect("hdr"))
}

/// The canonical upper-case name of a gRPC status code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_families() {
        let m = Metrics::new();
        m.observe_request("ppo_mlp", tonic::Code::Ok, Duration::from_micros(300));
        m.observe_request("ppo_mlp", tonic::Code::InvalidArgument, Duration::ZERO);
        m.observe_batch("ppo_mlp", 8);
        m.observe_restart("ppo_mlp/shard-0", Duration::from_micros(40));
        let text = m.encode();
        assert!(
            text.contains("fudo_requests_total{model=\"ppo_mlp\",code=\"OK\"} 1"),
            "{text}"
        );
        assert!(text.contains("code=\"INVALID_ARGUMENT\""));
        assert!(text.contains("fudo_batch_rows_bucket"));
        assert!(text.contains("fudo_actor_restarts_total{actor=\"ppo_mlp/shard-0\"} 1"));
        let r = m.restart_latency();
        assert_eq!(r.count, 1);
        assert!((39..=41).contains(&r.p50_us), "{r:?}");
    }
}
