//! bf16 autocast regions (the C++ side is `csrc/autocast.cpp`): inside an [`Autocast`]
//! guard, libtorch runs the ops its autocast lists (matmuls, convolutions, ...) in
//! bfloat16 on the guard's device and keeps the rest (reductions, softmax, losses) in
//! float32, as `torch.autocast(device, dtype=torch.bfloat16)` does. Weights stay float32:
//! their bf16 copies are cached for the region and dropped when the outermost one ends.

use std::os::raw::c_int;

use crate::KernelsError;

extern "C" {
    fn exiflang_autocast_enter(
        device: c_int,
        dtype: c_int,
        was_enabled: *mut c_int,
        was_dtype: *mut c_int,
    ) -> c_int;
    fn exiflang_autocast_exit(device: c_int, was_enabled: c_int, was_dtype: c_int) -> c_int;
    fn exiflang_scalar_type_bf16() -> c_int;
}

/// An autocast region; leaving it (drop) restores the state it found.
#[derive(Debug)]
#[must_use = "autocast ends when the guard is dropped"]
pub struct Autocast {
    device: c_int,
    was_enabled: c_int,
    was_dtype: c_int,
}

impl Autocast {
    /// Enters a bf16 autocast region for `device`'s type (CPU or CUDA).
    pub fn bf16(device: tch::Device) -> Result<Autocast, KernelsError> {
        let device = match device {
            tch::Device::Cpu => 0,
            tch::Device::Cuda(_) => 1,
            other => {
                return Err(KernelsError::Input {
                    what: "autocast device",
                    reason: format!("{other:?}: only cpu and cuda"),
                })
            }
        };
        let (mut was_enabled, mut was_dtype) = (0, 0);
        // SAFETY: plain values in, two out-pointers to live locals.
        let rc = unsafe {
            exiflang_autocast_enter(
                device,
                exiflang_scalar_type_bf16(),
                &mut was_enabled,
                &mut was_dtype,
            )
        };
        if rc != 0 {
            return Err(KernelsError::Input {
                what: "autocast device",
                reason: format!("code {device} is not cpu (0) or cuda (1)"),
            });
        }
        Ok(Autocast {
            device,
            was_enabled,
            was_dtype,
        })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: the device code was accepted by the matching enter.
        unsafe { exiflang_autocast_exit(self.device, self.was_enabled, self.was_dtype) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn matmuls_run_in_bf16_inside_the_region_and_float32_outside() {
        let a = Tensor::randn([4, 8], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, tch::Device::Cpu));
        let before = a.matmul(&b);
        let (inside, summed, nested_out) = {
            let _outer = Autocast::bf16(tch::Device::Cpu).unwrap();
            let inside = a.matmul(&b);
            let nested_out = {
                let _inner = Autocast::bf16(tch::Device::Cpu).unwrap();
                a.matmul(&b)
            };
            // Still inside the outer region after the inner one ended.
            let after_inner = a.matmul(&b);
            assert_eq!(after_inner.kind(), Kind::BFloat16);
            (inside, a.matmul(&b).sum(Kind::Float), nested_out)
        };
        assert_eq!(before.kind(), Kind::Float);
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(nested_out.kind(), Kind::BFloat16);
        assert_eq!(summed.kind(), Kind::Float);
        assert_eq!(a.matmul(&b).kind(), Kind::Float, "the region ended");
        // bf16 keeps about 3 significant digits.
        let diff = (inside.to_kind(Kind::Float) - &before)
            .abs()
            .max()
            .double_value(&[]);
        let scale = before.abs().max().double_value(&[]);
        assert!(diff > 0.0 && diff < 0.02 * scale, "{diff} vs {scale}");
    }
}
