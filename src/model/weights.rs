//! Reading a `state_dict` from safetensors with errors that name the file and the tensor.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::error::ModelError;

/// The weights file inside a model version.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The tensors of one safetensors file, handed out by name with shape checks. Every tensor
/// must be taken exactly once: [`Weights::finish`] refuses leftovers.
#[derive(Debug)]
pub(crate) struct Weights {
    file: String,
    tensors: HashMap<String, Tensor>,
}

/// A dense row-major f32 matrix (or vector, with `dims.len() == 1`) on the host.
#[derive(Debug, Clone)]
pub(crate) struct HostTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn rows(&self) -> usize {
        self.dims[0]
    }

    pub fn cols(&self) -> usize {
        self.dims.get(1).copied().unwrap_or(1)
    }
}

impl Weights {
    /// Parses safetensors bytes (on the CPU; the policies move what they build to their device).
    pub fn from_bytes(file: &str, bytes: &[u8]) -> Result<Self, ModelError> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
            ModelError::Safetensors {
                file: file.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            file: file.to_string(),
            tensors,
        })
    }

    /// Takes tensor `name`, which must be F32 with shape `expected`.
    pub fn take(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor, ModelError> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor {
                file: self.file.clone(),
                tensor: name.to_string(),
            })?;
        if tensor.dims() != expected {
            return Err(ModelError::TensorShape {
                file: self.file.clone(),
                tensor: name.to_string(),
                actual: tensor.dims().to_vec(),
                expected: expected.to_vec(),
            });
        }
        if tensor.dtype() != DType::F32 {
            return Err(ModelError::TensorDtype {
                file: self.file.clone(),
                tensor: name.to_string(),
                dtype: format!("{:?}", tensor.dtype()),
            });
        }
        let data = tensor
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(ModelError::candle(format!(
                "{}: tensor `{name}`",
                self.file
            )))?;
        Ok(HostTensor {
            dims: expected.to_vec(),
            data,
        })
    }

    /// Takes a `torch.nn.Linear`'s `{prefix}.weight` `[out, in]` and `{prefix}.bias` `[out]`.
    pub fn take_linear(
        &mut self,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
    ) -> Result<(HostTensor, HostTensor), ModelError> {
        let w = self.take(&format!("{prefix}.weight"), &[out_dim, in_dim])?;
        let b = self.take(&format!("{prefix}.bias"), &[out_dim])?;
        Ok((w, b))
    }

    /// Refuses tensors nobody took (the file is not the configured architecture).
    pub fn finish(self) -> Result<(), ModelError> {
        let mut left: Vec<&String> = self.tensors.keys().collect();
        left.sort();
        match left.first() {
            None => Ok(()),
            Some(name) => Err(ModelError::UnexpectedTensor {
                file: self.file.clone(),
                tensor: (*name).clone(),
            }),
        }
    }
}
