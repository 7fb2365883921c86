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
    mirror,
    proto::inference::{
        ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
        ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
        ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
        grpc_inference_service_server::GrpcInferenceService,
        model_metadata_response::TensorMetadata,
    },
    rewarm::rewarm,
    sequence::{self, SequenceParams},
    spill,
    status::model_not_found,
    tensor::{self, OutputData},
};
use crate::{
    actors::{
        InferError, JobOutput, ModelHost, NodeHandle, ServedModel,
        served_model::{Routing, session_bucket},
        version_stats::OutputCheck,
    },
    sessions::{StepComputed, StepInput, StepOutput, StepRequest},
};

/// Whether a canary's answer must not reach the client: a failure (every inference error is
/// the server's), or outputs that are not finite or out of range.
fn unusable(answer: &Result<JobOutput, InferError>) -> bool {
    answer.as_ref().map_or(true, |out| {
        OutputCheck::of(&out.logits, &out.values) != OutputCheck::Sane
    })
}

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

    fn served(&self, name: &str) -> Result<&Arc<ServedModel>, Status> {
        self.node
            .model(name)
            .ok_or_else(|| model_not_found(name, "", &self.node.model_names()))
    }

    /// The routing rule of `name`, after checking that a named `version` is loaded.
    fn routing(&self, name: &str, version: &str) -> Result<Arc<Routing>, Status> {
        let routing = self.served(name)?.routing();
        if !version.is_empty() && !routing.hosts.contains_key(version) {
            return Err(Status::not_found(format!(
                "model `{name}` version `{version}` is not loaded here; loaded versions: {:?} (live: {})",
                routing.hosts.keys().collect::<Vec<_>>(),
                routing.live
            )));
        }
        Ok(routing)
    }

    /// The named version's host, or the live one.
    fn host(&self, name: &str, version: &str) -> Result<Arc<ModelHost>, Status> {
        let routing = self.routing(name, version)?;
        Ok(routing
            .hosts
            .get(version)
            .unwrap_or_else(|| routing.live_host())
            .clone())
    }

    async fn infer(
        &self,
        req: ModelInferRequest,
        request_id: String,
        deadline: Instant,
    ) -> Result<ModelInferResponse, Status> {
        let routing = self.routing(&req.model_name, &req.model_version)?;
        let live = routing.live_host().clone();
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
        // Every loaded version of a model has the live version's dimensions (deploys refuse
        // a version that does not), so the request can be checked before a version is picked.
        let spec = live.spec().clone();
        let outputs = tensor::requested_outputs(&req)?;
        let obs = tensor::decode_observations(
            &req,
            spec.obs_dim,
            self.node.config.server.max_rows_per_request,
        )?;
        let seq = sequence::parse(&req.parameters).map_err(Status::invalid_argument)?;
        let mut response = ModelInferResponse {
            model_name: live.name.clone(),
            model_version: live.version.clone(),
            id: req.id.clone(),
            ..Default::default()
        };
        match (spec.is_recurrent(), seq.id.clone()) {
            (false, None) => {
                let draw = rand::random_range(0..1000);
                let host = routing
                    .for_stateless(&req.model_version, draw)
                    .unwrap_or_else(|| live.clone());
                response.model_version = host.version.clone();
                let may_spill = !spill::was_spilled(&req) && !self.node.membership.is_empty();
                let ratio = self.node.config.cluster.spill_queue_ratio;
                let spill_first = may_spill && spill::short_of_capacity(&host, ratio);
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
                let shadow = routing.shadow_host(&host.version, draw).cloned();
                // A canary's answer that fails or is not sane is answered by the live version
                // instead: the gates see the canary's failure, the client does not.
                let on_canary = host.version != live.version;
                let kept_obs = (on_canary || shadow.is_some()).then(|| obs.values.clone());
                let mut local = host
                    .infer_counted(
                        request_id.clone(),
                        obs.rows,
                        obs.values,
                        Vec::new(),
                        deadline,
                    )
                    .await;
                if on_canary
                    && unusable(&local)
                    && let Some(values) = kept_obs.clone()
                {
                    tracing::debug!(canary = %host.version, "canary answer unusable; answered by the live version");
                    local = live
                        .infer(request_id.clone(), obs.rows, values, Vec::new(), deadline)
                        .await;
                    response.model_version = live.version.clone();
                }
                if let (Some(shadow), Some(obs_values), Ok(out)) = (shadow, kept_obs, &local) {
                    mirror::stateless(shadow, request_id, obs.rows, obs_values, out, deadline);
                }
                let out = match local.map_err(Status::from) {
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
                    live.name
                )));
            }
            (true, None) => {
                return Err(Status::invalid_argument(format!(
                    "model `{}` is recurrent: each request is one step of a session; send `{}` (and `{}` on the first step, `{}` to make retries idempotent)",
                    live.name,
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
                    &routing,
                    &req.model_version,
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
        routing: &Arc<Routing>,
        explicit_version: &str,
        session_id: String,
        seq: &SequenceParams,
        obs: Vec<f32>,
        request_id: String,
        deadline: Instant,
        outputs: &[&'static str],
        response: &mut ModelInferResponse,
    ) -> Result<(), Status> {
        let live = routing.live_host();
        let spec = live.spec().clone();
        let served_by = Arc::new(Mutex::new(None::<(String, String)>));
        // A first step picks the session's version (the canary decides by session id); later
        // steps follow the version the session is pinned to, unless the request names one.
        let new_version = routing
            .for_new_session(explicit_version, &session_id)
            .map_or_else(|| live.version.clone(), |h| h.version.clone());
        let request = StepRequest {
            model: live.name.clone(),
            model_version: explicit_version.to_owned(),
            new_version,
            session_id: session_id.clone(),
            seq: seq.seq,
            start: seq.start,
            end: seq.end,
            state_dim: spec.state_dim,
            min_epoch: seq.min_epoch,
        };
        let slot = served_by.clone();
        let node_name = self.node.config.server.node_name.clone();
        let shadow_model = self.node.model(&live.name).cloned();
        let step_routing = routing.clone();
        let outcome = self
            .node
            .sessions
            .step_with(request, move |input: StepInput| async move {
                let live = step_routing.live_host().clone();
                let mut pick = step_routing.for_session(&input.version);
                // A deploy that migrates sessions moves every session to the live version.
                if step_routing.migrate && pick.host.version != live.version {
                    pick.migrated_from = Some(pick.host.version.clone());
                    pick.host = live.clone();
                }
                let mut host = pick.host.clone();
                let mut state = input.state.clone();
                if let Some(from) = &pick.migrated_from {
                    tracing::info!(from = %from, to = %host.version, window = input.recent_obs.len(), "session moves to another version: re-warming its state");
                    state = rewarm(&host, &input.recent_obs, state, &request_id, deadline).await?;
                }
                let shadow = step_routing
                    .shadow_host(&host.version, session_bucket(&session_id))
                    .cloned();
                let mirrored = shadow.as_ref().map(|_| (obs.clone(), state.clone()));
                let on_canary = host.version != live.version;
                let mut result = host
                    .infer_counted(request_id.clone(), 1, obs.clone(), state, deadline)
                    .await;
                // A session on a canary whose step fails or is not sane moves to the live
                // version (and stays there).
                if on_canary && unusable(&result) {
                    tracing::info!(canary = %host.version, live = %live.version, "canary step unusable; the session moves to the live version");
                    let state =
                        rewarm(&live, &input.recent_obs, input.state, &request_id, deadline)
                            .await?;
                    result = live
                        .infer(request_id.clone(), 1, obs.clone(), state, deadline)
                        .await;
                    pick.migrated_from = Some(host.version.clone());
                    host = live;
                }
                let out = result?;
                if let (Some(shadow), Some((obs, state)), Some(model)) =
                    (shadow, mirrored, shadow_model)
                {
                    mirror::session_step(
                        model, shadow, session_id, request_id, obs, state, &out, deadline,
                    );
                }
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some((
                    format!("{node_name}/{}", out.served_by),
                    host.version.clone(),
                ));
                Ok(StepComputed {
                    output: StepOutput {
                        logits: out.logits,
                        value: out.values.first().copied().unwrap_or_default(),
                        action: out.actions.first().copied().unwrap_or_default(),
                    },
                    next_state: out.state,
                    moved_to: pick.migrated_from.map(|_| host.version.clone()),
                    observed: obs,
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
        let computed_by = served_by
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let served = match computed_by {
            Some((served, version)) => {
                response.model_version = version;
                served
            }
            // A replayed answer: the session table returned it without running a model.
            None => format!("{}/session-table", self.node.config.server.node_name),
        };
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
        let versions = self.routing(&req.name, "")?.hosts.keys().cloned().collect();
        Ok(Response::new(ModelMetadataResponse {
            name: host.name.clone(),
            versions,
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
