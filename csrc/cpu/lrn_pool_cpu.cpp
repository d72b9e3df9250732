// The fused LRN + max-pool ops on the CPU (lrn_max_pool2d: LRN then pool; max_pool2d_lrn: pool
// then LRN), each one pass over memory: the input read once, only the pooled result written.
//
// A task owns output rows [oh0, oh1) of one sample (a row group), so batch 1 splits across
// threads too; the input rows their windows read form a band, which is a pooling problem of its
// own (band_geometry). Within a task the channels go one after another:
// - LRN first: the band's LRN, channel c's rows into a scratch band in L1, then that scratch
//   pooled straight into channel c's output rows;
// - pool first: channel e's band pooled into a ring of pooled rows as e enters the LRN window,
//   the window's LRN written straight into the output rows.
// float32 on AVX-512 with the networks' LRN (lrn_fast_path) streams channel by channel through
// lrn_band_avx512; everything else (other dtypes, windows, betas, or fast paths off) takes the
// portable LRN on the whole band in a scratch of C x band, then pools it, or the other way round.
// Channels-last input is gathered into a planar band and the results scattered back, so both
// layouts share the planar code. NaN and infinities come out as from the unfused pair: each
// part keeps torch's rules on values the other part computed exactly as it would have.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/lrn_avx512.h"
#include "cpu/lrn_kernels.h"
#include "cpu/max_pool2d_kernels.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

struct LrnArgs {
  int64_t size;
  double alpha, beta, k;
};

// Output rows [oh0, oh1) read input rows [h0, h1): as a map of its own (one plane of in_h = h1 -
// h0 rows, the top padding what is left of it above h0), so the pooling loops run on the band
// unchanged. Rows past the input (ceil mode) are clipped as on the whole map.
struct Band {
  PoolGeometry g;
  int64_t h0;
};

Band band_geometry(const PoolGeometry& g, int64_t oh0, int64_t oh1) {
  const int64_t top = oh0 * g.stride_h - g.pad_h;
  const int64_t h0 = std::max<int64_t>(top, 0);
  const int64_t h1 = std::min(g.in_h, (oh1 - 1) * g.stride_h - g.pad_h + g.kernel_h);
  PoolGeometry b = g;
  b.batch = b.channels = 1;
  b.in_h = h1 - h0;
  b.out_h = oh1 - oh0;
  b.pad_h = h0 - top;
  return Band{b, h0};
}

// One channel's band pooled: x (gb.in_h x in_w) into y (gb.out_h x out_w, contiguous).
template <typename T>
void pool_band(const T* x, T* y, const PoolGeometry& gb, bool may_have_nan = true) {
#if defined(__x86_64__)
  if constexpr (std::is_same<T, float>::value) {
    if (pool_3x3s2_fast(gb)) return pool_3x3s2_planes(x, y, gb, 0, 1, may_have_nan);
  }
#endif
  pool_planar_range<T>(x, y, gb, 0, 1);
}

// The portable LRN of `len` pixels, x's channel rows xs apart, y's ys apart, in blocks of
// kLrnBlock pixels.
template <typename T>
void lrn_rows_portable(const T* x, int64_t xs, T* y, int64_t ys, int64_t C, int64_t len, const LrnArgs& a,
                       LrnLanes<T>& lanes) {
  for (int64_t s0 = 0; s0 < len; s0 += kLrnBlock) {
    const int64_t n = std::min(kLrnBlock, len - s0);
    switch (inv_pow_mode(a.beta)) {
      case 1: lrn_planar_block<1>(x + s0, xs, y + s0, ys, C, n, a.size, a.alpha, a.beta, a.k, lanes); break;
      case 2: lrn_planar_block<2>(x + s0, xs, y + s0, ys, C, n, a.size, a.alpha, a.beta, a.k, lanes); break;
      case 3: lrn_planar_block<3>(x + s0, xs, y + s0, ys, C, n, a.size, a.alpha, a.beta, a.k, lanes); break;
      default: lrn_planar_block<0>(x + s0, xs, y + s0, ys, C, n, a.size, a.alpha, a.beta, a.k, lanes); break;
    }
  }
}

