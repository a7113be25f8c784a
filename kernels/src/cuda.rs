//! The GPU build's access to libtorch's CUDA state (C++ in `csrc/cuda_stream.cpp`):
//! the current stream of a device, where NCCL collectives are enqueued so that they are
//! ordered with libtorch's own kernels, a pool stream for communication beside them, and
//! the current device.

use std::os::raw::{c_int, c_void};

use crate::KernelsError;

extern "C" {
    fn exiflang_cuda_current_stream(device: c_int) -> *mut c_void;
    fn exiflang_cuda_set_device(device: c_int) -> c_int;
    fn exiflang_cuda_pool_stream(device: c_int) -> *mut c_void;
    fn exiflang_cuda_memory(
        device: c_int,
        allocated: *mut i64,
        peak: *mut i64,
        reset: c_int,
    ) -> c_int;
}

/// libtorch's caching allocator on `device`: bytes allocated now, and their peak since the
/// previous call with `reset_peak` (which starts the peak again from now).
pub fn memory(device: usize, reset_peak: bool) -> Result<(u64, u64), KernelsError> {
    let (mut allocated, mut peak) = (0i64, 0i64);
    // SAFETY: two out-pointers to locals; the shim checks the device index.
    let rc = unsafe {
        exiflang_cuda_memory(
            device as c_int,
            &mut allocated,
            &mut peak,
            c_int::from(reset_peak),
        )
    };
    if rc != 0 {
        return Err(device_error(format!(
            "no allocator statistics for cuda:{device}"
        )));
    }
    Ok((allocated.max(0) as u64, peak.max(0) as u64))
}

/// libtorch's current CUDA stream on `device` (a `cudaStream_t`).
pub fn current_stream(device: usize) -> Result<*mut c_void, KernelsError> {
    // SAFETY: a plain integer in; the C++ side checks it and catches every exception.
    let stream = unsafe { exiflang_cuda_current_stream(device as c_int) };
    if stream.is_null() && tch::Cuda::device_count() <= device as i64 {
        return Err(device_error(format!("cuda:{device} does not exist")));
    }
    // The default stream is the null handle; that is a valid stream.
    Ok(stream)
}

/// A stream of libtorch's pool on `device` (a `cudaStream_t`, high priority), for work
/// that runs beside the compute stream (the gradient buckets' all-reduces).
pub fn pool_stream(device: usize) -> Result<*mut c_void, KernelsError> {
    // SAFETY: a plain integer in; the C++ side checks it and catches every exception.
    let stream = unsafe { exiflang_cuda_pool_stream(device as c_int) };
    if stream.is_null() {
        return Err(device_error(format!(
            "no stream from libtorch's pool on cuda:{device}"
        )));
    }
    Ok(stream)
}

/// Makes `device` libtorch's current CUDA device.
pub fn set_device(device: usize) -> Result<(), KernelsError> {
    // SAFETY: a plain integer in; the C++ side catches every exception.
    if unsafe { exiflang_cuda_set_device(device as c_int) } != 0 {
        return Err(device_error(format!("cannot make cuda:{device} current")));
    }
    Ok(())
}

/// A CUDA device error saying `what` failed and how many devices libtorch sees.
fn device_error(what: String) -> KernelsError {
    KernelsError::Input {
        what: "CUDA device",
        reason: format!(
            "{what} (libtorch sees {} CUDA device(s))",
            tch::Cuda::device_count()
        ),
    }
}
