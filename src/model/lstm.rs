//! sb3-contrib `RecurrentActorCriticPolicy` (`RecurrentPPO("MlpLstmPolicy")`, separate actor
//! and critic LSTMs), one step at a time for a batch of independent sessions.
//!
//! State row layout (`state_dim = 4 * hidden`): `[h_actor, c_actor, h_critic, c_critic]`;
//! zeros start a new episode. PyTorch's gate order is `i, f, g, o`:
//! `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`.
//!
//! Per call: the host packs each row as `[h_actor | obs | h_critic | c_actor | c_critic]`
//! into one tensor; the actor gates are one matmul over its first `hidden + obs_dim` columns
//! (weights `[W_hh | W_ih]`), the critic gates one over the next `obs_dim + hidden` columns
//! (`[W_ih | W_hh]`); a fused cell op (CPU, F32) adds the summed biases, applies the gates and
//! writes the next state directly in the row layout. The heads then read `h_actor'` and
//! `h_critic'` as strided views of that state.

use std::fmt;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};

use super::config::ModelConfig;
use super::error::ModelError;
use super::fast_tanh::{fast_tanh, sigmoid_f32, tanh_f32};
use super::mlp::{ActorCriticHead, argmax_rows, block_transpose, check_input, matmul_operand};
use super::policy::{Policy, PolicyError, PolicyOutput, PolicySpec};
use super::weights::{HostTensor, WEIGHTS_FILE, Weights};

/// The fused LSTM cell for both LSTMs: `(gates_actor, gates_critic, packed input) -> state`.
struct LstmCell<'a> {
    hidden: usize,
    obs_dim: usize,
    bias_actor: &'a [f32],
    bias_critic: &'a [f32],
}

#[inline(always)]
fn cell_generic(gates: &[f32], bias: &[f32], c_prev: &[f32], h_out: &mut [f32], c_out: &mut [f32]) {
    let h = c_prev.len();
    let (gi, rest) = gates.split_at(h);
    let (gf, rest) = rest.split_at(h);
    let (gg, go) = rest.split_at(h);
    let (bi, rest) = bias.split_at(h);
    let (bf, rest) = rest.split_at(h);
    let (bg, bo) = rest.split_at(h);
    let (go, bo, h_out, c_out) = (&go[..h], &bo[..h], &mut h_out[..h], &mut c_out[..h]);
    for j in 0..h {
        let i = sigmoid_f32(gi[j] + bi[j]);
        let f = sigmoid_f32(gf[j] + bf[j]);
        let g = tanh_f32(gg[j] + bg[j]);
        let o = sigmoid_f32(go[j] + bo[j]);
        let c = f * c_prev[j] + i * g;
        c_out[j] = c;
        h_out[j] = o * tanh_f32(c);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_avx2(gates: &[f32], bias: &[f32], c_prev: &[f32], h_out: &mut [f32], c_out: &mut [f32]) {
    cell_generic(gates, bias, c_prev, h_out, c_out)
}

fn cell(gates: &[f32], bias: &[f32], c_prev: &[f32], h_out: &mut [f32], c_out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::fast_tanh::has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { cell_avx2(gates, bias, c_prev, h_out, c_out) };
    }
    cell_generic(gates, bias, c_prev, h_out, c_out)
}

impl CustomOp3 for LstmCell<'_> {
    fn name(&self) -> &'static str {
        "lstm-cell"
    }

    fn cpu_fwd(
        &self,
        ga: &CpuStorage,
        ga_l: &Layout,
        gc: &CpuStorage,
        gc_l: &Layout,
        x: &CpuStorage,
        x_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(ga), CpuStorage::F32(gc), CpuStorage::F32(x)) = (ga, gc, x) else {
            candle_core::bail!("lstm-cell: F32 only");
        };
        let (Some((a0, a1)), Some((c0, c1)), Some((x0, x1))) = (
            ga_l.contiguous_offsets(),
            gc_l.contiguous_offsets(),
            x_l.contiguous_offsets(),
        ) else {
            candle_core::bail!("lstm-cell: contiguous tensors only");
        };
        let h = self.hidden;
        let width = 4 * h + self.obs_dim;
        let (ga, gc, x) = (&ga[a0..a1], &gc[c0..c1], &x[x0..x1]);
        let batch = x.len() / width;
        if ga.len() != batch * 4 * h || gc.len() != batch * 4 * h || x.len() != batch * width {
            candle_core::bail!("lstm-cell: inconsistent sizes");
        }
        let mut out = vec![0f32; batch * 4 * h];
        for (r, row) in out.chunks_exact_mut(4 * h).enumerate() {
            let xr = &x[r * width..(r + 1) * width];
            let (c_actor, c_critic) = xr[2 * h + self.obs_dim..].split_at(h);
            let (actor_out, critic_out) = row.split_at_mut(2 * h);
            let (ha, ca) = actor_out.split_at_mut(h);
            let (hc, cc) = critic_out.split_at_mut(h);
            cell(
                &ga[r * 4 * h..(r + 1) * 4 * h],
                self.bias_actor,
                c_actor,
                ha,
                ca,
            );
            cell(
                &gc[r * 4 * h..(r + 1) * 4 * h],
                self.bias_critic,
                c_critic,
                hc,
                cc,
            );
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, 4 * h))))
    }
}

