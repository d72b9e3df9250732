// The gradient of the cross-channel LRN on the CPU, in one pass down the channels per block of
// pixels. With D = k + alpha/size * W(x^2) (W: the window sum over [c - pre, c + post]),
//   dx = g * D^-beta - 2 alpha beta / size * x * W'(t),  t = g * y / D,
// W' the transposed window [c - post, c + pre]. Step m of the sweep computes D, D^-beta and t of
// channel m (D's window reaches x[m + post]), then dx of channel c = m - pre, whose transposed
// window ends at t[m]. t and D^-beta wait in rings of `size` rows (slot j % size); rows of x, g
// and y are read where they are (the block's few rows in the window stay in cache).
//
// Both window sums are summed directly, in channel order and in the input's dtype, as the
// torch-op formula of fastalex/ops/local_response_norm.py sums them: NaN, infinities and
// overflow come out exactly as there. That costs O(size) adds per element rather than a running
// sum's O(1); a running sum would need the forward's NaN/inf counts and compensation to match.
// The code is portable (FA_CPU_CLONES vectorizes it across the block's pixels); there is no
// hand-written AVX-512 path, so cpu_fastpath does not change this op.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/lrn_kernels.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

// Pixels per planar block: a ring row each for t and D^-beta per window channel.
constexpr int64_t kBlock = 256;

// acc[i] = sum over the n rows r (rows `stride` apart, in order) of r[i] * r[i], or of r[i].
template <bool kSquare, typename T>
FA_ALWAYS_INLINE void sum_rows(T* __restrict acc, const T* rows, int64_t stride, int64_t n, int64_t len) {
  const T* r = rows;
  for (int64_t i = 0; i < len; ++i) acc[i] = kSquare ? r[i] * r[i] : r[i];
  for (int64_t j = 1; j < n; ++j) {
    r = rows + j * stride;
    for (int64_t i = 0; i < len; ++i) acc[i] += kSquare ? r[i] * r[i] : r[i];
  }
}

struct LrnBackwardScratch {
  explicit LrnBackwardScratch(int64_t size) : t(size * kBlock), p(size * kBlock), acc(kBlock) {}
  std::vector<double> t, p, acc;  // as T: double is the widest, a float block uses the first half
};

// One block of `len` pixels: g, x, y and gx rows of channel c at c * S.
template <int kMode, typename T>
FA_ALWAYS_INLINE void lrn_backward_block(const T* g, const T* x, const T* y, T* gx, int64_t S, int64_t C, int64_t len,
                                         int64_t size, double alpha, double beta, double k,
                                         LrnBackwardScratch& scratch) {
  T* ring_t = reinterpret_cast<T*>(scratch.t.data());
  T* ring_p = reinterpret_cast<T*>(scratch.p.data());
  T* acc = reinterpret_cast<T*>(scratch.acc.data());
  const int64_t pre = size / 2, post = (size - 1) / 2;
  // The scalars rounded to T, as torch's tensor-scalar ops round them.
  const T scale = static_cast<T>(alpha / static_cast<double>(size)), kk = static_cast<T>(k);
  const T coef = static_cast<T>(2.0 * alpha * beta / static_cast<double>(size));
  for (int64_t m = 0; m < C + pre; ++m) {
    if (m < C) {
      const int64_t lo = std::max<int64_t>(m - pre, 0), hi = std::min(m + post, C - 1);
      sum_rows<true>(acc, x + lo * S, S, hi - lo + 1, len);
      T* __restrict pt = ring_t + (m % size) * kBlock;
      T* __restrict pp = ring_p + (m % size) * kBlock;
      const T* __restrict gm = g + m * S;
      const T* __restrict ym = y + m * S;
      bool nonpositive = false;
      for (int64_t i = 0; i < len; ++i) {
        const T d = kk + scale * acc[i];
        pt[i] = gm[i] * ym[i] / d;
        acc[i] = d;
        nonpositive |= d <= T(0);
        if constexpr (kMode != 0) pp[i] = inv_pow<kMode>(d, beta);
      }
      // pow does not vectorize: a loop of its own. inv_pow's forms are what torch's d.pow(-beta)
      // computes (1 / sqrt(d) for beta 0.5, 1 / d for beta 1), except beta 0.75's two square roots
      // at d <= 0 (-0 and -inf: only with k <= 0 or alpha < 0), which take pow as torch does.
      if (kMode == 0 || (kMode == 1 && nonpositive)) {
        for (int64_t i = 0; i < len; ++i) {
          if (kMode == 0 || acc[i] <= T(0)) pp[i] = std::pow(acc[i], -static_cast<T>(beta));
        }
      }
    }
    const int64_t c = m - pre;
    if (c < 0) continue;
    // t of channels [c - post, c + pre]: the last `size` rows of the ring, channel order.
    const int64_t lo = std::max<int64_t>(c - post, 0), hi = std::min(m, C - 1);
    const T* first = ring_t + (lo % size) * kBlock;
    for (int64_t i = 0; i < len; ++i) acc[i] = first[i];
    for (int64_t j = lo + 1; j <= hi; ++j) {
      const T* __restrict r = ring_t + (j % size) * kBlock;
      for (int64_t i = 0; i < len; ++i) acc[i] += r[i];
    }
    const T* __restrict pc = ring_p + (c % size) * kBlock;
    const T* __restrict gc = g + c * S;
    const T* __restrict xc = x + c * S;
    T* __restrict out = gx + c * S;
    for (int64_t i = 0; i < len; ++i) out[i] = gc[i] * pc[i] - coef * xc[i] * acc[i];
  }
}

