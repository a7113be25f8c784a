// Gradient-ready hooks (tch has none): a callback into Rust each time libtorch has
// accumulated a parameter's gradient during backward(), so a data-parallel step can start
// summing a bucket of gradients over the ranks while back-propagation still computes the
// rest (what PyTorch DDP's reducer does with the same hooks).
//
// The hook is libtorch's post-accumulate-grad hook of a leaf tensor: it runs on the thread
// that runs the tensor's AccumulateGrad node (the caller of backward() on the CPU, the
// device's autograd thread on a GPU), after `.grad` holds this pass's sum.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cstdint>
#include <exception>
#include <memory>

extern "C" {
// Called with the hook's scope and index when the tensor's gradient is accumulated.
typedef void (*exiflang_grad_ready_fn)(uint64_t scope, uint64_t index);
}

namespace {

struct ReadyHook : public torch::autograd::PostAccumulateGradHook {
  ReadyHook(exiflang_grad_ready_fn fn, uint64_t scope, uint64_t index)
      : fn_(fn), scope_(scope), index_(index) {}
  void operator()(const torch::autograd::Variable &) override { fn_(scope_, index_); }

 private:
  exiflang_grad_ready_fn fn_;
  uint64_t scope_;
  uint64_t index_;
};

}  // namespace

extern "C" {

// Sets `t`'s post-accumulate-grad hook (replacing any); 0 on success, -1 when `t` is not a
// leaf that requires a gradient.
int exiflang_grad_ready_hook_set(const at::Tensor *t, exiflang_grad_ready_fn fn, uint64_t scope,
                                 uint64_t index) {
  try {
    if (!t->requires_grad() || !t->is_leaf()) return -1;
    torch::autograd::impl::set_post_acc_grad_hooks(*t,
                                                   std::make_unique<ReadyHook>(fn, scope, index));
    return 0;
  } catch (const std::exception &) {
    return -1;
  }
}

// Removes `t`'s post-accumulate-grad hook.
void exiflang_grad_ready_hook_clear(const at::Tensor *t) {
  try {
    torch::autograd::impl::set_post_acc_grad_hooks(*t, nullptr);
  } catch (const std::exception &) {
  }
}
}
