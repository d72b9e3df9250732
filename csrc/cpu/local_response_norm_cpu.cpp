// Cross-channel LRN on the CPU: y = x * (k + alpha/size * sum_{window} x^2)^-beta.
// One pass: each element of x is read once from memory and y written once; the channel
// window is a running sum (add the square entering, subtract the one leaving), so the
// cost per pixel is O(C) whatever the window size. float32 on AVX-512 with the networks'
// window and beta takes lrn_block_avx512 instead (a ring of squares, no division or sqrt).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

// d^-beta, with root-based forms for the betas the networks use (pow is ~10x slower and
// blocks vectorization).
template <typename acc_t>
struct InvPow {
  int mode;
  acc_t beta;
  explicit InvPow(double b) : beta(static_cast<acc_t>(b)) {
    mode = b == 0.75 ? 1 : b == 0.5 ? 2 : b == 1.0 ? 3 : 0;
  }
};

template <typename acc_t>
FA_ALWAYS_INLINE void scale_by_inv_pow(const InvPow<acc_t>& p, const acc_t* d, acc_t* out, int64_t n) {
  switch (p.mode) {
    case 1:
      for (int64_t i = 0; i < n; ++i) {
        acc_t r = acc_t(1) / std::sqrt(d[i]);
        out[i] = r * std::sqrt(r);
      }
      break;
    case 2:
      for (int64_t i = 0; i < n; ++i) out[i] = acc_t(1) / std::sqrt(d[i]);
      break;
    case 3:
      for (int64_t i = 0; i < n; ++i) out[i] = acc_t(1) / d[i];
      break;
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = std::pow(d[i], -p.beta);
  }
}

// The running window sum is compensated (Knuth's two-sum, in the input's own precision, 16
// float lanes per AVX-512 vector): adding the square entering and subtracting the one leaving
// -- the same rounded value that was added -- leaves no rounding drift behind, so the sum is
// as accurate as summing the window directly, however large a value that passed through was.
template <typename T>
FA_ALWAYS_INLINE void window_add(T& s, T& c, T v) {
  const T t = s + v, bp = t - s;
  c += (s - (t - bp)) + (v - bp);
  s = t;
}

// NC(S) layout: channel planes of S contiguous pixels. A task owns a block of pixels of one
// sample and slides the window down the channels, vectorized across the block.
constexpr int64_t kLrnBlock = 512;

template <typename scalar_t>
FA_ALWAYS_INLINE void lrn_planar_range(const scalar_t* x, scalar_t* y, int64_t C, int64_t S, int64_t size,
                                       double alpha, double beta, double k, int64_t begin, int64_t end) {
  using T = scalar_t;
  const int64_t blocks = (S + kLrnBlock - 1) / kLrnBlock;
  const int64_t pre = size / 2, post = (size - 1) / 2;
  const T scale = static_cast<T>(alpha / static_cast<double>(size)), kk = static_cast<T>(k);
  const InvPow<T> ip(beta);
  T sum[kLrnBlock], comp[kLrnBlock], d[kLrnBlock];
  for (int64_t t = begin; t < end; ++t) {
    const int64_t n = t / blocks, s0 = (t % blocks) * kLrnBlock;
    const int64_t len = std::min(kLrnBlock, S - s0);
    const T* xb = x + n * C * S + s0;
    T* yb = y + n * C * S + s0;
    std::fill(sum, sum + len, T(0));
    std::fill(comp, comp + len, T(0));
    for (int64_t c = 0; c < std::min(post, C); ++c) {
      const T* xc = xb + c * S;
      for (int64_t i = 0; i < len; ++i) window_add(sum[i], comp[i], xc[i] * xc[i]);
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t enter = c + post, leave = c - pre - 1;
      if (enter < C) {
        const T* xe = xb + enter * S;
        for (int64_t i = 0; i < len; ++i) window_add(sum[i], comp[i], xe[i] * xe[i]);
      }
      if (leave >= 0) {
        const T* xl = xb + leave * S;
        for (int64_t i = 0; i < len; ++i) window_add(sum[i], comp[i], -(xl[i] * xl[i]));
      }
      // Rounding can leave the running sum slightly below zero; a sum of squares is not.
      for (int64_t i = 0; i < len; ++i) d[i] = kk + scale * std::max(sum[i] + comp[i], T(0));
      scale_by_inv_pow(ip, d, d, len);
      const T* xc = xb + c * S;
      T* yc = yb + c * S;
      for (int64_t i = 0; i < len; ++i) yc[i] = xc[i] * d[i];
    }
  }
}

