//! SB3 `ActorCriticPolicy` (`MlpPolicy`) with a discrete action head, in candle.
//!
//! PyTorch computes `action_net(policy_net(obs))` and `value_net(value_net(obs))` as two
//! separate chains. When both chains have the same depth (SB3's default), this module fuses
//! them at load time into one chain of wider matrices: the first layers stacked row-wise (they
//! share the input), the later ones block-diagonal, and the two heads into one
//! `[.., n_actions + 1]` output. The zero blocks add exact zeros, so the results equal the
//! separate chains up to summation order (~1e-7), with half the candle ops per call.
//!
//! Each dense layer is one matmul against a pre-transposed `[in, out]` weight followed, on the
//! CPU, by an in-place fused bias + activation (see [`fast_tanh`](fn@super::fast_tanh)).

use std::fmt;

use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor};

use super::config::{Activation, ModelConfig};
use super::error::ModelError;
use super::fast_tanh::{bias_tanh_rows, fast_tanh};
use super::policy::{Policy, PolicyError, PolicyOutput, PolicySpec};
use super::weights::{HostTensor, WEIGHTS_FILE, Weights};

/// One dense layer: `act(x @ wt + b)`.
pub(crate) struct Dense {
    wt: Tensor,
    b: Tensor,
    act: Option<Activation>,
    in_dim: usize,
    out_dim: usize,
}

impl fmt::Debug for Dense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Dense({} -> {}, {:?})",
            self.in_dim, self.out_dim, self.act
        )
    }
}

/// In-place `x = act(x + bias)` on a contiguous F32 `[rows, n]` CPU tensor.
struct BiasAct(Option<Activation>);

impl InplaceOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(dst), CpuStorage::F32(bias)) = (dst, bias) else {
            candle_core::bail!("bias-act: F32 only");
        };
        let (Some((d0, d1)), Some((b0, b1))) =
            (dst_l.contiguous_offsets(), bias_l.contiguous_offsets())
        else {
            candle_core::bail!("bias-act: contiguous tensors only");
        };
        let (dst, bias) = (&mut dst[d0..d1], &bias[b0..b1]);
        if bias.is_empty() || !dst.len().is_multiple_of(bias.len()) {
            candle_core::bail!(
                "bias-act: {} values do not fit rows of {}",
                dst.len(),
                bias.len()
            );
        }
        match self.0 {
            Some(Activation::Tanh) => bias_tanh_rows(dst, bias),
            Some(Activation::Relu) => {
                for row in dst.chunks_exact_mut(bias.len()) {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        *v = (*v + b).max(0.0);
                    }
                }
            }
            None => {
                for row in dst.chunks_exact_mut(bias.len()) {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Makes a matmul operand acceptable to every backend (the CPU takes any row stride).
pub(crate) fn matmul_operand(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        Ok(x.clone())
    } else {
        x.contiguous()
    }
}

impl Dense {
    /// `wt` is `[in_dim, out_dim]` row-major, `b` is `[out_dim]`.
    pub(crate) fn new(
        wt: Vec<f32>,
        b: Vec<f32>,
        in_dim: usize,
        out_dim: usize,
        act: Option<Activation>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            wt: Tensor::from_vec(wt, (in_dim, out_dim), device)?,
            b: Tensor::from_vec(b, out_dim, device)?,
            act,
            in_dim,
            out_dim,
        })
    }

    /// A `torch.nn.Linear` (`weight [out, in]`, `bias [out]`).
    pub(crate) fn from_linear(
        (w, b): &(HostTensor, HostTensor),
        act: Option<Activation>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = (w.rows(), w.cols());
        let wt = block_transpose(in_dim, out_dim, &[(w, 0, 0)]);
        Self::new(wt, b.data.clone(), in_dim, out_dim, act, device)
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = matmul_operand(x)?.matmul(&self.wt)?;
        if y.device().is_cpu() && y.dtype() == DType::F32 && y.is_contiguous() {
            // `y` is fresh from the matmul and owned here: updating it in place is safe.
            y.inplace_op2(&self.b, &BiasAct(self.act))?;
            return Ok(y);
        }
        let y = y.broadcast_add(&self.b)?;
        match self.act {
            Some(Activation::Tanh) => fast_tanh(&y),
            Some(Activation::Relu) => y.relu(),
            None => Ok(y),
        }
    }
}

