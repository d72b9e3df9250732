// The op schemas, defined once: the fastalex library (csrc/fastalex.cpp) and the emulator's
// fastalex_emu library (csrc/emu/emu_library.cpp) both register them through
// define_kernel_ops(), so the two take exactly the same arguments in torch's order.
#pragma once

#include <torch/library.h>

namespace fastalex {
namespace schemas {

// relu(conv2d(input, weight, bias, stride, padding, dilation, groups)), torch's argument order;
// output in the input's memory format.
constexpr const char* kConv2dRelu =
    "conv2d_relu(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, "
    "int groups) -> Tensor";
// F.local_response_norm: input / (k + alpha / size * sum of squares over the channel window)^beta.
constexpr const char* kLocalResponseNorm =
    "local_response_norm(Tensor input, int size, float alpha, float beta, float k) -> Tensor";
// The gradient of local_response_norm with respect to its input, from the forward's input and
// output: dx = g * D^-beta - 2 alpha beta / size * x * W'(g * y / D), D = k + alpha / size * W(x^2),
// W the channel window sum and W' its transpose.
constexpr const char* kLocalResponseNormBackward =
    "local_response_norm_backward(Tensor grad_output, Tensor input, Tensor output, int size, float alpha, "
    "float beta, float k) -> Tensor";
// F.max_pool2d without indices, torch's argument order.
constexpr const char* kMaxPool2d =
    "max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode) "
    "-> Tensor";
// The gradient of max_pool2d with respect to its input, from the input alone: each window's
// argmax found again as torch's max_pool2d_with_indices finds it, its gradient added there.
constexpr const char* kMaxPool2dBackward =
    "max_pool2d_backward(Tensor grad_output, Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
    "int[2] dilation, bool ceil_mode) -> Tensor";
// F.linear(input, weight, bias), then ReLU when relu is true; input is 2-D (N, in_features).
constexpr const char* kLinear = "linear(Tensor input, Tensor weight, Tensor? bias, bool relu) -> Tensor";

// max_pool2d(local_response_norm(input)) and local_response_norm(max_pool2d(input)) as one op
// each (dilation 1): one-pass kernels on the CPU (cpu/lrn_pool_cpu.cpp) and CUDA.
constexpr const char* kLrnMaxPool2d =
    "lrn_max_pool2d(Tensor input, int size, float alpha, float beta, float k, int[2] kernel_size, int[2] stride, "
    "int[2] padding, bool ceil_mode) -> Tensor";
constexpr const char* kMaxPool2dLrn =
    "max_pool2d_lrn(Tensor input, int size, float alpha, float beta, float k, int[2] kernel_size, int[2] stride, "
    "int[2] padding, bool ceil_mode) -> Tensor";

// GoogLeNet's Inception module (no BatchNorm) as one op, in the module's order: branch1 (1x1),
// the 3x3 branch's 1x1 reduce and k x k convolution, the 5x5 branch's reduce and k x k
// convolution (3 x 3 in torchvision's variant), the pool branch's projection after a 3x3/1
// max-pool; every convolution with bias and ReLU, the four outputs concatenated on channels.
constexpr const char* kInception =
    "inception(Tensor input, Tensor w1, Tensor b1, Tensor w3_reduce, Tensor b3_reduce, Tensor w3, Tensor b3, "
    "Tensor w5_reduce, Tensor b5_reduce, Tensor w5, Tensor b5, Tensor w_pool, Tensor b_pool) -> Tensor";

// torchvision's conv + BatchNorm + ReLU in eval mode (BasicConv2d):
// relu(batch_norm(conv2d(input, weight, bias, stride, padding, dilation, groups), running_mean,
// running_var, bn_weight, bn_bias, training=False, eps=eps)), F.conv2d's arguments then
// F.batch_norm's, each in torch's order. On the CPU the BatchNorm's per-channel factor scales the
// convolution's sums as they are stored; nothing is folded into a copy of the weights.
constexpr const char* kConv2dBnRelu =
    "conv2d_bn_relu(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, "
    "int groups, Tensor running_mean, Tensor running_var, Tensor? bn_weight, Tensor? bn_bias, float eps) -> Tensor";
// torchvision's Inception block in eval mode: the Inception op's six convolutions (no bias),
// each followed by its eval-mode BatchNorm and a ReLU. Every list holds six tensors in the
// module's order (branch1, branch2's reduce and 3x3, branch3's reduce and k x k, branch4's
// projection); eps is shared (torchvision's 0.001).
constexpr const char* kInceptionBn =
    "inception_bn(Tensor input, Tensor[] weights, Tensor[] running_means, Tensor[] running_vars, "
    "Tensor[] bn_weights, Tensor[] bn_biases, float eps) -> Tensor";

// The ops that have a CUDA kernel, hence an emulated twin in fastalex_emu.
inline void define_kernel_ops(torch::Library& m) {
  m.def(kConv2dRelu);
  m.def(kLocalResponseNorm);
  m.def(kLocalResponseNormBackward);
  m.def(kMaxPool2d);
  m.def(kMaxPool2dBackward);
  m.def(kLrnMaxPool2d);
  m.def(kMaxPool2dLrn);
}

// Every op of the fastalex library.
inline void define_all_ops(torch::Library& m) {
  define_kernel_ops(m);
  m.def(kLinear);
  m.def(kInception);
  m.def(kConv2dBnRelu);
  m.def(kInceptionBn);
}

}  // namespace schemas
}  // namespace fastalex
