//! Decoding Open Inference Protocol input tensors into rows of `f32`, and encoding outputs.
//!
//! Inputs may arrive as typed `contents` or as `raw_input_contents` (little-endian bytes, what
//! Triton clients send by default). Every way an input can be wrong is caught here and named:
//! missing or unexpected tensor, wrong datatype, wrong shape, a byte count that does not match
//! the shape, and NaN or infinite values.

use thiserror::Error;

use super::proto::inference::{
    InferTensorContents, ModelInferRequest, model_infer_response::InferOutputTensor,
};

/// Name of the observation input tensor.
pub const OBS_INPUT: &str = "obs";
/// Name of the greedy-action output tensor (INT64, `[batch]`).
pub const ACTION_OUTPUT: &str = "action";
/// Name of the logits output tensor (FP32, `[batch, n_actions]`).
pub const LOGITS_OUTPUT: &str = "logits";
/// Name of the value output tensor (FP32, `[batch, 1]`).
pub const VALUE_OUTPUT: &str = "value";
/// Every output tensor, in the order they are returned when none are requested.
pub const OUTPUTS: [&str; 3] = [ACTION_OUTPUT, LOGITS_OUTPUT, VALUE_OUTPUT];

/// A bad input tensor; the message names what was wrong.
#[derive(Debug, Error, PartialEq)]
pub enum TensorError {
    /// The request carries no `obs` input.
    #[error(
        "missing input tensor `{OBS_INPUT}`; this model takes exactly one input `{OBS_INPUT}` (FP32, shape [batch, {obs_dim}])"
    )]
    Missing {
        /// Observation width.
        obs_dim: usize,
    },
    /// An input other than `obs`.
    #[error("unexpected input tensor `{0}`; this model takes exactly one input `{OBS_INPUT}`")]
    Unexpected(String),
    /// A datatype other than FP32.
    #[error("input `{OBS_INPUT}` has datatype {0}; expected FP32")]
    Datatype(String),
    /// A shape other than `[batch, obs_dim]`.
    #[error(
        "input `{OBS_INPUT}` has shape {got:?}; expected [batch, {obs_dim}] with 1 <= batch <= {max_rows}"
    )]
    Shape {
        /// The shape sent.
        got: Vec<i64>,
        /// Observation width.
        obs_dim: usize,
        /// Largest batch accepted.
        max_rows: usize,
    },
    /// The data does not match the shape.
    #[error("input `{OBS_INPUT}` holds {got} values but shape {shape:?} needs {expected}")]
    Size {
        /// Values sent.
        got: usize,
        /// Values the shape needs.
        expected: usize,
        /// The shape sent.
        shape: Vec<i64>,
    },
    /// Raw and typed contents mixed, or raw contents that do not line up with the inputs.
    #[error("{0}")]
    Encoding(String),
    /// A NaN or infinite observation.
    #[error("input `{OBS_INPUT}` has a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// The value.
        value: f32,
    },
    /// An output that the model does not produce.
    #[error("unknown output `{0}`; this model produces {OUTPUTS:?}")]
    UnknownOutput(String),
}

/// Decoded observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// Rows in the batch.
    pub rows: usize,
    /// `rows * obs_dim` values.
    pub values: Vec<f32>,
}

