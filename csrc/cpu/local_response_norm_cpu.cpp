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
#include <vector>

#include "common/op_checks.h"

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
inline void scale_by_inv_pow(const InvPow<acc_t>& p, const acc_t* d, acc_t* out, int64_t n) {
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

// NC(S) layout: channel planes of S contiguous pixels. A task owns a block of pixels of one
// sample and slides the window down the channels, vectorized across the block.
template <typename scalar_t>
void lrn_planar(const scalar_t* x, scalar_t* y, int64_t N, int64_t C, int64_t S, int64_t size,
                double alpha, double beta, double k) {
  using acc_t = scalar_t;  // float32 or float64 on CPU
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (S + kBlock - 1) / kBlock;
  const int64_t pre = size / 2, post = (size - 1) / 2;
  const acc_t scale = static_cast<acc_t>(alpha / static_cast<double>(size));
  const acc_t kk = static_cast<acc_t>(k);
  const InvPow<acc_t> ip(beta);
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> sum(kBlock), d(kBlock);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks, s0 = (t % blocks) * kBlock;
      const int64_t len = std::min(kBlock, S - s0);
      const scalar_t* xb = x + n * C * S + s0;
      scalar_t* yb = y + n * C * S + s0;
      std::fill(sum.begin(), sum.begin() + len, acc_t(0));
      for (int64_t c = 0; c < std::min(post, C); ++c) {
        const scalar_t* xc = xb + c * S;
        for (int64_t i = 0; i < len; ++i) sum[i] += xc[i] * xc[i];
      }
      for (int64_t c = 0; c < C; ++c) {
        const int64_t enter = c + post, leave = c - pre - 1;
        if (enter < C) {
          const scalar_t* xe = xb + enter * S;
          if (leave >= 0) {
            const scalar_t* xl = xb + leave * S;
            for (int64_t i = 0; i < len; ++i) sum[i] += xe[i] * xe[i] - xl[i] * xl[i];
          } else {
            for (int64_t i = 0; i < len; ++i) sum[i] += xe[i] * xe[i];
          }
        } else if (leave >= 0) {
          const scalar_t* xl = xb + leave * S;
          for (int64_t i = 0; i < len; ++i) sum[i] -= xl[i] * xl[i];
        }
        // The running sum can dip below zero by rounding; a sum of squares cannot.
        for (int64_t i = 0; i < len; ++i) d[i] = kk + scale * std::max(sum[i], acc_t(0));
        scale_by_inv_pow(ip, d.data(), d.data(), len);
        const scalar_t* xc = xb + c * S;
        scalar_t* yc = yb + c * S;
        for (int64_t i = 0; i < len; ++i) yc[i] = xc[i] * d[i];
      }
    }
  });
}

// Channels-last layout: each pixel's C channels are contiguous.
template <typename scalar_t>
void lrn_channels_last(const scalar_t* x, scalar_t* y, int64_t pixels, int64_t C, int64_t size,
                       double alpha, double beta, double k) {
  using acc_t = scalar_t;
  const int64_t pre = size / 2, post = (size - 1) / 2;
  const acc_t scale = static_cast<acc_t>(alpha / static_cast<double>(size));
  const acc_t kk = static_cast<acc_t>(k);
  const InvPow<acc_t> ip(beta);
  at::parallel_for(0, pixels, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)),
                   [&](int64_t begin, int64_t end) {
    std::vector<acc_t> sq(C), d(C);
    for (int64_t p = begin; p < end; ++p) {
      const scalar_t* xp = x + p * C;
      scalar_t* yp = y + p * C;
      for (int64_t c = 0; c < C; ++c) sq[c] = xp[c] * xp[c];
      acc_t sum = 0;
      for (int64_t c = 0; c < std::min(post, C); ++c) sum += sq[c];
      for (int64_t c = 0; c < C; ++c) {
        const int64_t enter = c + post, leave = c - pre - 1;
        if (enter < C) sum += sq[enter];
        if (leave >= 0) sum -= sq[leave];
        d[c] = kk + scale * std::max(sum, acc_t(0));
      }
      scale_by_inv_pow(ip, d.data(), d.data(), C);
      for (int64_t c = 0; c < C; ++c) yp[c] = xp[c] * d[c];
    }
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
