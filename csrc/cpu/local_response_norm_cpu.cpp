// Cross-channel LRN on the CPU: y = x * (k + alpha/size * sum_{window} x^2)^-beta.
// One pass: each element of x is read once from memory and y written once; the channel
// window is a running sum (add the square entering, subtract the one leaving), so the
// cost per pixel is O(C) whatever the window size. float32 on AVX-512 with the networks'
// window and beta takes lrn_block_avx512 instead (a ring of squares, no division or sqrt).
// Non-finite inputs give what torch's formula gives in the input's dtype: a NaN square in the
// window makes d NaN, an infinite one (or a window sum that overflows) makes d = +inf, and once
// such a value has left the window the later channels are as if it had never been there.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/lrn_avx512.h"
#include "cpu/lrn_kernels.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

FA_CPU_CLONES void lrn_planar_tasks(const float* x, float* y, int64_t C, int64_t S, int64_t size, double alpha,
                                    double beta, double k, int64_t begin, int64_t end) {
  lrn_planar_range<float>(x, y, C, S, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void lrn_planar_tasks(const double* x, double* y, int64_t C, int64_t S, int64_t size, double alpha,
                                    double beta, double k, int64_t begin, int64_t end) {
  lrn_planar_range<double>(x, y, C, S, size, alpha, beta, k, begin, end);
}

// float32 on AVX-512 (lrn_fast_path): lrn_band_avx512 over blocks of kFastBlock pixels, read
// from and written to the planes in place. The compensated running sum above, with its sqrt and
// division, was compute-bound at about 5x the copy time of its input.
// Pixels per task: long enough runs of each plane for the hardware prefetcher.
constexpr int64_t kFastBlock = 512;

#if defined(__x86_64__)
// One block: channels 0..C-1 of `len` pixels, channel planes `stride` floats apart; ring: an
// AlignedFloats of lrn_ring_floats(size, kFastBlock).
void lrn_block_avx512(const float* xb, float* yb, int64_t C, int64_t stride, int64_t len, int64_t size, double alpha,
                      double beta, double k, float* ring) {
  auto plane = [&](int64_t c) { return xb + c * stride; };
  lrn_band_avx512(C, len, size, alpha, beta, k, ring, kFastBlock, plane, plane, plane,
                  [&](int64_t c) { return yb + c * stride; }, [](int64_t, bool) {});
}
#endif

template <typename scalar_t>
void lrn_planar(const scalar_t* x, scalar_t* y, int64_t N, int64_t C, int64_t S, int64_t size,
                double alpha, double beta, double k) {
#if defined(__x86_64__)
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (lrn_fast_path(size, beta)) {
      const int64_t blocks = (S + kFastBlock - 1) / kFastBlock;
      at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
        AlignedFloats ring(lrn_ring_floats(size, kFastBlock));
        for (int64_t t = begin; t < end; ++t) {
          const int64_t n = t / blocks, s0 = (t % blocks) * kFastBlock;
          lrn_block_avx512(x + n * C * S + s0, y + n * C * S + s0, C, S, std::min(kFastBlock, S - s0), size, alpha,
                           beta, k, ring.get());
        }
      });
      return;
    }
  }
#endif
  const int64_t blocks = (S + kLrnBlock - 1) / kLrnBlock;
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    lrn_planar_tasks(x, y, C, S, size, alpha, beta, k, begin, end);
  });
}

// A (C x len) tile, channel rows len floats apart, through the fast path when it applies;
// false (and nothing written) otherwise.
inline bool lrn_tile_fast(const float* xt, float* yt, int64_t C, int64_t len, int64_t size, double alpha,
                          double beta, double k, float* ring) {
#if defined(__x86_64__)
  if (!lrn_fast_path(size, beta)) return false;
  lrn_block_avx512(xt, yt, C, len, len, size, alpha, beta, k, ring);
  return true;
#else
  return false;
#endif
}
inline bool lrn_tile_fast(const double*, double*, int64_t, int64_t, int64_t, double, double, double, float*) {
  return false;
}

// Channels-last layout: each pixel's C channels are contiguous. Blocks of 16 pixels are
// transposed into a (C x 16) scratch tile, normalised there by the planar code (the window
// slides down the channels with one vector across the 16 pixels), and transposed back.
template <typename scalar_t>
FA_ALWAYS_INLINE void lrn_channels_last_range(const scalar_t* x, scalar_t* y, int64_t C, int64_t size, double alpha,
                                              double beta, double k, int64_t begin, int64_t end) {
  using T = scalar_t;
  constexpr int64_t kPix = 16;
  std::vector<T> xt(C * kPix), yt(C * kPix);
  const bool fast = std::is_same<T, float>::value && lrn_fast_path(size, beta);
  AlignedFloats ring(fast ? lrn_ring_floats(size, kFastBlock) : 0);
  for (int64_t p0 = begin; p0 < end; p0 += kPix) {
    const int64_t np = std::min(kPix, end - p0);
    for (int64_t j = 0; j < kPix; ++j) {
      const T* xp = x + (p0 + std::min(j, np - 1)) * C;  // unused lanes repeat the last pixel
      for (int64_t c = 0; c < C; ++c) xt[c * kPix + j] = xp[c];
    }
    if (!lrn_tile_fast(xt.data(), yt.data(), C, kPix, size, alpha, beta, k, ring.get())) {
      lrn_planar_range<T>(xt.data(), yt.data(), C, kPix, size, alpha, beta, k, 0, 1);
    }
    for (int64_t j = 0; j < np; ++j) {
      T* yp = y + (p0 + j) * C;
      for (int64_t c = 0; c < C; ++c) yp[c] = yt[c * kPix + j];
    }
  }
}

FA_CPU_CLONES void lrn_channels_last_tasks(const float* x, float* y, int64_t C, int64_t size, double alpha, double beta,
                                           double k, int64_t begin, int64_t end) {
  lrn_channels_last_range<float>(x, y, C, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void lrn_channels_last_tasks(const double* x, double* y, int64_t C, int64_t size, double alpha,
                                           double beta, double k, int64_t begin, int64_t end) {
  lrn_channels_last_range<double>(x, y, C, size, alpha, beta, k, begin, end);
}

template <typename scalar_t>
void lrn_channels_last(const scalar_t* x, scalar_t* y, int64_t pixels, int64_t C, int64_t size,
                       double alpha, double beta, double k) {
  // Grains of whole 16-pixel blocks (plus a tail), at least ~16K elements each.
  const int64_t grain = std::max<int64_t>(16, (16384 / std::max<int64_t>(C, 1) + 15) / 16 * 16);
  at::parallel_for(0, pixels, grain, [&](int64_t begin, int64_t end) {
    lrn_channels_last_tasks(x, y, C, size, alpha, beta, k, begin, end);
  });
}

at::Tensor local_response_norm_cpu(const at::Tensor& input, int64_t size, double alpha, double beta,
                                   double k) {
  check_local_response_norm(input, size, alpha, beta, k);
  check_float_dtype("local_response_norm", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = pooled_empty(x.sizes(), x.options(), fmt);
  if (x.numel() == 0) return y;
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_local_response_norm_cpu", [&] {
    if (fmt == at::MemoryFormat::ChannelsLast) {
      lrn_channels_last<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), N * S,
                                  C, size, alpha, beta, k);
    } else {
      lrn_planar<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), N, C, S,
                           size, alpha, beta, k);
    }
  });
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("local_response_norm", &fastalex::cpu::local_response_norm_cpu);
}
