//! Test support: a fake `inference.GRPCInferenceService` for in-process servers.
//!
//! Client-side tests (the load generator, the gateway client) only need `ModelInfer` to
//! behave; [`InferOnly`] answers every other RPC with UNIMPLEMENTED so each fake implements
//! just [`FakeInfer`].

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::proto::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
    grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer},
};

/// The one RPC a fake implements.
#[tonic::async_trait]
pub trait FakeInfer: Send + Sync + 'static {
    /// Answers `ModelInfer`.
    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status>;
}

/// Serves a [`FakeInfer`] as a full inference service.
pub struct InferOnly<F>(pub Arc<F>);

impl<F: FakeInfer> InferOnly<F> {
    /// The tonic service for `fake`.
    pub fn server(fake: Arc<F>) -> GrpcInferenceServiceServer<Self> {
        GrpcInferenceServiceServer::new(Self(fake))
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake server: only ModelInfer"))
}

#[tonic::async_trait]
impl<F: FakeInfer> GrpcInferenceService for InferOnly<F> {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        unimplemented()
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        unimplemented()
    }

    async fn model_ready(
        &self,
        _: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        unimplemented()
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        unimplemented()
    }

    async fn model_metadata(
        &self,
        _: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        unimplemented()
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        self.0.model_infer(request).await
    }
}