/// Builds a row-major `[in_total, out_total]` matrix holding the transposes of the given
/// `[out, in]` weights at `(in_offset, out_offset)`, zeros elsewhere.
pub(crate) fn block_transpose(
    in_total: usize,
    out_total: usize,
    blocks: &[(&HostTensor, usize, usize)],
) -> Vec<f32> {
    let mut wt = vec![0f32; in_total * out_total];
    for &(w, in_off, out_off) in blocks {
        let (rows, cols) = (w.rows(), w.cols());
        for o in 0..rows {
            for i in 0..cols {
                wt[(in_off + i) * out_total + out_off + o] = w.data[o * cols + i];
            }
        }
    }
    wt
}

/// SB3's `mlp_extractor` + `action_net` + `value_net`.
#[derive(Debug)]
pub(crate) enum ActorCriticHead {
    /// Policy and value chains fused into one (shared input, equal depth).
    Fused {
        layers: Vec<Dense>,
        head: Dense,
        n_actions: usize,
    },
    /// Separate chains (different inputs or depths).
    Split {
        pi: Vec<Dense>,
        vf: Vec<Dense>,
        action: Dense,
        value: Dense,
    },
}

impl ActorCriticHead {
    /// Takes `mlp_extractor.*`, `action_net.*` and `value_net.*` from `weights`. With
    /// `shared_input` both chains read the same tensor and may be fused.
    pub(crate) fn load(
        weights: &mut Weights,
        config: &ModelConfig,
        in_dim: usize,
        shared_input: bool,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let act = Some(config.activation);
        let n_actions = config.n_actions;
        let chain = |weights: &mut Weights, prefix: &str, sizes: &[usize]| {
            let mut prev = in_dim;
            let mut layers = Vec::with_capacity(sizes.len());
            for (i, &size) in sizes.iter().enumerate() {
                // Linear layers sit at even indices of the nn.Sequential (odd = activation).
                layers.push(weights.take_linear(&format!("{prefix}.{}", 2 * i), prev, size)?);
                prev = size;
            }
            Ok::<_, ModelError>((layers, prev))
        };
        let (pi, pi_out) = chain(weights, "mlp_extractor.policy_net", &config.net_arch.pi)?;
        let (vf, vf_out) = chain(weights, "mlp_extractor.value_net", &config.net_arch.vf)?;
        let action = weights.take_linear("action_net", pi_out, n_actions)?;
        let value = weights.take_linear("value_net", vf_out, 1)?;
        let err = ModelError::candle("building the actor-critic layers");

        if !(shared_input && pi.len() == vf.len()) {
            let dense = |layers: &[(HostTensor, HostTensor)]| {
                layers
                    .iter()
                    .map(|l| Dense::from_linear(l, act, device))
                    .collect::<candle_core::Result<Vec<_>>>()
            };
            return (|| {
                Ok(ActorCriticHead::Split {
                    pi: dense(&pi)?,
                    vf: dense(&vf)?,
                    action: Dense::from_linear(&action, None, device)?,
                    value: Dense::from_linear(&value, None, device)?,
                })
            })()
            .map_err(err);
        }

        let build = || -> candle_core::Result<Self> {
            let mut layers = Vec::with_capacity(pi.len());
            // (in_dim of the pi part, of the vf part); equal offsets 0 while the input is shared.
            let (mut pi_in, mut vf_in, mut shared) = (in_dim, in_dim, true);
            for ((pw, pb), (vw, vb)) in pi.iter().zip(&vf) {
                let (p_out, v_out) = (pw.rows(), vw.rows());
                let in_total = if shared { in_dim } else { pi_in + vf_in };
                let vf_in_off = if shared { 0 } else { pi_in };
                let wt = block_transpose(
                    in_total,
                    p_out + v_out,
                    &[(pw, 0, 0), (vw, vf_in_off, p_out)],
                );
                let b = [pb.data.as_slice(), vb.data.as_slice()].concat();
                layers.push(Dense::new(wt, b, in_total, p_out + v_out, act, device)?);
                (pi_in, vf_in, shared) = (p_out, v_out, false);
            }
            let (aw, ab) = &action;
            let (vw, vb) = &value;
            let in_total = if shared { in_dim } else { pi_in + vf_in };
            let vf_in_off = if shared { 0 } else { pi_in };
            let wt = block_transpose(
                in_total,
                n_actions + 1,
                &[(aw, 0, 0), (vw, vf_in_off, n_actions)],
            );
            let b = [ab.data.as_slice(), vb.data.as_slice()].concat();
            let head = Dense::new(wt, b, in_total, n_actions + 1, None, device)?;
            Ok(ActorCriticHead::Fused {
                layers,
                head,
                n_actions,
            })
        };
        build().map_err(err)
    }