/// Decodes and validates the observation input of `req`.
pub fn decode_observations(
    req: &ModelInferRequest,
    obs_dim: usize,
    max_rows: usize,
) -> Result<Observations, TensorError> {
    if let Some(other) = req.inputs.iter().find(|i| i.name != OBS_INPUT) {
        return Err(TensorError::Unexpected(other.name.clone()));
    }
    let (index, input) = match req.inputs.as_slice() {
        [] => return Err(TensorError::Missing { obs_dim }),
        [one] => (0, one),
        _ => {
            return Err(TensorError::Encoding(format!(
                "input `{OBS_INPUT}` is given {} times",
                req.inputs.len()
            )));
        }
    };
    if input.datatype != "FP32" {
        return Err(TensorError::Datatype(input.datatype.clone()));
    }
    let shape_err = || TensorError::Shape {
        got: input.shape.clone(),
        obs_dim,
        max_rows,
    };
    let rows = match input.shape.as_slice() {
        [b, d] if *d == obs_dim as i64 && *b >= 1 && *b <= max_rows as i64 => *b as usize,
        _ => return Err(shape_err()),
    };
    let expected = rows * obs_dim;
    let values = if req.raw_input_contents.is_empty() {
        let contents = input.contents.as_ref().map(|c| c.fp32_contents.clone());
        contents.unwrap_or_default()
    } else {
        if input.contents.is_some() {
            return Err(TensorError::Encoding(format!(
                "input `{OBS_INPUT}` has both typed contents and raw_input_contents; send one"
            )));
        }
        if req.raw_input_contents.len() != req.inputs.len() {
            return Err(TensorError::Encoding(format!(
                "raw_input_contents has {} entries for {} inputs",
                req.raw_input_contents.len(),
                req.inputs.len()
            )));
        }
        let raw = &req.raw_input_contents[index];
        if !raw.len().is_multiple_of(4) {
            return Err(TensorError::Encoding(format!(
                "raw contents of `{OBS_INPUT}` are {} bytes, not a whole number of FP32 values",
                raw.len()
            )));
        }
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    if values.len() != expected {
        return Err(TensorError::Size {
            got: values.len(),
            expected,
            shape: input.shape.clone(),
        });
    }
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(TensorError::NonFinite {
            row: pos / obs_dim,
            col: pos % obs_dim,
            value: values[pos],
        });
    }
    Ok(Observations { rows, values })
}

/// Which outputs to return, in order: those requested, or all of them.
pub fn requested_outputs(req: &ModelInferRequest) -> Result<Vec<&'static str>, TensorError> {
    if req.outputs.is_empty() {
        return Ok(OUTPUTS.to_vec());
    }
    req.outputs
        .iter()
        .map(|o| {
            OUTPUTS
                .iter()
                .find(|name| **name == o.name)
                .copied()
                .ok_or_else(|| TensorError::UnknownOutput(o.name.clone()))
        })
        .collect()
}

/// Output tensors of one answer.
pub struct OutputData<'a> {
    /// Rows.
    pub rows: usize,
    /// Actions per row.
    pub n_actions: usize,
    /// `rows` actions.
    pub actions: &'a [i64],
    /// `rows * n_actions` logits.
    pub logits: &'a [f32],
    /// `rows` values.
    pub values: &'a [f32],
}

