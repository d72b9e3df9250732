// Max-pooling on the CPU (no indices). Padding acts as -inf; NaN propagates as in
// torch. Planar layout: per output row, a vertical max over the window's input rows
// (vectorized along W), then the horizontal max over that row; the networks' 3x3/2 pooling
// in float32 has its own AVX-512 loops (pool_3x3s2_*), and so have torchvision GoogLeNet's
// 2x2/2 pooling (pool_2x2s2_planes) and the Inception modules' 3x3/1 padded pooling
// (pool_3x3s1_strips). Channels-last layout: the max runs over contiguous channel vectors. Dilated windows (no network uses them) take a plain loop
// over the taps in either layout.
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
#include "cpu/max_pool2d_kernels.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

FA_CPU_CLONES_AVX2 void pool_planar_tasks(const float* x, float* y, const PoolGeometry& g, int64_t begin, int64_t end) {
  pool_planar_range<float>(x, y, g, begin, end);
}
FA_CPU_CLONES_AVX2 void pool_planar_tasks(const double* x, double* y, const PoolGeometry& g, int64_t begin, int64_t end) {
  pool_planar_range<double>(x, y, g, begin, end);
}

template <typename scalar_t>
void pool_planar(const scalar_t* x, scalar_t* y, const PoolGeometry& g) {
  // The planes' loop: an AVX-512 one for the networks' float32 windows, else the portable one.
  using Planes = void (*)(const scalar_t*, scalar_t*, const PoolGeometry&, int64_t, int64_t);
  Planes planes = &pool_planar_tasks;
#if defined(__x86_64__)
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (pool_3x3s2_fast(g)) {
      planes = [](const float* x, float* y, const PoolGeometry& g, int64_t begin, int64_t end) {
        pool_3x3s2_planes(x, y, g, begin, end);
      };
    } else if (pool_2x2s2_fast(g)) {
      planes = &pool_2x2s2_planes;
    } else if (pool_3x3s1_fast(g)) {
      planes = &pool_3x3s1_strips<true>;
    }
  }
#endif
  at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) { planes(x, y, g, begin, end); });
}

template <typename scalar_t>
FA_ALWAYS_INLINE void pool_channels_last_range(const scalar_t* x, scalar_t* y, const PoolGeometry& g, int64_t begin,
                                               int64_t end) {
  const int64_t C = g.channels, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / OH, oh = t % OH;
      const int64_t h0 = std::max<int64_t>(oh * g.stride_h - g.pad_h, 0);
      const int64_t h1 = std::min(oh * g.stride_h - g.pad_h + g.kernel_h, H);
      const scalar_t* xn = x + n * H * W * C;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.stride_w - g.pad_w, 0);
        const int64_t w1 = std::min(ow * g.stride_w - g.pad_w + g.kernel_w, W);
        scalar_t* yo = y + ((n * OH + oh) * OW + ow) * C;
        std::copy(xn + (h0 * W + w0) * C, xn + (h0 * W + w0) * C + C, yo);
        for (int64_t h = h0; h < h1; ++h) {
          for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; ++w) {
            const scalar_t* xi = xn + (h * W + w) * C;
            for (int64_t c = 0; c < C; ++c) yo[c] = nan_max(yo[c], xi[c]);
          }
        }
      }
    }
  }
}

FA_CPU_CLONES void pool_channels_last_tasks(const float* x, float* y, const PoolGeometry& g, int64_t begin,
                                            int64_t end) {
  pool_channels_last_range<float>(x, y, g, begin, end);
}
FA_CPU_CLONES void pool_channels_last_tasks(const double* x, double* y, const PoolGeometry& g, int64_t begin,
                                            int64_t end) {
  pool_channels_last_range<double>(x, y, g, begin, end);
}

template <typename scalar_t>
void pool_channels_last(const scalar_t* x, scalar_t* y, const PoolGeometry& g) {
  at::parallel_for(0, g.batch * g.out_h, 1, [&](int64_t begin, int64_t end) {
    pool_channels_last_tasks(x, y, g, begin, end);
  });
}

template <typename scalar_t>
void pool_dilated(const scalar_t* x, scalar_t* y, const PoolGeometry& g, bool channels_last) {
  const int64_t C = g.channels, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  // Element strides of (c, h, w) within one sample, input and output.
  const int64_t xc = channels_last ? 1 : H * W, xh = channels_last ? W * C : W, xw = channels_last ? C : 1;
  const int64_t yc = channels_last ? 1 : OH * OW, yh = channels_last ? OW * C : OW, yw = channels_last ? C : 1;
  at::parallel_for(0, g.batch * OH, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / OH, oh = t % OH;
      const scalar_t* xn = x + n * C * H * W;
      scalar_t* yn = y + n * C * OH * OW;
      for (int64_t ow = 0; ow < OW; ++ow) {
        for (int64_t c = 0; c < C; ++c) {
          scalar_t m = -std::numeric_limits<scalar_t>::infinity();  // padding acts as -inf
          for (int64_t i = 0; i < g.kernel_h; ++i) {
            const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilation_h;
            if (h < 0 || h >= H) continue;
            for (int64_t j = 0; j < g.kernel_w; ++j) {
              const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilation_w;
              if (w >= 0 && w < W) m = nan_max(m, xn[c * xc + h * xh + w * xw]);
            }
          }
          yn[c * yc + oh * yh + ow * yw] = m;
        }
      }
    }
  });
}

at::Tensor max_pool2d_cpu(const at::Tensor& input, c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                          c10::IntArrayRef padding, c10::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  check_float_dtype("max_pool2d", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = pooled_empty({g.batch, g.channels, g.out_h, g.out_w}, x.options(), fmt);
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_max_pool2d_cpu", [&] {
    if (g.dilation_h != 1 || g.dilation_w != 1) {
      pool_dilated<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g,
                             fmt == at::MemoryFormat::ChannelsLast);
    } else if (fmt == at::MemoryFormat::ChannelsLast) {
      pool_channels_last<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g);
    } else {
      pool_planar<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g);
    }
  });
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("max_pool2d", &fastalex::cpu::max_pool2d_cpu);
}
