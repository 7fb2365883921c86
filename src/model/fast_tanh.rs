//! A vectorizable `tanh` for f32, as a candle custom op.
//!
//! candle's CPU `tanh` calls the scalar libm function (6–12 ns per element), which dominates
//! an MLP forward from batch ~8 upward. This is the rational approximation Eigen uses
//! (`generic_fast_tanh_float`): odd polynomial of degree 13 over even polynomial of degree 6
//! on the input clamped to ±7.9053, max abs error ~5e-7 against `f64::tanh`. The loop is
//! branch-free so the compiler vectorizes it; on x86-64 an AVX2+FMA copy is picked at run time.
//!
//! [`fast_tanh`] is the entry point: F32 tensors on the CPU go through the custom op, anything
//! else (other dtypes, CUDA) falls back to candle's `Tensor::tanh`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

const CLAMP: f32 = 7.905_311;
const TINY: f32 = 0.0004;
const A1: f32 = 4.893_524_6e-3;
const A3: f32 = 6.372_619_3e-4;
const A5: f32 = 1.485_722_4e-5;
const A7: f32 = 5.122_297e-8;
const A9: f32 = -8.604_672e-11;
const A11: f32 = 2.000_188e-13;
const A13: f32 = -2.760_768_5e-16;
const B0: f32 = 4.893_525e-3;
const B2: f32 = 2.268_434_6e-3;
const B4: f32 = 1.185_347_1e-4;
const B6: f32 = 1.198_258_4e-6;

/// `tanh(x)` for one value, with the same formula as the vectorized loops.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    // `f32::clamp` keeps NaN and compiles to branch-free min/max.
    let c = x.clamp(-CLAMP, CLAMP);
    let x2 = c * c;
    let mut p = A13;
    p = p * x2 + A11;
    p = p * x2 + A9;
    p = p * x2 + A7;
    p = p * x2 + A5;
    p = p * x2 + A3;
    p = p * x2 + A1;
    p *= c;
    let mut q = B6;
    q = q * x2 + B4;
    q = q * x2 + B2;
    q = q * x2 + B0;
    let r = p / q;
    if x.abs() < TINY { x } else { r }
}

/// `sigmoid(x) = (1 + tanh(x / 2)) / 2`, max abs error ~2.5e-7.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    0.5 + 0.5 * tanh_f32(0.5 * x)
}

#[inline(always)]
fn tanh_into_generic(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = tanh_f32(s);
    }
}

