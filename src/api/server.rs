//! Puts a node on the network: the gRPC server (inference, admin, health, reflection) on the
//! gRPC port and Prometheus `/metrics` on the metrics port, with graceful shutdown: on the
//! shutdown signal health turns NOT_SERVING, the node drains, and the listeners close once
//! in-flight requests are answered.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use thiserror::Error;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use super::{
    admin::AdminService,
    cluster::ClusterService,
    inference::InferenceService,
    proto::{
        FILE_DESCRIPTOR_SET,
        fudo::v1::{admin_server::AdminServer, cluster_server::ClusterServer},
        inference::grpc_inference_service_server::GrpcInferenceServiceServer,
    },
};
use crate::actors::NodeHandle;

/// Health service name of the inference API.
pub const INFERENCE_SERVICE: &str = "inference.GRPCInferenceService";

/// Why serving failed.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built from the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The metrics server failed.
    #[error("metrics server: {0}")]
    Metrics(std::io::Error),
}

/// Bound listeners, so callers can learn the real ports before serving (port 0 in tests).
pub struct Listeners {
    grpc: TcpListener,
    metrics: TcpListener,
}

impl Listeners {
    /// Binds both addresses.
    pub async fn bind(grpc: SocketAddr, metrics: SocketAddr) -> Result<Self, ServeError> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        Ok(Self {
            grpc: bind(grpc).await?,
            metrics: bind(metrics).await?,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }
}

/// Serves `node` until `shutdown` resolves, then drains and returns.
pub async fn serve(
    node: Arc<NodeHandle>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // tonic refuses messages beyond its own limit with OUT_OF_RANGE before they are decoded;
    // keep that as a memory guard well above the configured limit, which the handler enforces
    // with INVALID_ARGUMENT and a message that names the limit.
    let decode_limit = node.config.server.max_message_bytes.saturating_mul(2);
    let inference = GrpcInferenceServiceServer::new(InferenceService::new(node.clone()))
        .max_decoding_message_size(decode_limit);
    let admin = AdminServer::new(AdminService::new(node.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Incoming region links are endless streams: they end on shutdown, or the graceful
    // shutdown would wait for them forever.
    let cluster = ClusterServer::new(ClusterService::new(node.clone(), stop_rx.clone()));

    // Shard threads come up just after the node starts; give them a moment so the health
    // status a client sees first is SERVING, not a transient NOT_SERVING.
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(5);
    while !node.is_ready() && tokio::time::Instant::now() < ready_by {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let initial = if node.is_ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", initial).await;
    health.set_service_status(INFERENCE_SERVICE, initial).await;
    let health_task = tokio::spawn(track_health(node.clone(), health, stop_rx.clone()));
    let metrics_task = tokio::spawn(serve_metrics(node.clone(), listeners.metrics, stop_rx));

    let drain_node = node.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutdown requested: draining");
        let _ = stop_tx.send(true);
        drain_node.drain();
        // Let queued and in-flight requests finish (bounded).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline
            && drain_node
                .models
                .values()
                .flat_map(|m| m.hosts())
                .any(|m| m.queue.depth() + m.queue.in_flight() > 0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(inference)
        .add_service(admin)
        .add_service(cluster)
        .serve_with_incoming_shutdown(
            // `Server::tcp_nodelay` applies only to listeners tonic binds itself; without
            // TCP_NODELAY, responses of a few KiB wait ~40 ms for delayed ACKs.
            TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
            graceful,
        )
        .await?;
    health_task.abort();
    match metrics_task.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Keeps `grpc.health.v1` in step with the node: NOT_SERVING while draining, while a model
/// has no live shard, or while the node is fenced (see [`NodeHandle::not_serving_reason`]).
async fn track_health(
    node: Arc<NodeHandle>,
    health: tonic_health::server::HealthReporter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let reason = if *stop.borrow() {
            Some("shutting down".to_owned())
        } else {
            node.not_serving_reason()
        };
        let status = if reason.is_none() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            health.set_service_status("", status).await;
            health.set_service_status(INFERENCE_SERVICE, status).await;
            tracing::info!(?status, reason = reason.as_deref().unwrap_or(""), "health");
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn serve_metrics(
    node: Arc<NodeHandle>,
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(node);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
        .map_err(ServeError::Metrics)
}

async fn metrics(State(node): State<Arc<NodeHandle>>) -> impl IntoResponse {
    node.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.encode(),
    )
}
