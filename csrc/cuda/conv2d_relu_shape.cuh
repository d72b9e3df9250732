// The geometry both CUDA conv kernels read (torch-free; see device_common.cuh). Each kernel's
// parameter struct extends it with its own strides and flags, and the host fills it once
// (fill_conv_shape in conv2d_relu_cuda.cu).
#pragma once

#include <cstdint>

namespace fastalex {
namespace cuda {

struct ConvShape {
  int64_t batch, in_h, in_w, out_h, out_w;
  int in_channels_per_group, out_channels_per_group;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int K;           // in_channels_per_group * kernel_h * kernel_w: the reduction length
  int64_t pixels;  // batch * out_h * out_w
};

}  // namespace cuda
}  // namespace fastalex
