//! Building Open Inference Protocol requests and reading responses, for integration tests.

#![allow(dead_code)]

use std::collections::HashMap;

use fudo::api::proto::inference::{
    InferParameter, ModelInferRequest, ModelInferResponse, infer_parameter::ParameterChoice,
    model_infer_request::InferInputTensor,
};

/// A request with `rows` observation rows of `values` as raw FP32 contents.
pub fn obs_request(model: &str, rows: usize, values: &[f32]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        id: "test".into(),
        inputs: vec![InferInputTensor {
            name: "obs".into(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, (values.len() / rows.max(1)) as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    }
}

/// A parameter.
pub fn param(c: ParameterChoice) -> InferParameter {
    InferParameter {
        parameter_choice: Some(c),
    }
}

/// Step `seq` of recurrent session `session` of `lstm_policy` (`sequence_start` on step 1).
pub fn step_request(session: &str, seq: i64, obs: &[f32]) -> ModelInferRequest {
    let mut req = obs_request("lstm_policy", 1, obs);
    req.parameters = HashMap::from([
        (
            "sequence_id".to_owned(),
            param(ParameterChoice::StringParam(session.into())),
        ),
        (
            "sequence_start".to_owned(),
            param(ParameterChoice::BoolParam(seq == 1)),
        ),
        (
            "sequence_seq".to_owned(),
            param(ParameterChoice::Int64Param(seq)),
        ),
    ]);
    req
}

/// Little-endian FP32 contents as values.
pub fn f32s(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// An int64 response parameter.
pub fn int_param(r: &ModelInferResponse, name: &str) -> Option<i64> {
    match r.parameters.get(name)?.parameter_choice.as_ref()? {
        ParameterChoice::Int64Param(v) => Some(*v),
        _ => None,
    }
}