template <typename T>
FA_ALWAYS_INLINE void lrn_backward_block_any(const T* g, const T* x, const T* y, T* gx, int64_t S, int64_t C,
                                             int64_t len, int64_t size, double alpha, double beta, double k,
                                             LrnBackwardScratch& scratch) {
  switch (inv_pow_mode(beta)) {
    case 1: return lrn_backward_block<1>(g, x, y, gx, S, C, len, size, alpha, beta, k, scratch);
    case 2: return lrn_backward_block<2>(g, x, y, gx, S, C, len, size, alpha, beta, k, scratch);
    case 3: return lrn_backward_block<3>(g, x, y, gx, S, C, len, size, alpha, beta, k, scratch);
    default: return lrn_backward_block<0>(g, x, y, gx, S, C, len, size, alpha, beta, k, scratch);
  }
}

// NC(S) layout: tasks [begin, end) of (sample, block of kBlock pixels).
template <typename T>
FA_ALWAYS_INLINE void planar_range(const T* g, const T* x, const T* y, T* gx, int64_t C, int64_t S, int64_t size,
                                   double alpha, double beta, double k, int64_t begin, int64_t end) {
  const int64_t blocks = (S + kBlock - 1) / kBlock;
  LrnBackwardScratch scratch(size);
  for (int64_t task = begin; task < end; ++task) {
    const int64_t off = (task / blocks) * C * S + (task % blocks) * kBlock;
    const int64_t len = std::min(kBlock, S - (task % blocks) * kBlock);
    lrn_backward_block_any(g + off, x + off, y + off, gx + off, S, C, len, size, alpha, beta, k, scratch);
  }
}

FA_CPU_CLONES void planar_tasks(const float* g, const float* x, const float* y, float* gx, int64_t C, int64_t S,
                                int64_t size, double alpha, double beta, double k, int64_t begin, int64_t end) {
  planar_range(g, x, y, gx, C, S, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void planar_tasks(const double* g, const double* x, const double* y, double* gx, int64_t C, int64_t S,
                                int64_t size, double alpha, double beta, double k, int64_t begin, int64_t end) {
  planar_range(g, x, y, gx, C, S, size, alpha, beta, k, begin, end);
}

// Channels-last layout: pixels [begin, end), each pixel's C channels contiguous. Blocks of kPix
// pixels of g, x and y are transposed into (C x kPix) tiles, run through the planar block, and
// the tile of dx transposed back.
template <typename T>
FA_ALWAYS_INLINE void channels_last_range(const T* g, const T* x, const T* y, T* gx, int64_t C, int64_t size,
                                          double alpha, double beta, double k, int64_t begin, int64_t end) {
  constexpr int64_t kPix = 16;
  std::vector<T> tiles(4 * C * kPix);
  T *gt = tiles.data(), *xt = gt + C * kPix, *yt = xt + C * kPix, *dt = yt + C * kPix;
  LrnBackwardScratch scratch(size);
  for (int64_t p0 = begin; p0 < end; p0 += kPix) {
    const int64_t np = std::min(kPix, end - p0);
    for (int64_t j = 0; j < kPix; ++j) {
      const int64_t off = (p0 + std::min(j, np - 1)) * C;  // unused lanes repeat the last pixel
      for (int64_t c = 0; c < C; ++c) {
        gt[c * kPix + j] = g[off + c];
        xt[c * kPix + j] = x[off + c];
        yt[c * kPix + j] = y[off + c];
      }
    }
    lrn_backward_block_any(gt, xt, yt, dt, kPix, C, kPix, size, alpha, beta, k, scratch);
    for (int64_t j = 0; j < np; ++j) {
      T* out = gx + (p0 + j) * C;
      for (int64_t c = 0; c < C; ++c) out[c] = dt[c * kPix + j];
    }
  }
}

FA_CPU_CLONES void channels_last_tasks(const float* g, const float* x, const float* y, float* gx, int64_t C,
                                       int64_t size, double alpha, double beta, double k, int64_t begin, int64_t end) {
  channels_last_range(g, x, y, gx, C, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void channels_last_tasks(const double* g, const double* x, const double* y, double* gx, int64_t C,
                                       int64_t size, double alpha, double beta, double k, int64_t begin, int64_t end) {
  channels_last_range(g, x, y, gx, C, size, alpha, beta, k, begin, end);
}

at::Tensor local_response_norm_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& output, int64_t size, double alpha, double beta,
                                            double k) {
  check_local_response_norm_backward(grad_output, input, output, size, alpha, beta, k);
  check_float_dtype("local_response_norm_backward", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor g = grad_output.contiguous(fmt), x = input.contiguous(fmt), y = output.contiguous(fmt);
  at::Tensor gx = pooled_empty(x.sizes(), x.options(), fmt);
  if (x.numel() == 0) return gx;
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_local_response_norm_backward_cpu", [&] {
    const scalar_t *gp = g.const_data_ptr<scalar_t>(), *xp = x.const_data_ptr<scalar_t>(),
                   *yp = y.const_data_ptr<scalar_t>();
    scalar_t* out = gx.mutable_data_ptr<scalar_t>();
    if (fmt == at::MemoryFormat::ChannelsLast) {
      // Grains of whole 16-pixel tiles, at least ~16K elements each.
      const int64_t grain = std::max<int64_t>(16, (16384 / std::max<int64_t>(C, 1) + 15) / 16 * 16);
      at::parallel_for(0, N * S, grain, [&](int64_t begin, int64_t end) {
        channels_last_tasks(gp, xp, yp, out, C, size, alpha, beta, k, begin, end);
      });
    } else {
      at::parallel_for(0, N * ((S + kBlock - 1) / kBlock), 1, [&](int64_t begin, int64_t end) {
        planar_tasks(gp, xp, yp, out, C, S, size, alpha, beta, k, begin, end);
      });
    }
  });
  return gx;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("local_response_norm_backward", &fastalex::cpu::local_response_norm_backward_cpu);
}
