// Cross-channel LRN on the CPU: y = x * (k + alpha/size * sum_{window} x^2)^-beta.
// One pass: each element of x is read once from memory and y written once; the channel
// window is a running sum (add the square entering, subtract the one leaving), so the
// cost per pixel is O(C) whatever the window size.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

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

template <typename scalar_t>
void lrn_planar(const scalar_t* x, scalar_t* y, int64_t N, int64_t C, int64_t S, int64_t size,
                double alpha, double beta, double k) {
  const int64_t blocks = (S + kLrnBlock - 1) / kLrnBlock;
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    lrn_planar_tasks(x, y, C, S, size, alpha, beta, k, begin, end);
  });
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
  for (int64_t p0 = begin; p0 < end; p0 += kPix) {
    const int64_t np = std::min(kPix, end - p0);
    for (int64_t j = 0; j < kPix; ++j) {
      const T* xp = x + (p0 + std::min(j, np - 1)) * C;  // unused lanes repeat the last pixel
      for (int64_t c = 0; c < C; ++c) xt[c * kPix + j] = xp[c];
    }
    lrn_planar_range<T>(xt.data(), yt.data(), C, kPix, size, alpha, beta, k, 0, 1);
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
