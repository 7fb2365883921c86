//! Building `ModelInfer` requests (observations, Triton sequence parameters), naming failures
//! and checking answers.

use std::collections::HashMap;

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use crate::api::proto::inference::{
    InferParameter, ModelInferRequest, ModelInferResponse, infer_parameter::ParameterChoice,
    model_infer_request::InferInputTensor,
};

/// Name of the observation input tensor.
pub const INPUT_NAME: &str = "obs";
/// Name of the action output tensor (INT64 `[B]`).
pub const ACTION_OUTPUT: &str = "action";
/// Triton's sequence correlation id parameter.
pub const PARAM_SEQUENCE_ID: &str = "sequence_id";
/// Triton's "first step of the sequence" flag.
pub const PARAM_SEQUENCE_START: &str = "sequence_start";
/// Triton's "last step of the sequence" flag.
pub const PARAM_SEQUENCE_END: &str = "sequence_end";
/// fudo's 1-based step number, which makes retried steps idempotent.
pub const PARAM_SEQUENCE_SEQ: &str = "sequence_seq";

/// Upper bound on the memory the observation pool may take.
const POOL_BYTES: usize = 8 << 20;
/// Most distinct payloads in the pool.
const POOL_MAX: usize = 64;

/// A fixed set of pre-encoded observation payloads (`B × obs_dim` f32 little-endian, uniform in
/// `[-1, 1]`), derived deterministically from the seed; request `n` uses payload `n % len`.
#[derive(Debug, Clone)]
pub struct ObsPool {
    payloads: Vec<Vec<u8>>,
    batch: usize,
    obs_dim: usize,
}

impl ObsPool {
    /// Draws the pool for `batch` rows of `obs_dim` features from `seed`.
    pub fn new(seed: u64, batch: usize, obs_dim: usize) -> Self {
        let bytes = batch * obs_dim * 4;
        let len = (POOL_BYTES / bytes.max(1)).clamp(1, POOL_MAX);
        let mut rng = StdRng::seed_from_u64(seed);
        let payloads = (0..len)
            .map(|_| {
                let obs: Vec<f32> = (0..batch * obs_dim)
                    .map(|_| rng.random_range(-1.0f32..=1.0))
                    .collect();
                encode_f32(&obs)
            })
            .collect();
        Self {
            payloads,
            batch,
            obs_dim,
        }
    }

    /// Rows per request.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The `n`-th payload (cycling).
    pub fn payload(&self, n: u64) -> &[u8] {
        // The pool is never empty (`len >= 1`); `n % len` fits in usize.
        let i = usize::try_from(n % self.payloads.len() as u64).unwrap_or(0);
        &self.payloads[i]
    }
}

/// Little-endian f32 bytes, as `raw_input_contents` carries them.
pub fn encode_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`encode_f32`] (a trailing partial value is ignored).
pub fn decode_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One step of a recurrent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceStep {
    /// Correlation id (non-zero).
    pub sequence_id: i64,
    /// 1-based step number.
    pub seq: i64,
    /// First step: the server starts (or restarts) the session.
    pub start: bool,
    /// Last step: the server may drop the session afterwards.
    pub end: bool,
}

fn param(choice: ParameterChoice) -> InferParameter {
    InferParameter {
        parameter_choice: Some(choice),
    }
}

/// A `ModelInfer` request for `model` carrying `pool.payload(n)` as `obs` `[B, obs_dim]` FP32,
/// plus the sequence parameters when `step` is given.
pub fn build_request(
    model: &str,
    pool: &ObsPool,
    n: u64,
    id: String,
    step: Option<SequenceStep>,
) -> ModelInferRequest {
    let mut parameters = HashMap::new();
    if let Some(s) = step {
        parameters.insert(
            PARAM_SEQUENCE_ID.to_owned(),
            param(ParameterChoice::Int64Param(s.sequence_id)),
        );
        parameters.insert(
            PARAM_SEQUENCE_START.to_owned(),
            param(ParameterChoice::BoolParam(s.start)),
        );
        parameters.insert(
            PARAM_SEQUENCE_END.to_owned(),
            param(ParameterChoice::BoolParam(s.end)),
        );
        parameters.insert(
            PARAM_SEQUENCE_SEQ.to_owned(),
            param(ParameterChoice::Int64Param(s.seq)),
        );
    }
    ModelInferRequest {
        model_name: model.to_owned(),
        model_version: String::new(),
        id,
        parameters,
        inputs: vec![InferInputTensor {
            name: INPUT_NAME.to_owned(),
            datatype: "FP32".to_owned(),
            shape: vec![to_i64(pool.batch), to_i64(pool.obs_dim)],
            parameters: HashMap::new(),
            contents: None,
        }],
        outputs: Vec::new(),
        raw_input_contents: vec![pool.payload(n).to_vec()],
    }
}

fn to_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The canonical (upper snake case) name of a gRPC status code, as `errors_by_status` keys it
/// (the same names the metrics use).
pub use crate::metrics::code_name;

