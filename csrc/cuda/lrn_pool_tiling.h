// Host side, torch-free: the output tile of lrn_max_pool2d's blocks (lrn_max_pool2d_kernel.cuh).
// Used by the CUDA host code and by the emulator library's lrn_pool_tiling op, through which
// the tests check the halo cost of the networks' shapes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/lrn_max_pool2d_kernel.cuh"

namespace fastalex {
namespace cuda {

struct LrnPoolTiling {
  int tile_h = 0, tile_w = 0;  // output pixels per tile; 0: no tile's input fits a block
  int64_t tiles_h = 0, tiles_w = 0;
  int64_t tile_pixels = 0;     // input pixels of the largest tile
  int64_t pixels_read = 0;     // input pixels read per sample and channel, halos included
};

// Reads halos may add to the input when a tile meeting it exists.
constexpr double kLrnPoolHaloBudget = 1.1;

namespace tiling_detail {

// Over the tiles of `tile` outputs along one dimension: the input each reads, summed and largest.
struct Spans {
  int64_t sum = 0, max = 0;
};
inline Spans spans(int64_t out, int64_t tile, int kernel, int stride, int pad, int64_t in) {
  Spans s;
  for (int64_t o0 = 0; o0 < out; o0 += tile) {
    int64_t lo, hi;
    pool_input_span(o0, out - o0 < tile ? out - o0 : tile, kernel, stride, pad, in, lo, hi);
    s.sum += hi - lo;
    if (hi - lo > s.max) s.max = hi - lo;
  }
  return s;
}

// spans() for tiles of 1, 2, ... outputs, as long as one tile's extent fits `capacity`.
inline std::vector<Spans> spans_by_tile(int64_t out, int kernel, int stride, int pad, int64_t in, int64_t capacity) {
  std::vector<Spans> v;
  for (int64_t t = 1; t <= out; ++t) {
    const Spans s = spans(out, t, kernel, stride, pad, in);
    if (s.max > capacity) break;  // extents only grow with t
    v.push_back(s);
  }
  return v;
}

}  // namespace tiling_detail

// Among the tiles whose input fits one block (kLrnPoolTilePixels) and whose halos keep the input
// pixels read within kLrnPoolHaloBudget x the input: one that gives each of a block's
// kLrnPoolThreads threads an input pixel (or the whole map, if smaller), then the one with the
// most tiles (parallelism for small batches), then the one reading the least. If no tile meets
// the budget, the one reading the least. tile_h == 0 when not even one output's window fits
// (more than kLrnPoolTilePixels taps).
inline LrnPoolTiling choose_lrn_pool_tiling(const PoolParams& q) {
  using tiling_detail::Spans;
  const int64_t cap = kLrnPoolTilePixels;
  const std::vector<Spans> hs = tiling_detail::spans_by_tile(q.out_h, q.kernel_h, q.stride_h, q.pad_h, q.in_h, cap);
  const std::vector<Spans> ws = tiling_detail::spans_by_tile(q.out_w, q.kernel_w, q.stride_w, q.pad_w, q.in_w, cap);
  const double budget = kLrnPoolHaloBudget * double(q.in_h) * double(q.in_w);
  LrnPoolTiling best;
  bool best_within = false;
  for (size_t th = 1; th <= hs.size(); ++th) {
    for (size_t tw = 1; tw <= ws.size(); ++tw) {
      const Spans &h = hs[th - 1], &w = ws[tw - 1];
      if (h.max * w.max > cap) break;  // wider tiles only read more columns
      LrnPoolTiling t;
      t.tile_h = int(th);
      t.tile_w = int(tw);
      t.tiles_h = (q.out_h + th - 1) / th;
      t.tiles_w = (q.out_w + tw - 1) / tw;
      t.tile_pixels = h.max * w.max;
      t.pixels_read = h.sum * w.sum;
      const bool within = double(t.pixels_read) <= budget;
      const int64_t tiles = t.tiles_h * t.tiles_w, best_tiles = best.tiles_h * best.tiles_w;
      const int64_t busy = std::min<int64_t>(t.tile_pixels, kLrnPoolThreads);
      const int64_t best_busy = std::min<int64_t>(best.tile_pixels, kLrnPoolThreads);
      bool better;
      if (best.tile_h == 0 || within != best_within) {
        better = best.tile_h == 0 || within;
      } else if (within) {
        better = busy > best_busy || (busy == best_busy && (tiles > best_tiles || (tiles == best_tiles &&
                                                                                     t.pixels_read < best.pixels_read)));
      } else {
        better = t.pixels_read < best.pixels_read || (t.pixels_read == best.pixels_read && tiles > best_tiles);
      }
      if (better) {
        best = t;
        best_within = within;
      }
    }
  }
  return best;
}

}  // namespace cuda
}  // namespace fastalex
