//! Choosing the device a model's weights live on.

use candle_core::Device;

use super::error::ModelError;

/// Parses a device spec: `"cpu"`, `"cuda"` (= `cuda:0`) or `"cuda:N"`. CUDA needs a build
/// with the `cuda` cargo feature; without it a CUDA spec is a clear error, not a silent CPU.
pub fn select_device(spec: &str) -> Result<Device, ModelError> {
    let err = |reason: String| ModelError::Device {
        spec: spec.to_string(),
        reason,
    };
    let s = spec.trim().to_ascii_lowercase();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match s.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| err("expected `cpu`, `cuda` or `cuda:N`".into()))?,
        None => return Err(err("expected `cpu`, `cuda` or `cuda:N`".into())),
    };
    cuda_device(ordinal).map_err(err)
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device, String> {
    Device::new_cuda(ordinal).map_err(|e| format!("cannot open CUDA device {ordinal}: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_ordinal: usize) -> Result<Device, String> {
    Err("this build has no CUDA support (rebuild with `--features cuda`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert!(select_device("cpu").unwrap().is_cpu());
        assert!(select_device(" CPU ").unwrap().is_cpu());
        for bad in ["gpu", "cuda:", "cuda:x", "cuda0", ""] {
            let err = select_device(bad).unwrap_err().to_string();
            assert!(
                err.contains("expected `cpu`, `cuda` or `cuda:N`"),
                "{bad}: {err}"
            );
        }
        #[cfg(not(feature = "cuda"))]
        {
            let err = select_device("cuda:1").unwrap_err().to_string();
            assert_eq!(
                err,
                "device `cuda:1`: this build has no CUDA support (rebuild with `--features cuda`)"
            );
        }
    }
}
