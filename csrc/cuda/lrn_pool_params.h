// Host side: the LRN and max-pool kernels' parameters filled from the checked arguments, once
// for the four .cu files that launch them (LRN, max-pool and the two fused orders).
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <limits>

#include "common/op_checks.h"
#include "cuda/lrn_window.cuh"
#include "cuda/max_pool2d_kernel.cuh"

namespace fastalex {
namespace cuda {

// The window and coefficients of an LRN over `channels` channels (arguments already checked by
// check_local_response_norm). `op` names the op in errors.
inline void fill_lrn_coeffs(LrnCoeffs& p, const char* op, int64_t channels, int64_t size, double alpha, double beta,
                            double k) {
  TORCH_CHECK_VALUE(size <= std::numeric_limits<int>::max(), "fastalex.", op, ": size ", size, " is too large");
  p.channels = channels;
  p.size = static_cast<int>(size);
  p.pre = static_cast<int>(size / 2);
  p.post = static_cast<int>((size - 1) / 2);
  p.alpha_over_size = alpha / static_cast<double>(size);
  p.beta = beta;
  p.k = k;
  // The betas with a cheaper d^-beta than pow (lrn_inv_pow).
  p.beta_mode = beta == 0.75 ? 1 : beta == 0.5 ? 2 : beta == 1.0 ? 3 : beta == -0.5 ? 4 : 0;
}

// The pooling geometry (checked by check_max_pool2d); the strides are the caller's.
inline void fill_pool_geometry(PoolParams& p, const char* op, const PoolGeometry& g) {
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  TORCH_CHECK_VALUE(g.kernel_h <= kIntMax && g.kernel_w <= kIntMax && g.stride_h <= kIntMax && g.stride_w <= kIntMax &&
                        g.dilation_h <= kIntMax && g.dilation_w <= kIntMax,
                    "fastalex.", op, ": kernel_size, stride and dilation must each fit in 32 bits for the CUDA kernel");
  p.batch = g.batch;
  p.channels = g.channels;
  p.in_h = g.in_h;
  p.in_w = g.in_w;
  p.out_h = g.out_h;
  p.out_w = g.out_w;
  p.kernel_h = static_cast<int>(g.kernel_h);
  p.kernel_w = static_cast<int>(g.kernel_w);
  p.stride_h = static_cast<int>(g.stride_h);
  p.stride_w = static_cast<int>(g.stride_w);
  // padding <= kernel_size / 2 (check_max_pool2d), so it fits too
  p.pad_h = static_cast<int>(g.pad_h);
  p.pad_w = static_cast<int>(g.pad_w);
  p.dilation_h = static_cast<int>(g.dilation_h);
  p.dilation_w = static_cast<int>(g.dilation_w);
}

}  // namespace cuda
}  // namespace fastalex
