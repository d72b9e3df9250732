// The gradient of max-pooling on the CPU, without stored indices: each window's argmax is found
// again from the input as torch's max_pool2d_with_indices finds it -- the taps inside the input in
// row-major order, a value replacing the running maximum when it is greater or NaN (so the first
// of equal maxima wins, and the last NaN), the first tap when nothing beats -inf -- and the
// window's gradient is added there. A task owns whole planes (NCHW: (n, c) planes; channels-last:
// a block of channels of one sample, all pixels), so it scatters without atomics, and each input
// element sums its gradients in output order, as torch's CPU backward does.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

// The taps [lo, hi) of a window starting at `start` (taps start + i * dilation) inside [0, size).
FA_ALWAYS_INLINE void taps_inside(int64_t start, int64_t kernel, int64_t dilation, int64_t size, int64_t& lo,
                                  int64_t& hi) {
  lo = start < 0 ? (-start + dilation - 1) / dilation : 0;
  hi = start >= size ? 0 : std::min(kernel, (size - start + dilation - 1) / dilation);
}

// Output pixel (oh, ow)'s window: its taps (i, j) in [i_lo, i_hi) x [j_lo, j_hi) lie inside the
// input; pixel(i, j) is the flat input pixel (h * W + w) of tap (i, j), the planar and the
// channels-last walks alike.
struct Window {
  int64_t h0, w0, i_lo, i_hi, j_lo, j_hi, dh, dw, W;
  FA_ALWAYS_INLINE int64_t pixel(int64_t i, int64_t j) const { return (h0 + i * dh) * W + w0 + j * dw; }
};
FA_ALWAYS_INLINE Window window_of(const PoolGeometry& p, int64_t oh, int64_t ow) {
  Window win{oh * p.stride_h - p.pad_h, ow * p.stride_w - p.pad_w, 0, 0, 0, 0, p.dilation_h, p.dilation_w, p.in_w};
  taps_inside(win.h0, p.kernel_h, p.dilation_h, p.in_h, win.i_lo, win.i_hi);
  taps_inside(win.w0, p.kernel_w, p.dilation_w, p.in_w, win.j_lo, win.j_hi);
  return win;
}

// NCHW: planes [begin, end) of H x W inputs and OH x OW gradients; gx planes start zeroed.
template <typename T>
FA_ALWAYS_INLINE void planar_range(const T* g, const T* x, T* gx, const PoolGeometry& p, int64_t begin, int64_t end) {
  const int64_t H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
  for (int64_t plane = begin; plane < end; ++plane) {
    const T* xp = x + plane * H * W;
    const T* gp = g + plane * OH * OW;
    T* out = gx + plane * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Window win = window_of(p, oh, ow);
        int64_t best = win.pixel(win.i_lo, win.j_lo);
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t i = win.i_lo; i < win.i_hi; ++i) {
          for (int64_t j = win.j_lo; j < win.j_hi; ++j) {
            const int64_t at = win.pixel(i, j);
            const T v = xp[at];
            if (v > m || std::isnan(v)) {
              m = v;
              best = at;
            }
          }
        }
        out[best] += gp[oh * OW + ow];
      }
    }
  }
}

// Channels-last: tasks [begin, end) of (sample, block of kChannels channels); each output pixel's
// argmax runs lanewise across the block's channels, then its gradients are added.
constexpr int64_t kChannels = 64;

template <typename T>
FA_ALWAYS_INLINE void channels_last_range(const T* g, const T* x, T* gx, const PoolGeometry& p, int64_t begin,
                                          int64_t end) {
  const int64_t C = p.channels, H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
  const int64_t blocks = (C + kChannels - 1) / kChannels;
  T m[kChannels];
  int64_t best[kChannels];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t n = task / blocks, c0 = (task % blocks) * kChannels, nc = std::min(kChannels, C - c0);
    const T* xn = x + n * H * W * C + c0;
    const T* gn = g + n * OH * OW * C + c0;
    T* out = gx + n * H * W * C + c0;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Window win = window_of(p, oh, ow);
        const int64_t first = win.pixel(win.i_lo, win.j_lo);
        for (int64_t c = 0; c < nc; ++c) {
          m[c] = -std::numeric_limits<T>::infinity();
          best[c] = first;
        }
        for (int64_t i = win.i_lo; i < win.i_hi; ++i) {
          for (int64_t j = win.j_lo; j < win.j_hi; ++j) {
            const int64_t pix = win.pixel(i, j);
            const T* xi = xn + pix * C;
            for (int64_t c = 0; c < nc; ++c) {
              const bool take = xi[c] > m[c] || xi[c] != xi[c];
              m[c] = take ? xi[c] : m[c];
              best[c] = take ? pix : best[c];
            }
          }
        }
        const T* go = gn + (oh * OW + ow) * C;
        for (int64_t c = 0; c < nc; ++c) out[best[c] * C + c] += go[c];
      }
    }
  }
}

FA_CPU_CLONES void planar_tasks(const float* g, const float* x, float* gx, const PoolGeometry& p, int64_t begin,
                                int64_t end) {
  planar_range(g, x, gx, p, begin, end);
}
FA_CPU_CLONES void planar_tasks(const double* g, const double* x, double* gx, const PoolGeometry& p, int64_t begin,
                                int64_t end) {
  planar_range(g, x, gx, p, begin, end);
}
FA_CPU_CLONES void channels_last_tasks(const float* g, const float* x, float* gx, const PoolGeometry& p,
                                       int64_t begin, int64_t end) {
  channels_last_range(g, x, gx, p, begin, end);
}
FA_CPU_CLONES void channels_last_tasks(const double* g, const double* x, double* gx, const PoolGeometry& p,
                                       int64_t begin, int64_t end) {
  channels_last_range(g, x, gx, p, begin, end);
}

at::Tensor max_pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                   c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                                   c10::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry p =
      check_max_pool2d_backward(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode);
  check_float_dtype("max_pool2d_backward", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt), g = grad_output.contiguous(fmt);
  // Zeros: inputs no window takes as its argmax get no gradient.
  at::Tensor gx = pooled_empty(x.sizes(), x.options(), fmt).zero_();
  if (x.numel() == 0 || g.numel() == 0) return gx;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_max_pool2d_backward_cpu", [&] {
    const scalar_t *gp = g.const_data_ptr<scalar_t>(), *xp = x.const_data_ptr<scalar_t>();
    scalar_t* out = gx.mutable_data_ptr<scalar_t>();
    if (fmt == at::MemoryFormat::ChannelsLast) {
      const int64_t tasks = p.batch * ((p.channels + kChannels - 1) / kChannels);
      at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
        channels_last_tasks(gp, xp, out, p, begin, end);
      });
    } else {
      at::parallel_for(0, p.batch * p.channels, 1, [&](int64_t begin, int64_t end) {
        planar_tasks(gp, xp, out, p, begin, end);
      });
    }
  });
  return gx;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("max_pool2d_backward", &fastalex::cpu::max_pool2d_backward_cpu);
}
