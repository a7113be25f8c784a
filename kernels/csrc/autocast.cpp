// bf16 autocast for libtorch (tch only exposes fp16 autocast on CUDA): entering and
// leaving an autocast region on a device type with a given lower-precision dtype, as
// torch.autocast(device_type, dtype=torch.bfloat16).__enter__/__exit__ do. Works for the
// CPU too (libtorch's CPU autocast), which lets the CPU build test it.

#include <ATen/autocast_mode.h>

namespace {
bool device_type(int device, at::DeviceType *type) {
  if (device == 0) {
    *type = at::kCPU;
  } else if (device == 1) {
    *type = at::kCUDA;
  } else {
    return false;
  }
  return true;
}
}  // namespace

extern "C" {

// device: 0 = CPU, 1 = CUDA; dtype: an at::ScalarType value. Saves the previous state in
// *was_enabled / *was_dtype for exiflang_autocast_exit. Returns 0, or -1 for an unknown
// device.
int exiflang_autocast_enter(int device, int dtype, int *was_enabled, int *was_dtype) {
  at::DeviceType type;
  if (!device_type(device, &type)) return -1;
  *was_enabled = at::autocast::is_autocast_enabled(type) ? 1 : 0;
  *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(type));
  at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(dtype));
  at::autocast::set_autocast_enabled(type, true);
  at::autocast::increment_nesting();
  return 0;
}

// Restores the state saved by the matching enter; leaving the outermost region drops the
// casted weights autocast cached.
int exiflang_autocast_exit(int device, int was_enabled, int was_dtype) {
  at::DeviceType type;
  if (!device_type(device, &type)) return -1;
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(type, was_enabled != 0);
  at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(was_dtype));
  return 0;
}

// The at::ScalarType value of bfloat16 (for the Rust side).
int exiflang_scalar_type_bf16() { return static_cast<int>(at::kBFloat16); }
}
