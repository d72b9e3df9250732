// The float32 NCHW convolution + bias + ReLU on AVX-512 CPUs (conv2d_relu_cpu.cpp chooses it):
// im2col panels built straight into the layout of the packed micro-kernel of sgemm_avx512.*,
// which adds the bias and applies the ReLU as it stores the output.
#pragma once

#include <cstdint>

namespace fastalex {

struct ConvGeometry;

namespace cpu {

// Geometries the packed path takes: no dilation, a column stride up to 16, and at most 17
// kernel taps per column phase. Other convolutions take the BLAS path.
bool packed_conv_supports(const ConvGeometry& g);

// y (N, OC, OH, OW) = relu(conv(x, w) + b) for float32 NCHW x, w (OC, C/groups, KH, KW) and
// b (OC) or null. Needs an AVX-512 CPU and packed_conv_supports(g).
void conv_planar_packed(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g);

}  // namespace cpu
}  // namespace fastalex