/// Failure reason of an answer that is a gRPC success but not a usable inference result.
pub const BAD_RESPONSE: &str = "bad_response";

/// Whether a response carries an `action` output of `batch` INT64 values, either as raw bytes
/// (in output order) or as typed contents.
pub fn response_is_valid(resp: &ModelInferResponse, batch: usize) -> bool {
    let Some(i) = resp.outputs.iter().position(|o| o.name == ACTION_OUTPUT) else {
        return false;
    };
    if let Some(raw) = resp.raw_output_contents.get(i) {
        return raw.len() == batch * 8;
    }
    resp.outputs[i]
        .contents
        .as_ref()
        .is_some_and(|c| c.int64_contents.len() == batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::inference::{
        InferTensorContents, model_infer_response::InferOutputTensor,
    };

    #[test]
    fn encoding_is_little_endian() {
        assert_eq!(encode_f32(&[1.0, -2.5]), {
            let mut v = 1.0f32.to_le_bytes().to_vec();
            v.extend((-2.5f32).to_le_bytes());
            v
        });
    }

    #[test]
    fn stateless_request_shape_and_bytes() {
        let pool = ObsPool::new(7, 4, 32);
        let req = build_request("ppo_mlp", &pool, 3, "r3".into(), None);
        assert_eq!(req.model_name, "ppo_mlp");
        assert_eq!(req.model_version, "");
        assert_eq!(req.id, "r3");
        assert!(req.parameters.is_empty());
        assert_eq!(req.inputs.len(), 1);
        let input = &req.inputs[0];
        assert_eq!(input.name, "obs");
        assert_eq!(input.datatype, "FP32");
        assert_eq!(input.shape, vec![4, 32]);
        assert!(input.contents.is_none());
        assert_eq!(req.raw_input_contents.len(), 1);
        assert_eq!(req.raw_input_contents[0].len(), 4 * 32 * 4);
        let obs = decode_f32(&req.raw_input_contents[0]);
        assert!(obs.iter().all(|v| (-1.0..=1.0).contains(v)));
        // Not all identical: actually random.
        assert!(obs.iter().any(|v| (v - obs[0]).abs() > 1e-6));
    }

    #[test]
    fn observations_are_deterministic_in_the_seed() {
        let a = ObsPool::new(42, 2, 32);
        let b = ObsPool::new(42, 2, 32);
        let c = ObsPool::new(43, 2, 32);
        assert_eq!(a.payload(0), b.payload(0));
        assert_eq!(a.payload(5), b.payload(5));
        assert_ne!(a.payload(0), c.payload(0));
        assert_ne!(a.payload(0), a.payload(1));
        // Cycling.
        assert_eq!(a.payload(0), a.payload(POOL_MAX as u64));
    }

    #[test]
    fn pool_memory_is_bounded() {
        let pool = ObsPool::new(1, 16_384, 32); // 2 MiB per payload
        assert!(pool.payloads.len() * pool.payload(0).len() <= POOL_BYTES);
        assert_eq!(pool.payload(0).len(), 16_384 * 32 * 4);
    }

    #[test]
    fn sequence_parameters() {
        let pool = ObsPool::new(1, 1, 32);
        let step = SequenceStep {
            sequence_id: 99,
            seq: 1,
            start: true,
            end: false,
        };
        let req = build_request("lstm_policy", &pool, 0, "s".into(), Some(step));
        let p = |k: &str| {
            req.parameters
                .get(k)
                .and_then(|p| p.parameter_choice.clone())
        };
        assert_eq!(p("sequence_id"), Some(ParameterChoice::Int64Param(99)));
        assert_eq!(p("sequence_start"), Some(ParameterChoice::BoolParam(true)));
        assert_eq!(p("sequence_end"), Some(ParameterChoice::BoolParam(false)));
        assert_eq!(p("sequence_seq"), Some(ParameterChoice::Int64Param(1)));
        assert_eq!(req.parameters.len(), 4);
        assert_eq!(req.inputs[0].shape, vec![1, 32]);
        assert_eq!(req.raw_input_contents[0].len(), 32 * 4);
    }

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
    }

    fn output(name: &str, contents: Option<InferTensorContents>) -> InferOutputTensor {
        InferOutputTensor {
            name: name.into(),
            datatype: "INT64".into(),
            shape: vec![2],
            parameters: HashMap::new(),
            contents,
        }
    }

    #[test]
    fn response_validation() {
        let good = ModelInferResponse {
            outputs: vec![output("action", None), output("logits", None)],
            raw_output_contents: vec![vec![0; 16], vec![0; 24]],
            ..Default::default()
        };
        assert!(response_is_valid(&good, 2));
        assert!(!response_is_valid(&good, 3));
        let typed = ModelInferResponse {
            outputs: vec![output(
                "action",
                Some(InferTensorContents {
                    int64_contents: vec![1, 2],
                    ..Default::default()
                }),
            )],
            ..Default::default()
        };
        assert!(response_is_valid(&typed, 2));
        assert!(!response_is_valid(&ModelInferResponse::default(), 1));
    }
}
