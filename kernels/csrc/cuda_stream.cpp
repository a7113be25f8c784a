// The GPU build's view of libtorch's CUDA state (tch has no stream API): the stream
// libtorch runs its kernels on for a device, so that NCCL collectives go on the same
// stream and need no extra synchronisation with the ops around them.

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <exception>

extern "C" {

// libtorch's current CUDA stream on `device` (a cudaStream_t), or nullptr when the
// device does not exist or CUDA cannot be initialised.
void *exiflang_cuda_current_stream(int device) {
  try {
    if (device < 0 || device >= static_cast<int>(c10::cuda::device_count())) {
      return nullptr;
    }
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
  } catch (const std::exception &) {
    return nullptr;
  }
}

// A stream of libtorch's pool on `device` (high priority), for communication that runs
// beside the compute stream; nullptr when the device does not exist or CUDA fails (a pool
// stream is never the null default stream).
void *exiflang_cuda_pool_stream(int device) {
  try {
    if (device < 0 || device >= static_cast<int>(c10::cuda::device_count())) {
      return nullptr;
    }
    return c10::cuda::getStreamFromPool(true, static_cast<c10::DeviceIndex>(device)).stream();
  } catch (const std::exception &) {
    return nullptr;
  }
}

// libtorch's caching allocator on `device`: bytes allocated now and their peak since the
// last reset, which `reset_peak` (non-zero) starts again; 0 on success.
int exiflang_cuda_memory(int device, int64_t *allocated, int64_t *peak, int reset_peak) {
  try {
    if (device < 0 || device >= static_cast<int>(c10::cuda::device_count())) {
      return -1;
    }
    auto index = static_cast<c10::DeviceIndex>(device);
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    const auto &bytes = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    *allocated = bytes.current;
    *peak = bytes.peak;
    if (reset_peak != 0) {
      c10::cuda::CUDACachingAllocator::resetPeakStats(index);
    }
    return 0;
  } catch (const std::exception &) {
    return -1;
  }
}

// Makes `device` libtorch's current CUDA device; 0 on success.
int exiflang_cuda_set_device(int device) {
  try {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (const std::exception &) {
    return -1;
  }
}
}
