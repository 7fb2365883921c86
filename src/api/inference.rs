//! `inference.GRPCInferenceService`: the KServe Open Inference Protocol v2, as Triton serves
//! it, so existing Triton/KServe clients work unchanged.
//!
//! Stateless models answer each request on its own. Recurrent models need Triton's sequence
//! parameters: the request steps the session `sequence_id`, whose state lives in the node's
//! session table (see `api::sequence` for the parameters and `sessions` for the semantics).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use prost::Message as _;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::{
    proto::inference::{
        ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
        ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
        ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
        grpc_inference_service_server::GrpcInferenceService,
        model_metadata_response::TensorMetadata,
    },
    sequence::{self, SequenceParams},
    spill,
    status::model_not_found,
    tensor::{self, OutputData},
};
use crate::{
    actors::{ModelHost, NodeHandle},
    sessions::{StepComputed, StepOutput, StepRequest},
};

/// The Open Inference Protocol service of a node.
#[derive(Debug, Clone)]
pub struct InferenceService {
    node: Arc<NodeHandle>,
}

impl InferenceService {
    /// The service for `node`.
    pub fn new(node: Arc<NodeHandle>) -> Self {
        Self { node }
    }

    fn host(&self, name: &str, version: &str) -> Result<&Arc<ModelHost>, Status> {
        self.node
            .model(name, version)
            .ok_or_else(|| model_not_found(name, version, &self.node.model_names()))
    }

    async fn infer(
        &self,
        req: ModelInferRequest,
        request_id: String,
        deadline: Instant,
    ) -> Result<ModelInferResponse, Status> {
        let host = self.host(&req.model_name, &req.model_version)?;
        let limit = self.node.config.server.max_message_bytes;
        let size = req.encoded_len();
        if size > limit {
            return Err(Status::invalid_argument(format!(
                "request is {size} bytes; the limit is {limit} bytes (server.max_message_bytes)"
            )));
        }
        if self.node.is_draining() {
            return Err(Status::unavailable(format!(
                "node {} is draining; retry on another node",
                self.node.config.server.node_name
            )));
        }
        let spec = host.spec().clone();
        let outputs = tensor::requested_outputs(&req)?;
        let obs = tensor::decode_observations(
            &req,
            spec.obs_dim,
            self.node.config.server.max_rows_per_request,
        )?;
        let seq = sequence::parse(&req.parameters).map_err(Status::invalid_argument)?;
        let mut response = ModelInferResponse {
            model_name: host.name.clone(),
            model_version: host.version.clone(),
            id: req.id.clone(),
            ..Default::default()
        };
        match (spec.is_recurrent(), seq.id.clone()) {
            (false, None) => {
                let may_spill = !spill::was_spilled(&req) && !self.node.membership.is_empty();
                let ratio = self.node.config.cluster.spill_queue_ratio;
                let spill_first = may_spill && spill::short_of_capacity(host, ratio);
                if spill_first && let Some(target) = spill::target(&self.node, &host.name) {
                    let why = Status::resource_exhausted(format!(
                        "node {} is short of capacity for `{}`",
                        self.node.config.server.node_name, host.name
                    ));
                    // If the peer cannot take it after all, try here rather than fail.
                    if let Ok(spilled) =
                        spill::forward(&self.node, target, req.clone(), deadline, why).await
                    {
                        return Ok(spilled);
                    }
                }
                let local = host
                    .infer(request_id, obs.rows, obs.values, Vec::new(), deadline)
                    .await
                    .map_err(Status::from);
                let out = match local {
                    Ok(out) => out,
                    Err(status) if may_spill && !spill_first && spill::is_spillable(&status) => {
                        return match spill::target(&self.node, &host.name) {
                            Some(target) => {
                                spill::forward(&self.node, target, req, deadline, status).await
                            }
                            None => Err(status),
                        };
                    }
                    Err(status) => return Err(status),
                };
                let data = OutputData {
                    rows: obs.rows,
                    n_actions: spec.n_actions,
                    actions: &out.actions,
                    logits: &out.logits,
                    values: &out.values,
                };
                (response.outputs, response.raw_output_contents) =
                    tensor::encode_outputs(&outputs, &data);
                response.parameters.insert(
                    sequence::SERVED_BY.into(),
                    sequence::string_param(format!(
                        "{}/{}",
                        self.node.config.server.node_name, out.served_by
                    )),
                );
            }
            (false, Some(_)) => {
                return Err(Status::invalid_argument(format!(
                    "model `{}` is stateless; do not send sequence parameters",
                    host.name
                )));
            }
            (true, None) => {
                return Err(Status::invalid_argument(format!(
                    "model `{}` is recurrent: each request is one step of a session; send `{}` (and `{}` on the first step, `{}` to make retries idempotent)",
                    host.name,
                    sequence::SEQUENCE_ID,
                    sequence::SEQUENCE_START,
                    sequence::SEQUENCE_SEQ
                )));
            }
            (true, Some(session_id)) => {
                if obs.rows != 1 {
                    return Err(Status::invalid_argument(format!(
                        "a recurrent step takes exactly one observation row; got shape [{}, {}]",
                        obs.rows, spec.obs_dim
                    )));
                }
                self.step(
                    host,
                    session_id,
                    &seq,
                    obs.values,
                    request_id,
                    deadline,
                    &outputs,
                    &mut response,
                )
                .await?;
            }
        }
        Ok(response)
    }

    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        host: &Arc<ModelHost>,
        session_id: String,
        seq: &SequenceParams,
        obs: Vec<f32>,
        request_id: String,
        deadline: Instant,
        outputs: &[&'static str],
        response: &mut ModelInferResponse,
    ) -> Result<(), Status> {
        let spec = host.spec().clone();
        let served_by = Arc::new(Mutex::new(None::<String>));
        let request = StepRequest {
            model: host.name.clone(),
            model_version: host.version.clone(),
            session_id,
            seq: seq.seq,
            start: seq.start,
            end: seq.end,
            state_dim: spec.state_dim,
            min_epoch: seq.min_epoch,
        };
        let slot = served_by.clone();
        let node_name = self.node.config.server.node_name.clone();
        let outcome = self
            .node
            .sessions
            .step(request, move |state| async move {
                let out = host.infer(request_id, 1, obs, state, deadline).await?;
                *slot.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("{node_name}/{}", out.served_by));
                Ok(StepComputed {
                    output: StepOutput {
                        logits: out.logits,
                        value: out.values.first().copied().unwrap_or_default(),
                        action: out.actions.first().copied().unwrap_or_default(),
                    },
                    next_state: out.state,
                })
            })
            .await?;
        let data = OutputData {
            rows: 1,
            n_actions: spec.n_actions,
            actions: &[outcome.output.action],
            logits: &outcome.output.logits,
            values: &[outcome.output.value],
        };
        (response.outputs, response.raw_output_contents) = tensor::encode_outputs(outputs, &data);
        let served = served_by
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| format!("{}/session-table", self.node.config.server.node_name));
        let params = &mut response.parameters;
        params.insert(
            sequence::SEQUENCE_SEQ.into(),
            sequence::int_param(outcome.seq),
        );
        params.insert(
            sequence::DURABLE_WATERMARK.into(),
            sequence::int_param(outcome.durable_watermark),
        );
        params.insert(
            sequence::OWNER_EPOCH.into(),
            sequence::int_param(outcome.owner_epoch),
        );
        params.insert(
            sequence::REPLAYED.into(),
            sequence::bool_param(outcome.replayed),
        );
        params.insert(sequence::SERVED_BY.into(), sequence::string_param(served));
        Ok(())
    }
}

