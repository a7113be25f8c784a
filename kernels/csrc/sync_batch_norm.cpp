// Synchronised batch norm as a libtorch autograd function, for data-parallel training.
//
// Forward: every rank computes its per-channel count, mean and variance, the ranks sum
// (count, count * mean, count * (var + mean^2)) in float64 through a callback into Rust (the
// training job's collective), and every rank normalises with the global mean and biased
// variance and moves its running statistics with the global mean and unbiased variance.
// Backward: the ranks sum the per-channel sums of dy and dy * xhat the same way, so each
// rank's input gradient includes what its samples did to the other ranks' outputs through
// the shared statistics. The weight and bias gradients stay local (the job sums parameter
// gradients over ranks afterwards).
//
// A failed cross-rank sum throws; libtorch turns the exception into an error of the
// forward call or of backward(), and the Rust side keeps the collective's own error.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <vector>

extern "C" {
// Sums the float64 tensor `t` over every rank, in place; 0 on success.
typedef int (*exiflang_reduce_fn)(uint64_t scope, at::Tensor *t);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void reduce(int64_t fn, int64_t scope, at::Tensor &t) {
  auto f = reinterpret_cast<exiflang_reduce_fn>(fn);
  if (f(static_cast<uint64_t>(scope), &t) != 0) {
    throw std::runtime_error(
        "synchronised batch norm: the sum over ranks failed (the collective's error is "
        "reported by the training step)");
  }
}

// Reduction dimensions (all but channels) and the broadcast shape of a channel vector.
std::vector<int64_t> reduce_dims(const at::Tensor &x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

std::vector<int64_t> channel_shape(const at::Tensor &x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  return shape;
}

struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x,
                            const at::Tensor &weight, const at::Tensor &bias,
                            at::Tensor running_mean, at::Tensor running_var,
                            double momentum, double eps, int64_t fn, int64_t scope) {
    const int64_t c = x.size(1);
    const auto dims = reduce_dims(x);
    const auto shape = channel_shape(x);
    const double count = c == 0 ? 0.0 : static_cast<double>(x.numel() / c);
    auto var_mean = at::var_mean(x, dims, /*correction=*/0, /*keepdim=*/false);
    auto var = std::get<0>(var_mean).to(at::kDouble);
    auto mean = std::get<1>(var_mean).to(at::kDouble);
    if (count == 0.0) {
      var.zero_();
      mean.zero_();
    }
    auto stats = at::cat({at::full({1}, count, mean.options()), mean * count,
                          (var + mean * mean) * count});
    reduce(fn, scope, stats);
    const double n = stats[0].item<double>();
    if (n < 2.0) {
      throw std::runtime_error(
          "synchronised batch norm needs at least 2 values per channel over all ranks");
    }
    auto g_mean = stats.narrow(0, 1, c) / n;
    auto g_var = (stats.narrow(0, 1 + c, c) / n - g_mean * g_mean).clamp_min(0.0);
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1.0 - momentum).add_(g_mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1.0 - momentum)
          .add_((g_var * (n / (n - 1.0))).to(running_var.scalar_type()), momentum);
    }
    auto mean_x = g_mean.to(x.scalar_type());
    auto invstd_x = (g_var + eps).rsqrt().to(x.scalar_type());
    auto xhat = (x - mean_x.view(shape)) * invstd_x.view(shape);
    ctx->save_for_backward({x, weight, mean_x, invstd_x});
    ctx->saved_data["n"] = n;
    ctx->saved_data["fn"] = fn;
    ctx->saved_data["scope"] = scope;
    return xhat * weight.view(shape) + bias.view(shape);
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0];
    const auto &weight = saved[1];
    const auto &mean = saved[2];
    const auto &invstd = saved[3];
    const double n = ctx->saved_data["n"].toDouble();
    const int64_t c = x.size(1);
    const auto dims = reduce_dims(x);
    const auto shape = channel_shape(x);
    auto dy = grads[0].defined() ? grads[0] : at::zeros_like(x);
    auto xhat = (x - mean.view(shape)) * invstd.view(shape);
    auto sum_dy = dy.sum(dims);
    auto sum_dy_xhat = (dy * xhat).sum(dims);
    auto global = at::cat({sum_dy, sum_dy_xhat}).to(at::kDouble);
    reduce(ctx->saved_data["fn"].toInt(), ctx->saved_data["scope"].toInt(), global);
    auto mean_dy = (global.narrow(0, 0, c) / n).to(x.scalar_type());
    auto mean_dy_xhat = (global.narrow(0, c, c) / n).to(x.scalar_type());
    auto dx = (dy - mean_dy.view(shape) - xhat * mean_dy_xhat.view(shape)) *
              (invstd * weight).view(shape);
    return {dx,           sum_dy_xhat,  sum_dy,       at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" int exiflang_sync_batch_norm(const at::Tensor *x, const at::Tensor *weight,
                                        const at::Tensor *bias, const at::Tensor *running_mean,
                                        const at::Tensor *running_var, double momentum,
                                        double eps, exiflang_reduce_fn fn, uint64_t scope,
                                        at::Tensor **out, char *err, size_t err_len) {
  try {
    auto y = SyncBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, momentum,
                                  eps, reinterpret_cast<int64_t>(fn),
                                  static_cast<int64_t>(scope));
    *out = new at::Tensor(std::move(y));
    return 0;
  } catch (const std::exception &e) {
    std::snprintf(err, err_len, "%s", e.what());
    return 1;
  }
}