// Scratch of one thread, sized for the largest band of the op (bands of a chunk differ only at
// the map's edges).
template <typename T>
struct Workspace {
  Workspace(bool fast, int64_t C, int64_t band_in, int64_t band_out, int64_t size, bool channels_last)
      : stride(round_up16(std::max(band_in, band_out))),
        ring(fast ? lrn_ring_floats(size, stride) : 0),
        rows(fast ? size * stride : 0),
        scratch(fast ? 0 : static_cast<size_t>(C * std::max(band_in, band_out))),
        lanes(fast ? nullptr : new LrnLanes<T>),
        in(channels_last ? static_cast<size_t>(C * band_in) : 0),
        out(channels_last ? static_cast<size_t>(C * band_out) : 0) {}
  int64_t stride;
  AlignedFloats ring;   // fast: the LRN window's squares and a row of d
  AlignedFloats rows;   // fast: a channel's LRN rows (LRN first) or the ring of pooled rows (pool first)
  std::vector<T> scratch;             // portable: the whole band after its first part
  std::unique_ptr<LrnLanes<T>> lanes;  // portable: the LRN's running sums
  std::vector<T> in, out;             // channels-last: the band gathered into planes, results to scatter
};

// One band, planar: channel c's input band at x + c * xs (rows in_w apart), its output rows at
// y + c * ys (contiguous).
template <typename T>
void lrn_pool_band(bool lrn_first, bool fast, const T* x, int64_t xs, T* y, int64_t ys, int64_t C,
                   const PoolGeometry& gb, const LrnArgs& a, Workspace<T>& ws) {
  const int64_t len_in = gb.in_h * gb.in_w, len_out = gb.out_h * gb.out_w;
#if defined(__x86_64__)
  if constexpr (std::is_same<T, float>::value) {
    if (fast && lrn_first) {
      auto band = [&](int64_t c) { return x + c * xs; };
      float* rows = ws.rows.get();
      lrn_band_avx512(C, len_in, a.size, a.alpha, a.beta, a.k, ws.ring.get(), ws.stride, band, band, band,
                      [&](int64_t) { return rows; },
                      [&](int64_t c, bool may_have_nan) { pool_band(rows, y + c * ys, gb, may_have_nan); });
      return;
    }
    if (fast) {
      auto slot = [&](int64_t c) { return ws.rows.get() + (c % a.size) * ws.stride; };
      lrn_band_avx512(
          C, len_out, a.size, a.alpha, a.beta, a.k, ws.ring.get(), ws.stride,
          [&](int64_t e) {
            pool_band(x + e * xs, slot(e), gb);
            return static_cast<const float*>(slot(e));
          },
          // (the pooling loop prefetches the input rows it reads)
          [](int64_t) { return static_cast<const float*>(nullptr); },
          [&](int64_t c) { return static_cast<const float*>(slot(c)); }, [&](int64_t c) { return y + c * ys; },
          [](int64_t, bool) {});
      return;
    }
  }
#endif
  T* s = ws.scratch.data();
  if (lrn_first) {
    lrn_rows_portable(x, xs, s, len_in, C, len_in, a, *ws.lanes);
    for (int64_t c = 0; c < C; ++c) pool_band(s + c * len_in, y + c * ys, gb);
  } else {
    for (int64_t c = 0; c < C; ++c) pool_band(x + c * xs, s + c * len_out, gb);
    lrn_rows_portable(s, len_out, y, ys, C, len_out, a, *ws.lanes);
  }
}

// Output rows per task: bands within the scratch budget, then the group that spreads the rows'
// work most evenly over the threads (batch 1 has few groups).
int64_t rows_in(const PoolGeometry& g, int64_t rows_out) {
  return std::min(g.in_h, (rows_out - 1) * g.stride_h + g.kernel_h);
}

// Floats of one channel's band that keep the fast path's ring and rows in L1 / the portable
// path's C x band scratch in L2.
constexpr int64_t kFastBand = 1024;
constexpr int64_t kPortableScratch = 1 << 16;