#[inline(always)]
fn tanh_in_place_generic(buf: &mut [f32]) {
    for v in buf.iter_mut() {
        *v = tanh_f32(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tanh_into_avx2(src: &[f32], dst: &mut [f32]) {
    tanh_into_generic(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tanh_in_place_avx2(buf: &mut [f32]) {
    tanh_in_place_generic(buf)
}

#[inline(always)]
fn bias_tanh_rows_generic(buf: &mut [f32], bias: &[f32]) {
    for row in buf.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = tanh_f32(*v + b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn bias_tanh_rows_avx2(buf: &mut [f32], bias: &[f32]) {
    bias_tanh_rows_generic(buf, bias)
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Writes `tanh(src[i])` to `dst[i]` for `i < min(src.len(), dst.len())`.
pub fn tanh_into(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { tanh_into_avx2(src, dst) };
    }
    tanh_into_generic(src, dst)
}

/// Replaces every value of `buf` by its tanh.
pub fn tanh_in_place(buf: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { tanh_in_place_avx2(buf) };
    }
    tanh_in_place_generic(buf)
}

/// `buf[r * n + j] = tanh(buf[r * n + j] + bias[j])` with `n = bias.len()` (a dense layer's
/// bias and activation, fused). A trailing partial row is left untouched.
pub fn bias_tanh_rows(buf: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { bias_tanh_rows_avx2(buf, bias) };
    }
    bias_tanh_rows_generic(buf, bias)
}

/// The custom op behind [`fast_tanh`]. Its CPU forward handles F32 in any layout (contiguous
/// input takes the vectorized path) and F64 through `f64::tanh`; other dtypes are an error, so
/// call [`fast_tanh`] rather than applying the op directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastTanh;

impl CustomOp1 for FastTanh {
    fn name(&self) -> &'static str {
        "fast-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = layout.shape().clone();
        match storage {
            CpuStorage::F32(data) => {
                let out = match layout.contiguous_offsets() {
                    Some((start, end)) => {
                        let src = &data[start..end];
                        let mut out = vec![0f32; src.len()];
                        tanh_into(src, &mut out);
                        out
                    }
                    None => {
                        let mut out: Vec<f32> = strided_indices(layout)
                            .into_iter()
                            .map(|i| data[i])
                            .collect();
                        tanh_in_place(&mut out);
                        out
                    }
                };
                Ok((CpuStorage::F32(out), shape))
            }
            CpuStorage::F64(data) => {
                let out = strided_indices(layout)
                    .into_iter()
                    .map(|i| data[i].tanh())
                    .collect();
                Ok((CpuStorage::F64(out), shape))
            }
            _ => candle_core::bail!("fast-tanh: F32 and F64 only (use `fast_tanh`)"),
        }
    }
}

/// Storage indices of every element of `layout`, in row-major order.
fn strided_indices(layout: &Layout) -> Vec<usize> {
    let (dims, stride) = (layout.dims(), layout.stride());
    let count: usize = dims.iter().product();
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..count {
        out.push(
            layout.start_offset() + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>(),
        );
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// `tanh` of a tensor: the vectorized op for F32 on the CPU, `Tensor::tanh` otherwise.
pub fn fast_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op1_no_bwd(&FastTanh)
    } else {
        x.tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_error(xs: &[f32]) -> f64 {
        let mut out = vec![0f32; xs.len()];
        tanh_into(xs, &mut out);
        xs.iter()
            .zip(&out)
            .map(|(&x, &y)| ((x as f64).tanh() - y as f64).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn max_error_over_a_dense_range() {
        // Every 1e-4 over [-12, 12], plus the whole tiny-input region densely.
        let xs: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        let err = max_error(&xs);
        assert!(err < 6e-7, "max abs error {err}");
        let tiny: Vec<f32> = (-10_000..=10_000).map(|i| i as f32 * 1e-7).collect();
        assert!(max_error(&tiny) < 1e-9);
        // The scalar and vectorized paths agree exactly up to FMA contraction.
        for &x in xs.iter().step_by(97) {
            let mut y = [0f32];
            tanh_into(&[x], &mut y);
            assert!((y[0] - tanh_f32(x)).abs() <= 1e-7, "{x}");
        }
    }

    #[test]
    fn saturates_and_keeps_special_values() {
        let xs = [
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            0.0,
            -0.0,
            f32::NAN,
        ];
        let mut out = [0f32; 7];
        tanh_into(&xs, &mut out);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] + 1.0).abs() < 1e-6);
        assert!((out[2] - 1.0).abs() < 1e-6 && (out[3] + 1.0).abs() < 1e-6);
        assert_eq!(out[4], 0.0);
        assert!(out[5] == 0.0 && out[5].is_sign_negative());
        assert!(out[6].is_nan());
        assert!(out[..6].iter().all(|v| v.abs() <= 1.0));
    }

    #[test]
    fn sigmoid_error() {
        let err = (-200_000..=200_000)
            .map(|i| i as f32 * 1e-4)
            .map(|x| ((1.0 / (1.0 + (-(x as f64)).exp())) - sigmoid_f32(x) as f64).abs())
            .fold(0.0, f64::max);
        assert!(err < 4e-7, "max abs error {err}");
    }

    #[test]
    fn tensor_op_matches_candle_tanh() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(-300f32, 300.0, &dev)?
            .affine(0.02, 0.0)?
            .reshape((20, 30))?;
        let fast = fast_tanh(&x)?;
        let diff = (fast - x.tanh()?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 6e-7, "{diff}");
        // Non-contiguous input (a transpose) goes through the strided path.
        let xt = x.t()?;
        let diff = (fast_tanh(&xt)? - xt.tanh()?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 6e-7, "{diff}");
        // Other dtypes fall back to candle's tanh.
        let x64 = x.to_dtype(DType::F64)?;
        assert_eq!(fast_tanh(&x64)?.dtype(), DType::F64);
        let bf = x.to_dtype(DType::BF16)?;
        assert_eq!(fast_tanh(&bf)?.dtype(), DType::BF16);
        Ok(())
    }
}