/// sb3-contrib `RecurrentActorCriticPolicy` (`architecture: lstm_actor_critic`).
pub struct LstmActorCritic {
    spec: PolicySpec,
    device: Device,
    hidden: usize,
    /// `[hidden + obs_dim, 4 * hidden]`: transposed `[W_hh | W_ih]` of the actor LSTM.
    w_actor: Tensor,
    /// `[obs_dim + hidden, 4 * hidden]`: transposed `[W_ih | W_hh]` of the critic LSTM.
    w_critic: Tensor,
    /// `b_ih + b_hh` of each LSTM, on the host (the CPU cell op) and on the device.
    bias_actor: Vec<f32>,
    bias_critic: Vec<f32>,
    bias_actor_t: Tensor,
    bias_critic_t: Tensor,
    head: ActorCriticHead,
}

impl fmt::Debug for LstmActorCritic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LstmActorCritic")
            .field("spec", &self.spec)
            .field("device", &self.device.location())
            .field("hidden", &self.hidden)
            .field("head", &self.head)
            .finish()
    }
}

/// Takes one `nn.LSTM`'s tensors; returns `(W_ih, W_hh, b_ih + b_hh)`.
fn take_lstm(
    weights: &mut Weights,
    prefix: &str,
    obs_dim: usize,
    hidden: usize,
) -> Result<(HostTensor, HostTensor, Vec<f32>), ModelError> {
    let w_ih = weights.take(&format!("{prefix}.weight_ih_l0"), &[4 * hidden, obs_dim])?;
    let w_hh = weights.take(&format!("{prefix}.weight_hh_l0"), &[4 * hidden, hidden])?;
    let b_ih = weights.take(&format!("{prefix}.bias_ih_l0"), &[4 * hidden])?;
    let b_hh = weights.take(&format!("{prefix}.bias_hh_l0"), &[4 * hidden])?;
    let bias = b_ih
        .data
        .iter()
        .zip(&b_hh.data)
        .map(|(a, b)| a + b)
        .collect();
    Ok((w_ih, w_hh, bias))
}

