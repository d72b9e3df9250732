// conv2d_bn_relu and inception_bn on every device and layout without a kernel of their own
// (CUDA, where the networks fold the BatchNorms and run fastalex's convolutions instead; on the
// CPU other dtypes, channels_last and CPUs without AVX-512). conv2d_bn_relu is torch's own
// composition -- at::convolution, then the BatchNorm's affine form computed as torch's CPU
// batch_norm computes it (in the op math type: float32 for half types), then the ReLU -- rather
// than the BatchNorm folded into the weights, whose products would differ from torch's where a
// BatchNorm factor is not finite (inf * a weight sums to NaN where torch scales a finite sum).
// inception_bn composes conv2d_bn_relu (through the dispatcher, so the CPU kernel serves the
// CPU), fastalex's max_pool2d and one cat.
#include "batch_norm_composite.h"

#include <ATen/OpMathType.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sqrt.h>
#include <torch/library.h>

#include "common/op_checks.h"

namespace fastalex {

at::Tensor conv2d_bn_relu_composite(const at::Tensor& input, const at::Tensor& weight,
                                    const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                    c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                                    const at::Tensor& running_mean, const at::Tensor& running_var,
                                    const c10::optional<at::Tensor>& bn_weight,
                                    const c10::optional<at::Tensor>& bn_bias, double eps) {
  check_conv2d_bn_relu(input, weight, bias, stride, padding, dilation, groups, running_mean, running_var, bn_weight,
                       bn_bias, eps);
  check_float_dtype("conv2d_bn_relu", "input", input, /*half_ok=*/true);
  const int64_t no_padding[2] = {0, 0};
  const at::Tensor y = at::convolution(input, weight, bias, stride, padding, dilation, false,
                                       c10::IntArrayRef(no_padding, 2), groups);
  const auto opmath = at::toOpMathType(input.scalar_type());
  // torch's batch_norm (eval): alpha = weight / sqrt(var + eps), beta = bias - mean * alpha.
  at::Tensor alpha = 1 / at::sqrt(running_var.to(opmath) + eps);
  if (bn_weight.has_value() && bn_weight->defined()) alpha = alpha * bn_weight->to(opmath);
  at::Tensor beta = -(running_mean.to(opmath) * alpha);
  if (bn_bias.has_value() && bn_bias->defined()) beta = beta + bn_bias->to(opmath);
  return at::relu(y.to(opmath) * alpha.view({1, -1, 1, 1}) + beta.view({1, -1, 1, 1})).to(input.scalar_type());
}

at::Tensor inception_bn_composite(const at::Tensor& input, at::TensorList weights, at::TensorList running_means,
                                  at::TensorList running_vars, at::TensorList bn_weights, at::TensorList bn_biases,
                                  double eps) {
  check_inception_bn(input, weights, running_means, running_vars, bn_weights, bn_biases, eps);
  static auto conv =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastalex::conv2d_bn_relu", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, c10::IntArrayRef,
                            c10::IntArrayRef, c10::IntArrayRef, int64_t, const at::Tensor&, const at::Tensor&,
                            const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, double)>();
  static auto pool = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("fastalex::max_pool2d", "")
                         .typed<at::Tensor(const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef,
                                           c10::IntArrayRef, bool)>();
  const int64_t one[2] = {1, 1}, three[2] = {3, 3};
  auto cbr = [&](const at::Tensor& x, size_t i) {
    const int64_t pad[2] = {weights[i].size(2) / 2, weights[i].size(3) / 2};
    return conv.call(x, weights[i], c10::nullopt, one, c10::IntArrayRef(pad, 2), one, 1, running_means[i],
                     running_vars[i], bn_weights[i], bn_biases[i], eps);
  };
  return at::cat({cbr(input, 0), cbr(cbr(input, 1), 2), cbr(cbr(input, 3), 4),
                  cbr(pool.call(input, three, one, one, one, false), 5)},
                 1);
}

}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CompositeExplicitAutograd, m) {
  m.impl("conv2d_bn_relu", &fastalex::conv2d_bn_relu_composite);
  m.impl("inception_bn", &fastalex::inception_bn_composite);
}
