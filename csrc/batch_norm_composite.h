// conv2d_bn_relu and inception_bn where the CPU kernels do not run them (see
// batch_norm_composite.cpp), and the eval-mode BatchNorm's per-channel affine form the CPU
// kernels apply as they store.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>

namespace fastalex {

// at::convolution, at::batch_norm (eval), at::relu: torch's own results; checks the arguments
// first.
at::Tensor conv2d_bn_relu_composite(const at::Tensor& input, const at::Tensor& weight,
                                    const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                    c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                                    const at::Tensor& running_mean, const at::Tensor& running_var,
                                    const c10::optional<at::Tensor>& bn_weight,
                                    const c10::optional<at::Tensor>& bn_bias, double eps);

// conv2d_bn_relu for each convolution, fastalex's max_pool2d, one cat; checks the arguments.
at::Tensor inception_bn_composite(const at::Tensor& input, at::TensorList weights, at::TensorList running_means,
                                  at::TensorList running_vars, at::TensorList bn_weights, at::TensorList bn_biases,
                                  double eps);

// An eval-mode BatchNorm as torch's CPU batch_norm computes it: scale = bn_weight /
// sqrt(running_var + eps), shift = bn_bias - running_mean * scale (bn_weight 1 and bn_bias 0
// when absent); the output is fma(conv, scale, shift), torch's fused x * alpha + beta. float32,
// contiguous, for `channels` channels. (A convolution's bias cannot be folded into the shift
// without changing results where sums overflow: such calls take the composite.)
inline void batch_norm_affine(int64_t channels, const float* mean, const float* var, const float* w, const float* b,
                              double eps, float* scale, float* shift) {
  const float e = static_cast<float>(eps);
  for (int64_t c = 0; c < channels; ++c) {
    const float invstd = 1.f / std::sqrt(var[c] + e);
    const float a = w ? invstd * w[c] : invstd;
    scale[c] = a;
    shift[c] = (b ? b[c] : 0.f) - mean[c] * a;
  }
}

}  // namespace fastalex