    /// Runs the heads; `vf_in` is ignored by a fused head (its input is shared).
    /// Returns `(logits [batch * n_actions], values [batch])` on the host.
    pub(crate) fn forward(
        &self,
        pi_in: &Tensor,
        vf_in: &Tensor,
    ) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        match self {
            ActorCriticHead::Fused {
                layers,
                head,
                n_actions,
            } => {
                let mut x = pi_in.clone();
                for layer in layers {
                    x = layer.forward(&x)?;
                }
                let out = head.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                let width = n_actions + 1;
                let batch = out.len() / width;
                let mut logits = Vec::with_capacity(batch * n_actions);
                let mut values = Vec::with_capacity(batch);
                for row in out.chunks_exact(width) {
                    logits.extend_from_slice(&row[..*n_actions]);
                    values.push(row[*n_actions]);
                }
                Ok((logits, values))
            }
            ActorCriticHead::Split {
                pi,
                vf,
                action,
                value,
            } => {
                let (mut p, mut v) = (pi_in.clone(), vf_in.clone());
                for layer in pi {
                    p = layer.forward(&p)?;
                }
                for layer in vf {
                    v = layer.forward(&v)?;
                }
                let logits = action.forward(&p)?.flatten_all()?.to_vec1::<f32>()?;
                let values = value.forward(&v)?.flatten_all()?.to_vec1::<f32>()?;
                Ok((logits, values))
            }
        }
    }
}

/// Greedy actions: the index of the first maximum of each row.
pub(crate) fn argmax_rows(logits: &[f32], n_actions: usize) -> Vec<i64> {
    logits
        .chunks_exact(n_actions)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate().skip(1) {
                if v > row[best] {
                    best = i;
                }
            }
            best as i64
        })
        .collect()
}

/// Checks `obs`/`state` lengths against the spec.
pub(crate) fn check_input(
    spec: &PolicySpec,
    obs: &[f32],
    batch: usize,
    state: &[f32],
) -> Result<(), PolicyError> {
    if obs.len() != batch * spec.obs_dim {
        return Err(PolicyError::Shape(format!(
            "obs has {} values, expected batch {batch} x obs_dim {} = {}",
            obs.len(),
            spec.obs_dim,
            batch * spec.obs_dim
        )));
    }
    if state.len() != batch * spec.state_dim {
        return Err(PolicyError::Shape(format!(
            "state has {} values, expected batch {batch} x state_dim {} = {}",
            state.len(),
            spec.state_dim,
            batch * spec.state_dim
        )));
    }
    Ok(())
}

/// SB3 `ActorCriticPolicy` for a discrete action space (`architecture: mlp_actor_critic`).
pub struct MlpActorCritic {
    spec: PolicySpec,
    device: Device,
    head: ActorCriticHead,
}

