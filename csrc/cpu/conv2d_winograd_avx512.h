// Winograd F(4x4, 3x3) and F(2x2, 5x5) for the float32 NCHW 3x3 and 5x5 stride-1 convolutions +
// bias + ReLU on AVX-512 CPUs: 36 multiplies per 4 x 4 output tile instead of 144 (per 2 x 2
// tile instead of 100), the 36 products of every tile position summed over the input channels
// by the packed micro-kernel of sgemm_avx512.*.
// conv_planar_jobs (conv2d_relu_packed_avx512.*) chooses it; FASTALEX_CPU_CONV picks the
// algorithm for tests and measurements (see conv_algo()).
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/conv2d_relu_packed_avx512.h"

namespace fastalex {

struct ConvGeometry;

namespace cpu {

// FASTALEX_CPU_CONV=direct: im2col + micro-kernel everywhere; =winograd: Winograd wherever
// winograd_supports() holds; otherwise (auto) where winograd_preferred() also holds.
// (=blas turns the whole packed path off, see packed_conv_enabled().) Read on every call.
enum class ConvAlgo { kAuto, kDirect, kWinograd };
ConvAlgo conv_algo();

// 3 x 3 and 5 x 5 kernels, stride 1, no dilation, any padding; at most 2048 input channels per
// group (scratch size and the overflow bound) and images small enough for 32-bit gather offsets.
bool winograd_supports(const ConvGeometry& g, int64_t x_image_stride);

// Whether the cost model (multiplies with each algorithm's padding to whole 32-column blocks,
// plus the transforms) expects Winograd to be faster for this geometry: it is not on maps too
// small to fill a block of tiles at batch 1 (3 x 3 on 7 x 7: 4 tiles).
bool winograd_preferred(const ConvGeometry& g, const std::vector<ConvJob>& jobs);

// The jobs of conv_planar_jobs by Winograd. Returns false, having finished nothing the caller
// may keep, when an input or weight is non-finite or beyond 1e14 in magnitude: the transforms
// mix a tile's values (one NaN would reach all 16 outputs of a tile, inf - inf would make NaN,
// huge values could overflow in between), so such calls take the direct path, which gives
// torch's results; so do calls with a non-finite scale (see the definition).
bool conv_winograd_jobs(const float* x, int64_t x_image_stride, const std::vector<ConvJob>& jobs,
                        const ConvGeometry& g);

// How many conv_winograd_jobs calls have completed in this process (the tests' proof that a
// case took Winograd, or declined it).
int64_t winograd_calls();

}  // namespace cpu
}  // namespace fastalex