impl LstmActorCritic {
    /// Builds the policy from `model.safetensors` bytes (sb3-contrib `state_dict` key names).
    pub fn from_safetensors(
        config: &ModelConfig,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Self, ModelError> {
        let hidden = config
            .lstm_hidden_size
            .ok_or_else(|| ModelError::Config("lstm_actor_critic needs lstm_hidden_size".into()))?;
        let obs_dim = config.obs_dim;
        let mut weights = Weights::from_bytes(WEIGHTS_FILE, bytes)?;
        let (a_ih, a_hh, bias_actor) = take_lstm(&mut weights, "lstm_actor", obs_dim, hidden)?;
        let (c_ih, c_hh, bias_critic) = take_lstm(&mut weights, "lstm_critic", obs_dim, hidden)?;
        let head = ActorCriticHead::load(&mut weights, config, hidden, false, device)?;
        weights.finish()?;

        let k = hidden + obs_dim;
        let build = || -> candle_core::Result<Self> {
            let wa = block_transpose(k, 4 * hidden, &[(&a_hh, 0, 0), (&a_ih, hidden, 0)]);
            let wc = block_transpose(k, 4 * hidden, &[(&c_ih, 0, 0), (&c_hh, obs_dim, 0)]);
            Ok(Self {
                spec: config.spec(),
                device: device.clone(),
                hidden,
                w_actor: Tensor::from_vec(wa, (k, 4 * hidden), device)?,
                w_critic: Tensor::from_vec(wc, (k, 4 * hidden), device)?,
                bias_actor_t: Tensor::from_slice(&bias_actor, 4 * hidden, device)?,
                bias_critic_t: Tensor::from_slice(&bias_critic, 4 * hidden, device)?,
                bias_actor,
                bias_critic,
                head,
            })
        };
        build().map_err(ModelError::candle("building the LSTM layers"))
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The LSTM hidden size (`state_dim / 4`).
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// The cell with candle ops, for devices without the fused CPU op.
    fn cell_generic(
        &self,
        gates: &Tensor,
        bias: &Tensor,
        c_prev: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let gates = gates.broadcast_add(bias)?.chunk(4, 1)?;
        let sigmoid = |t: &Tensor| candle_nn::ops::sigmoid(t);
        let (i, f, g, o) = (
            sigmoid(&gates[0])?,
            sigmoid(&gates[1])?,
            fast_tanh(&gates[2])?,
            sigmoid(&gates[3])?,
        );
        let c = ((f * c_prev)? + (i * g)?)?;
        let h = (o * fast_tanh(&c)?)?;
        Ok((h, c))
    }

    fn step(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (h, o) = (self.hidden, self.spec.obs_dim);
        let ga = matmul_operand(&x.narrow(1, 0, h + o)?)?.matmul(&self.w_actor)?;
        let gc = matmul_operand(&x.narrow(1, h, o + h)?)?.matmul(&self.w_critic)?;
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            let op = LstmCell {
                hidden: h,
                obs_dim: o,
                bias_actor: &self.bias_actor,
                bias_critic: &self.bias_critic,
            };
            return ga.apply_op3_no_bwd(&gc, x, &op);
        }
        let (ha, ca) = self.cell_generic(&ga, &self.bias_actor_t, &x.narrow(1, 2 * h + o, h)?)?;
        let (hc, cc) = self.cell_generic(&gc, &self.bias_critic_t, &x.narrow(1, 3 * h + o, h)?)?;
        Tensor::cat(&[ha, ca, hc, cc], 1)
    }
}

impl Policy for LstmActorCritic {
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
        let (h, o) = (self.hidden, self.spec.obs_dim);
        let width = 4 * h + o;
        let mut packed = Vec::with_capacity(batch * width);
        for (s, ob) in state.chunks_exact(4 * h).zip(obs.chunks_exact(o)) {
            let (h_actor, c_actor, h_critic, c_critic) =
                (&s[..h], &s[h..2 * h], &s[2 * h..3 * h], &s[3 * h..]);
            for part in [h_actor, ob, h_critic, c_actor, c_critic] {
                packed.extend_from_slice(part);
            }
        }
        let x = Tensor::from_vec(packed, (batch, width), &self.device)?;
        let next = self.step(&x)?;
        let (logits, values) = self
            .head
            .forward(&next.narrow(1, 0, h)?, &next.narrow(1, 2 * h, h)?)?;
        let actions = argmax_rows(&logits, self.spec.n_actions);
        let state = next.flatten_all()?.to_vec1::<f32>()?;
        Ok(PolicyOutput {
            logits,
            values,
            actions,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LstmActorCritic {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/lstm_policy/1");
        let config =
            ModelConfig::from_json(&std::fs::read(format!("{dir}/config.json")).unwrap()).unwrap();
        let bytes = std::fs::read(format!("{dir}/model.safetensors")).unwrap();
        LstmActorCritic::from_safetensors(&config, &bytes, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_cell_matches_candle_ops() {
        let p = policy();
        let (h, o) = (p.hidden, p.spec.obs_dim);
        let batch = 3;
        let x: Vec<f32> = (0..batch * (4 * h + o))
            .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 60.0)
            .collect();
        let x = Tensor::from_vec(x, (batch, 4 * h + o), &Device::Cpu).unwrap();
        let fused = p.step(&x).unwrap();
        let ga = x.narrow(1, 0, h + o).unwrap().matmul(&p.w_actor).unwrap();
        let gc = x.narrow(1, h, o + h).unwrap().matmul(&p.w_critic).unwrap();
        let (ha, ca) = p
            .cell_generic(&ga, &p.bias_actor_t, &x.narrow(1, 2 * h + o, h).unwrap())
            .unwrap();
        let (hc, cc) = p
            .cell_generic(&gc, &p.bias_critic_t, &x.narrow(1, 3 * h + o, h).unwrap())
            .unwrap();
        let generic = Tensor::cat(&[ha, ca, hc, cc], 1).unwrap();
        let diff = (fused - generic).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 2e-6);
    }

    #[test]
    fn rejects_bad_input_lengths() {
        let p = policy();
        let obs = vec![0f32; 2 * 32];
        let err = p.forward(&obs, 2, &[]).unwrap_err().to_string();
        assert!(
            err.contains("state has 0 values, expected batch 2 x state_dim 256"),
            "{err}"
        );
        assert!(p.forward(&obs[..31], 1, &vec![0f32; 256]).is_err());
        assert_eq!(p.forward(&[], 0, &[]).unwrap(), PolicyOutput::default());
    }

    #[test]
    fn rows_are_independent_sessions() {
        let p = policy();
        let obs: Vec<f32> = (0..3 * 32).map(|i| (i as f32 * 0.37).sin()).collect();
        let state: Vec<f32> = (0..3 * 256)
            .map(|i| (i as f32 * 0.11).cos() * 0.5)
            .collect();
        let all = p.forward(&obs, 3, &state).unwrap();
        for r in 0..3 {
            let one = p
                .forward(
                    &obs[r * 32..(r + 1) * 32],
                    1,
                    &state[r * 256..(r + 1) * 256],
                )
                .unwrap();
            for (a, b) in one.state.iter().zip(&all.state[r * 256..(r + 1) * 256]) {
                assert!((a - b).abs() < 1e-6);
            }
            assert_eq!(one.actions[0], all.actions[r]);
        }
    }
}