FA_CPU_CLONES void lrn_planar_tasks(const float* x, float* y, int64_t C, int64_t S, int64_t size, double alpha,
                                    double beta, double k, int64_t begin, int64_t end) {
  lrn_planar_range<float>(x, y, C, S, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void lrn_planar_tasks(const double* x, double* y, int64_t C, int64_t S, int64_t size, double alpha,
                                    double beta, double k, int64_t begin, int64_t end) {
  lrn_planar_range<double>(x, y, C, S, size, alpha, beta, k, begin, end);
}

// float32 on AVX-512 for windows up to kRingMax channels and beta 0.75 or 0.5 (the networks'
// LRNs): the window sum is the direct sum of a ring of the window's squares (each square is
// computed once, when its channel enters; no running subtraction, so nothing drifts), and
// d^-beta comes from the reciprocal square root estimate refined by one Newton step
// (d^-0.75 = q^2 * q^-1/2 with q = d^-1/2): no division, square root or pow. The compensated
// running sum above, with its sqrt and division, was compute-bound at about 5x the copy time
// of its input; this path does a third of the work per element.
constexpr int64_t kRingMax = 16;
// Pixels per task: long enough runs of each plane for the hardware prefetcher.
constexpr int64_t kFastBlock = 512;
constexpr int64_t kPrefetchAhead = 3;

bool lrn_fast_path(int64_t size, double beta) {
  return use_avx512_path() && size <= kRingMax && (beta == 0.75 || beta == 0.5);
}

#if defined(__x86_64__)
// 1/sqrt(d) to ~1 ulp: the 14-bit estimate and one Newton step, r * (1.5 - 0.5 * d * r^2).
__attribute__((target("avx512f"))) inline __m512 rsqrt_nr(__m512 d) {
  const __m512 r = _mm512_rsqrt14_ps(d);
  const __m512 hd = _mm512_mul_ps(_mm512_set1_ps(0.5f), d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(_mm512_mul_ps(hd, r), r, _mm512_set1_ps(1.5f)));
}

// Channel e's squares into its ring slot (zeros for channels past the end).
__attribute__((target("avx512f"))) void lrn_enter(const float* xb, int64_t C, int64_t stride, int64_t len,
                                                  int64_t size, int64_t e, float* ring) {
  float* slot = ring + (e % size) * kFastBlock;
  if (e >= C) {
    std::fill(slot, slot + len, 0.f);
    return;
  }
  const float* xe = xb + e * stride;
  // The block's rows are short (2 KiB) and a plane apart, too short a stream for the hardware
  // prefetcher: fetch the row that enters kPrefetchAhead channels from now.
  const float* ahead = e + kPrefetchAhead < C ? xe + kPrefetchAhead * stride : nullptr;
  for (int64_t i = 0; i < len; i += 16) {
    const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i));
    if (ahead) _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
    const __m512 v = _mm512_maskz_loadu_ps(m, xe + i);
    _mm512_mask_storeu_ps(slot + i, m, _mm512_mul_ps(v, v));
  }
}

// One block: channels 0..C-1 of `len` pixels, channel planes `stride` floats apart.
// ring: scratch of size * kFastBlock floats.
__attribute__((target("avx512f"))) void lrn_block_avx512(const float* xb, float* yb, int64_t C, int64_t stride,
                                                         int64_t len, int64_t size, float scale, float k,
                                                         bool three_quarters, float* ring) {
  const int64_t post = (size - 1) / 2;
  const __m512 kv = _mm512_set1_ps(k), sv = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
  for (int64_t j = 0; j < size; ++j) std::fill(ring + j * kFastBlock, ring + j * kFastBlock + len, 0.f);
  for (int64_t e = 0; e < std::min(post, C); ++e) lrn_enter(xb, C, stride, len, size, e, ring);
  for (int64_t c = 0; c < C; ++c) {
    // The slot of channel c - pre - 1 (leaving) is the slot of c + post (entering).
    lrn_enter(xb, C, stride, len, size, c + post, ring);
    const float* xc = xb + c * stride;
    float* yc = yb + c * stride;
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i));
      // The output line a few channels on: storing into it needs it in cache first.
      _mm_prefetch(reinterpret_cast<const char*>(yc + kPrefetchAhead * stride + i), _MM_HINT_T0);
      __m512 sum = _mm512_maskz_loadu_ps(m, ring + i);
      for (int64_t j = 1; j < size; ++j) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, ring + j * kFastBlock + i));
      // Masked-off lanes hold d = k: their (unused) result stays finite.
      const __m512 d = _mm512_fmadd_ps(sv, _mm512_max_ps(sum, zero), kv);
      __m512 f = rsqrt_nr(d);
      if (three_quarters) f = _mm512_mul_ps(_mm512_mul_ps(f, f), rsqrt_nr(f));
      _mm512_mask_storeu_ps(yc + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xc + i), f));
    }
  }
}
#endif

template <typename scalar_t>
void lrn_planar(const scalar_t* x, scalar_t* y, int64_t N, int64_t C, int64_t S, int64_t size,
                double alpha, double beta, double k) {
#if defined(__x86_64__)
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (lrn_fast_path(size, beta)) {
      const int64_t blocks = (S + kFastBlock - 1) / kFastBlock;
      const float scale = static_cast<float>(alpha / static_cast<double>(size)), kk = static_cast<float>(k);
      at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> ring(static_cast<size_t>(size * kFastBlock));
        for (int64_t t = begin; t < end; ++t) {
          const int64_t n = t / blocks, s0 = (t % blocks) * kFastBlock;
          lrn_block_avx512(x + n * C * S + s0, y + n * C * S + s0, C, S, std::min(kFastBlock, S - s0), size, scale, kk,
                           beta == 0.75, ring.data());
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
  lrn_block_avx512(xt, yt, C, len, len, size, static_cast<float>(alpha / static_cast<double>(size)),
                   static_cast<float>(k), beta == 0.75, ring);
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
  std::vector<float> ring(fast ? static_cast<size_t>(size * kFastBlock) : 0);
  for (int64_t p0 = begin; p0 < end; p0 += kPix) {
    const int64_t np = std::min(kPix, end - p0);
    for (int64_t j = 0; j < kPix; ++j) {
      const T* xp = x + (p0 + std::min(j, np - 1)) * C;  // unused lanes repeat the last pixel
      for (int64_t c = 0; c < C; ++c) xt[c * kPix + j] = xp[c];
    }
    if (!lrn_tile_fast(xt.data(), yt.data(), C, kPix, size, alpha, beta, k, ring.data())) {
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
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(fmt));
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