impl fmt::Debug for MlpActorCritic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlpActorCritic")
            .field("spec", &self.spec)
            .field("device", &self.device.location())
            .field("head", &self.head)
            .finish()
    }
}

impl MlpActorCritic {
    /// Builds the policy from `model.safetensors` bytes (SB3 `state_dict` key names).
    pub fn from_safetensors(
        config: &ModelConfig,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Self, ModelError> {
        let mut weights = Weights::from_bytes(WEIGHTS_FILE, bytes)?;
        let head = ActorCriticHead::load(&mut weights, config, config.obs_dim, true, device)?;
        weights.finish()?;
        Ok(Self {
            spec: config.spec(),
            device: device.clone(),
            head,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl Policy for MlpActorCritic {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn forward(
        &self,
        obs: &[f32],
        batch: usize,
        state: &[f32],
    ) -> Result<PolicyOutput, PolicyError> {
        check_input(&self.spec, obs, batch, state)?;
        if batch == 0 {
            return Ok(PolicyOutput::default());
        }
        let x = Tensor::from_slice(obs, (batch, self.spec.obs_dim), &self.device)?;
        let (logits, values) = self.head.forward(&x, &x)?;
        let actions = argmax_rows(&logits, self.spec.n_actions);
        Ok(PolicyOutput {
            logits,
            values,
            actions,
            state: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(
            argmax_rows(&[1.0, 3.0, 3.0, 0.0, -1.0, -2.0], 3),
            vec![1, 0]
        );
    }

    #[test]
    fn block_transpose_places_blocks() {
        let a = HostTensor {
            dims: vec![2, 1],
            data: vec![1.0, 2.0],
        };
        let b = HostTensor {
            dims: vec![1, 2],
            data: vec![3.0, 4.0],
        };
        // [in 3, out 3]: a^T at (0, 0), b^T at (1, 2).
        let wt = block_transpose(3, 3, &[(&a, 0, 0), (&b, 1, 2)]);
        assert_eq!(wt, vec![1.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 4.0]);
    }

    #[test]
    fn fused_and_split_heads_agree() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/ppo_mlp/1/model.safetensors"
        ))
        .unwrap();
        let config =
            ModelConfig::from_json(include_bytes!("../../models/ppo_mlp/1/config.json")).unwrap();
        let dev = Device::Cpu;
        let load = |shared| {
            let mut w = Weights::from_bytes(WEIGHTS_FILE, &bytes).unwrap();
            ActorCriticHead::load(&mut w, &config, 32, shared, &dev).unwrap()
        };
        let (fused, split) = (load(true), load(false));
        assert!(matches!(fused, ActorCriticHead::Fused { .. }));
        assert!(matches!(split, ActorCriticHead::Split { .. }));
        let obs: Vec<f32> = (0..5 * 32)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let x = Tensor::from_vec(obs, (5, 32), &dev).unwrap();
        let (fl, fv) = fused.forward(&x, &x).unwrap();
        let (sl, sv) = split.forward(&x, &x).unwrap();
        for (a, b) in fl.iter().chain(&fv).zip(sl.iter().chain(&sv)) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn generic_path_matches_cpu_fast_path() {
        // The fallback used off the CPU (broadcast_add + fast_tanh) on an F64 copy of a layer.
        let w = HostTensor {
            dims: vec![3, 2],
            data: vec![0.5, -1.0, 2.0, 0.25, -0.75, 1.5],
        };
        let b = HostTensor {
            dims: vec![3],
            data: vec![0.1, -0.2, 0.3],
        };
        let dense = Dense::from_linear(&(w, b), Some(Activation::Tanh), &Device::Cpu).unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0], [-0.5, 0.25]], &Device::Cpu).unwrap();
        let fast = dense.forward(&x).unwrap();
        let slow = (x
            .matmul(&dense.wt)
            .unwrap()
            .broadcast_add(&dense.b)
            .unwrap())
        .tanh()
        .unwrap();
        let diff = (fast - slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