/// The deadline of a request: its `grpc-timeout`, or the configured default. A little is kept
/// back so that fudo answers DEADLINE_EXCEEDED itself before tonic's own timer cancels the
/// call with CANCELLED.
pub fn request_deadline<T>(req: &Request<T>, default: Duration) -> Instant {
    let timeout = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(default);
    let margin = (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(5));
    Instant::now() + timeout.saturating_sub(margin)
}

/// Parses a `grpc-timeout` header value (`<digits><H|M|S|m|u|n>`).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.node.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        req: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let req = req.into_inner();
        let host = self.host(&req.name, &req.version)?;
        Ok(Response::new(ModelReadyResponse {
            ready: !self.node.is_draining() && host.queue.live_workers() > 0,
        }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "fudo".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: vec![
                "sequence".to_owned(),
                "fudo_sequence_seq".to_owned(),
                "fudo_durable_watermark".to_owned(),
            ],
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let req = req.into_inner();
        let host = self.host(&req.name, &req.version)?;
        let spec = host.spec();
        let tensor = |name: &str, datatype: &str, shape: Vec<i64>| TensorMetadata {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape,
        };
        Ok(Response::new(ModelMetadataResponse {
            name: host.name.clone(),
            versions: vec![host.version.clone()],
            platform: "fudo_candle".to_owned(),
            inputs: vec![tensor(
                tensor::OBS_INPUT,
                "FP32",
                vec![-1, spec.obs_dim as i64],
            )],
            outputs: vec![
                tensor(tensor::ACTION_OUTPUT, "INT64", vec![-1]),
                tensor(
                    tensor::LOGITS_OUTPUT,
                    "FP32",
                    vec![-1, spec.n_actions as i64],
                ),
                tensor(tensor::VALUE_OUTPUT, "FP32", vec![-1, 1]),
            ],
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let received = Instant::now();
        let deadline = request_deadline(
            &request,
            Duration::from_millis(self.node.config.server.default_deadline_ms),
        );
        let req = request.into_inner();
        let request_id = if req.id.is_empty() {
            self.node.next_request_id()
        } else {
            req.id.clone()
        };
        let model = req.model_name.clone();
        let span = tracing::info_span!("infer", request_id = %request_id, model = %model);
        let result = self
            .infer(req, request_id, deadline)
            .instrument(span.clone())
            .await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => {
                span.in_scope(|| {
                    tracing::debug!(code = ?status.code(), message = status.message(), "request failed");
                });
                status.code()
            }
        };
        if self.node.models.contains_key(&model) {
            self.node
                .metrics
                .observe_request(&model, code, received.elapsed());
        }
        result.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
        assert_eq!(parse_grpc_timeout("123456789m"), None);
    }
}