/// Encodes the chosen outputs as metadata plus raw little-endian contents (what Triton
/// returns, and what `tritonclient`'s `as_numpy` reads).
pub fn encode_outputs(
    names: &[&'static str],
    data: &OutputData<'_>,
) -> (Vec<InferOutputTensor>, Vec<Vec<u8>>) {
    let rows = data.rows as i64;
    let mut tensors = Vec::with_capacity(names.len());
    let mut raw = Vec::with_capacity(names.len());
    for name in names {
        let (datatype, shape, bytes) = match *name {
            ACTION_OUTPUT => (
                "INT64",
                vec![rows],
                data.actions.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            LOGITS_OUTPUT => (
                "FP32",
                vec![rows, data.n_actions as i64],
                data.logits.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            _ => (
                "FP32",
                vec![rows, 1],
                data.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        };
        tensors.push(InferOutputTensor {
            name: (*name).to_owned(),
            datatype: datatype.to_owned(),
            shape,
            parameters: Default::default(),
            contents: None::<InferTensorContents>,
        });
        raw.push(bytes);
    }
    (tensors, raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::inference::model_infer_request::{
        InferInputTensor, InferRequestedOutputTensor,
    };

    fn request(shape: Vec<i64>, values: &[f32], raw: bool) -> ModelInferRequest {
        let mut input = InferInputTensor {
            name: OBS_INPUT.into(),
            datatype: "FP32".into(),
            shape,
            ..Default::default()
        };
        let mut req = ModelInferRequest::default();
        if raw {
            req.raw_input_contents = vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()];
        } else {
            input.contents = Some(InferTensorContents {
                fp32_contents: values.to_vec(),
                ..Default::default()
            });
        }
        req.inputs.push(input);
        req
    }

    #[test]
    fn raw_and_typed_contents_decode_alike() {
        let v = [1.0, 2.0, 3.0, 4.0];
        let a = decode_observations(&request(vec![2, 2], &v, true), 2, 8).expect("raw");
        let b = decode_observations(&request(vec![2, 2], &v, false), 2, 8).expect("typed");
        assert_eq!(a, b);
        assert_eq!(a.rows, 2);
    }

    #[test]
    fn bad_inputs_are_named() {
        let v = [1.0, 2.0];
        let e = decode_observations(&request(vec![1, 3], &v, true), 2, 8).unwrap_err();
        assert!(matches!(e, TensorError::Shape { .. }), "{e}");
        let e = decode_observations(&request(vec![2, 2], &v, true), 2, 8).unwrap_err();
        assert!(
            matches!(
                e,
                TensorError::Size {
                    got: 2,
                    expected: 4,
                    ..
                }
            ),
            "{e}"
        );
        let e = decode_observations(&request(vec![9, 2], &[0.0; 18], true), 2, 8).unwrap_err();
        assert!(e.to_string().contains("batch <= 8"), "{e}");
        let e =
            decode_observations(&request(vec![1, 2], &[0.0, f32::NAN], false), 2, 8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `obs` has a non-finite value (NaN) at row 0, column 1"
        );
        let mut r = request(vec![1, 2], &v, true);
        r.inputs[0].datatype = "FP64".into();
        assert_eq!(
            decode_observations(&r, 2, 8).unwrap_err(),
            TensorError::Datatype("FP64".into())
        );
        let mut r = request(vec![1, 2], &v, true);
        r.inputs[0].name = "observation".into();
        assert!(
            decode_observations(&r, 2, 8)
                .unwrap_err()
                .to_string()
                .contains("observation")
        );
        let mut r = request(vec![1, 2], &v, true);
        r.raw_input_contents[0].pop();
        assert!(matches!(
            decode_observations(&r, 2, 8),
            Err(TensorError::Encoding(_))
        ));
        assert_eq!(
            decode_observations(&ModelInferRequest::default(), 2, 8).unwrap_err(),
            TensorError::Missing { obs_dim: 2 }
        );
    }

    #[test]
    fn outputs_are_chosen_and_encoded() {
        let mut r = request(vec![1, 2], &[0.0, 0.0], true);
        assert_eq!(requested_outputs(&r).expect("all"), OUTPUTS.to_vec());
        r.outputs.push(InferRequestedOutputTensor {
            name: VALUE_OUTPUT.into(),
            ..Default::default()
        });
        assert_eq!(requested_outputs(&r).expect("value"), vec![VALUE_OUTPUT]);
        r.outputs.push(InferRequestedOutputTensor {
            name: "q".into(),
            ..Default::default()
        });
        assert_eq!(
            requested_outputs(&r),
            Err(TensorError::UnknownOutput("q".into()))
        );
        let data = OutputData {
            rows: 1,
            n_actions: 2,
            actions: &[1],
            logits: &[0.5, 1.5],
            values: &[2.0],
        };
        let (tensors, raw) = encode_outputs(&OUTPUTS, &data);
        assert_eq!(tensors[0].shape, vec![1]);
        assert_eq!(tensors[1].shape, vec![1, 2]);
        assert_eq!(raw[0], 1i64.to_le_bytes().to_vec());
        assert_eq!(raw[1].len(), 8);
    }
}