int64_t choose_rows_per_task(const PoolGeometry& g, bool fast, bool lrn_first, int64_t C) {
  auto band_floats = [&](int64_t r) {
    const int64_t per_channel = lrn_first || !fast ? std::max(rows_in(g, r) * g.in_w, r * g.out_w) : r * g.out_w;
    return fast ? per_channel : per_channel * C;
  };
  const int64_t limit = fast ? kFastBand : kPortableScratch;
  int64_t most = 1;
  while (most < g.out_h && band_floats(most + 1) <= limit) ++most;
  const int64_t threads = std::max(1, at::get_num_threads());
  int64_t best = most, best_cost = -1;
  for (int64_t r = most; r >= 1; --r) {
    const int64_t tasks = g.batch * ((g.out_h + r - 1) / r);
    // Work per thread: its share of tasks times a task's input rows (each task also redoes the
    // rows its band shares with the next one).
    const int64_t cost = (tasks + threads - 1) / threads * rows_in(g, r);
    if (best_cost < 0 || cost < best_cost) best = r, best_cost = cost;
  }
  return best;
}

template <typename T>
void lrn_pool_cpu_impl(bool lrn_first, const T* x, T* y, const PoolGeometry& g, const LrnArgs& a,
                       bool channels_last) {
  bool fast = false;
  if constexpr (std::is_same<T, float>::value) fast = lrn_fast_path(a.size, a.beta);
  const int64_t C = g.channels, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  const int64_t rows = choose_rows_per_task(g, fast, lrn_first, C);
  const int64_t groups = (OH + rows - 1) / rows;
  const int64_t band_in = rows_in(g, rows) * W, band_out = rows * OW;
  at::parallel_for(0, g.batch * groups, 1, [&](int64_t begin, int64_t end) {
    Workspace<T> ws(fast, C, band_in, band_out, a.size, channels_last);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / groups, oh0 = (t % groups) * rows, oh1 = std::min(OH, oh0 + rows);
      const Band b = band_geometry(g, oh0, oh1);
      const int64_t len_in = b.g.in_h * W, len_out = b.g.out_h * OW;
      if (!channels_last) {
        lrn_pool_band<T>(lrn_first, fast, x + (n * C * H + b.h0) * W, H * W, y + (n * C * OH + oh0) * OW, OH * OW, C,
                         b.g, a, ws);
        continue;
      }
      // (pixel, channel) -> (channel, pixel) and back; the band's pixels are contiguous rows.
      const T* xs = x + (n * H + b.h0) * W * C;
      for (int64_t p = 0; p < len_in; ++p) {
        for (int64_t c = 0; c < C; ++c) ws.in[c * len_in + p] = xs[p * C + c];
      }
      lrn_pool_band<T>(lrn_first, fast, ws.in.data(), len_in, ws.out.data(), len_out, C, b.g, a, ws);
      T* ys = y + (n * OH + oh0) * OW * C;
      for (int64_t p = 0; p < len_out; ++p) {
        for (int64_t c = 0; c < C; ++c) ys[p * C + c] = ws.out[c * len_out + p];
      }
    }
  });
}

at::Tensor lrn_pool_cpu(bool lrn_first, const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                        c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                        bool ceil_mode) {
  const PoolGeometry g =
      check_lrn_pool(lrn_first, input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = pooled_empty({g.batch, g.channels, g.out_h, g.out_w}, x.options(), fmt);
  if (y.numel() == 0) return y;
  const LrnArgs a{size, alpha, beta, k};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_lrn_pool_cpu", [&] {
    lrn_pool_cpu_impl<scalar_t>(lrn_first, x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g, a,
                                fmt == at::MemoryFormat::ChannelsLast);
  });
  return y;
}

at::Tensor lrn_max_pool2d_cpu(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                              c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                              bool ceil_mode) {
  return lrn_pool_cpu(true, input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode);
}

at::Tensor max_pool2d_lrn_cpu(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                              c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                              bool ceil_mode) {
  return lrn_pool_cpu(false, input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode);
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("lrn_max_pool2d", &fastalex::cpu::lrn_max_pool2d_cpu);
  m.impl("max_pool2d_lrn", &fastalex::cpu::max_pool2d_lrn_cpu);
}
