// The op schemas, shared by the fastalex library (csrc/fastalex.cpp) and the emulator's
// fastalex_emu library (csrc/emu/emu_library.cpp), so both take exactly the same arguments.
#pragma once

namespace fastalex {
namespace schemas {

// relu(conv2d(input, weight, bias, stride, padding, dilation=1, groups)); output in the
// input's memory format.
constexpr const char* kConv2dRelu =
    "conv2d_relu(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int groups) -> Tensor";
// F.local_response_norm: input / (k + alpha / size * sum of squares over the channel window)^beta.
constexpr const char* kLocalResponseNorm =
    "local_response_norm(Tensor input, int size, float alpha, float beta, float k) -> Tensor";
// F.max_pool2d with dilation 1 and no indices.
constexpr const char* kMaxPool2d =
    "max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode) -> Tensor";

// F.linear(input, weight, bias), then ReLU when relu is true; input is 2-D (N, in_features).
constexpr const char* kLinear = "linear(Tensor input, Tensor weight, Tensor? bias, bool relu) -> Tensor";

}  // namespace schemas
}  // namespace fastalex
