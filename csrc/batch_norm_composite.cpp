// conv2d_bn_relu and inception_bn on every device and layout without a kernel of their own
// (CUDA, where the networks fold the BatchNorms and run fastalex's convolutions instead; on the
// CPU other dtypes, channels_last, a convolution with a bias and CPUs without AVX-512).
// conv2d_bn_relu is torch's own composition -- at::convolution, at::batch_norm (eval), at::relu
// -- so every backend and dtype gets torch's results, overflow included (torch's CPU kernel
// computes x * alpha + beta as one fused multiply-add, its CUDA kernel another formula; a
// BatchNorm folded into the weights would differ from both where a factor is not finite).
// inception_bn composes conv2d_bn_relu (through the dispatcher, so the CPU kernel serves the
// CPU), fastalex's max_pool2d and one cat.
#include "batch_norm_composite.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/relu.h>
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
  at::Tensor out = at::relu(at::batch_norm(y, bn_weight, bn_bias, running_mean, running_var, /*training=*/false,
                                           /*momentum=*/0.0, eps, /*cudnn_enabled=*/true));
  // The op's output keeps the input's memory format; torch's CUDA composition returned NCHW for a
  // channels_last float64 input (an H200, torch 2.11), so convert where it does not.
  const at::MemoryFormat fmt = input.suggest_memory_format();
  return out.is_contiguous(fmt) ? out : out.contiguous(fmt);
}

at::Tensor inception_bn_composite(const at::Tensor& input, at::TensorList weights, at::TensorList running_means,
                                  at::TensorList running_vars, at::TensorList bn_weights, at::TensorList bn_biases,
                                  double eps) {
  check_inception_bn(input, weights, running_means, running_vars, bn_weights, bn_biases, eps);
  check_float_dtype("inception_bn", "input", input, /*half_ok=*/true);
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
