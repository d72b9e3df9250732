// Device code of lrn_max_pool2d: max-pooling of the LRN in one pass (torch-free; see
// device_common.cuh).
//
// A block owns a tile of output pixels of one sample (lrn_pool_tiling.h chooses its size) and
// the input pixels their windows read, halo included (at most kLrnPoolTilePixels). Each thread
// owns up to kLrnPoolSlots of those input pixels and walks them down the channels with the LRN's
// running window (LrnSweep, lrn_window.cuh): per channel, the threads put the tile's LRN values
// in shared memory, meet at a barrier, and pool that channel's output tile from there. Channels
// alternate between two buffers, so one barrier per channel suffices: a buffer is written again
// two channels later, after the barrier that every reader of its last contents has passed.
// Each input is read once (halos aside: one more row or column per tile edge) and only the
// pooled result is written. The window's values wait in per-thread rings in shared memory, as
// in the LRN kernel; without them (too large for shared memory) the old values are re-read.
//
// The LRN values are rounded to T before pooling, as the unfused pair pools the LRN's output,
// so results (NaN and infinities included: lrn_window.cuh, then pooling's -inf padding and
// NaN winning) are the unfused pair's bit for bit.
#pragma once

#include "cuda/device_common.cuh"
#include "cuda/lrn_window.cuh"
#include "cuda/max_pool2d_kernel.cuh"

namespace fastalex {
namespace cuda {

constexpr int kLrnPoolThreads = 256;  // threads per block at most
constexpr int kLrnPoolSlots = 4;      // input pixels per thread at most
constexpr int kLrnPoolTilePixels = kLrnPoolThreads * kLrnPoolSlots;

struct LrnMaxPoolParams {
  PoolParams pool;          // geometry (no dilation), input strides in in_s*, output strides in out_s*
  LrnCoeffs lrn;
  int tile_h, tile_w;       // output pixels of a tile (the last row and column of tiles may have fewer)
  int64_t tiles_w, tiles_per_sample;
  int tile_pixels;          // input pixels of the largest tile: each LRN buffer's length
  int slots;                // input pixels per thread: blockDim.x * slots >= tile_pixels
};

// The input rows [lo, hi) that the windows of outputs [o0, o0 + count) read (clipped to the
// input [0, in): padding is not read).
FA_HOST_DEVICE void pool_input_span(int64_t o0, int64_t count, int kernel, int stride, int pad, int64_t in,
                                    int64_t& lo, int64_t& hi) {
  lo = o0 * stride - pad;
  if (lo < 0) lo = 0;
  hi = (o0 + count - 1) * stride - pad + kernel;
  if (hi > in) hi = in;
}

template <typename T, bool kRing>
// min blocks 1: without it ptxas caps the kernel at 128 registers, and its kLrnPoolSlots
// windows spill
__global__ void __launch_bounds__(kLrnPoolThreads, 1)
    lrn_max_pool2d_kernel(const T* __restrict__ x, T* __restrict__ y, LrnMaxPoolParams p) {
  using A = typename Acc<T>::type;
  const PoolParams& q = p.pool;
  const int64_t n = blockIdx.x / p.tiles_per_sample, tile = blockIdx.x % p.tiles_per_sample;
  const int64_t oh0 = tile / p.tiles_w * p.tile_h, ow0 = tile % p.tiles_w * p.tile_w;
  const int out_rows = int(q.out_h - oh0 < p.tile_h ? q.out_h - oh0 : p.tile_h);
  const int out_cols = int(q.out_w - ow0 < p.tile_w ? q.out_w - ow0 : p.tile_w);
  int64_t h_lo, h_hi, w_lo, w_hi;
  pool_input_span(oh0, out_rows, q.kernel_h, q.stride_h, q.pad_h, q.in_h, h_lo, h_hi);
  pool_input_span(ow0, out_cols, q.kernel_w, q.stride_w, q.pad_w, q.in_w, w_lo, w_hi);
  const int cols = int(w_hi - w_lo), pixels = int(h_hi - h_lo) * cols;

  // Dynamic shared memory: two LRN buffers of tile_pixels, then (kRing) the rings, slot j's
  // at [j * size * blockDim.x, ...) with its thread's values blockDim.x apart (no conflicts).
  FA_DYNAMIC_SHARED(A, smem);
  struct Slot {
    LrnSweep<A, kRing> sweep;
    const T* x;  // the pixel's channel 0
    int at;      // the pixel's index in the tile (row-major), -1: the slot holds none
  };
  Slot slot[kLrnPoolSlots];
#pragma unroll
  for (int j = 0; j < kLrnPoolSlots; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    slot[j].at = j < p.slots && i < pixels ? i : -1;
    slot[j].x = x + n * q.in_sn + (h_lo + i / cols) * q.in_sh + (w_lo + i % cols) * q.in_sw;
    if (slot[j].at < 0) continue;
    if (kRing) {
      slot[j].sweep.ring = smem + 2 * p.tile_pixels + j * p.lrn.size * int(blockDim.x) + threadIdx.x;
      slot[j].sweep.ring_stride = blockDim.x;
    }
    const T* xs = slot[j].x;
    slot[j].sweep.start(p.lrn, [&](int64_t c) { return to_acc(xs[c * q.in_sc]); });
  }

  for (int64_t c = 0; c < q.channels; ++c) {
    FA_SHARED_PTR(A) lrn = smem + int(c & 1) * p.tile_pixels;
#pragma unroll
    for (int j = 0; j < kLrnPoolSlots; ++j) {
      if (slot[j].at < 0) continue;
      const T* xs = slot[j].x;
      const A v = slot[j].sweep.next(c, p.lrn, [&](int64_t ch) { return to_acc(xs[ch * q.in_sc]); });
      lrn[slot[j].at] = to_acc(from_acc<T>(v));
    }
    __syncthreads();
    for (int o = threadIdx.x; o < out_rows * out_cols; o += blockDim.x) {
      const int64_t oh = oh0 + o / out_cols, ow = ow0 + o % out_cols;
      const A m = window_max<A>(pool_window<int64_t>(q, oh, ow, 1, 1), 1, 1, [&](int64_t h, int64_t w) {
        return A(lrn[int((h - h_lo) * cols + (w - w_lo))]);
      });
      y[n * q.out_sn + c * q.out_sc + oh * q.out_sh + ow * q.out_sw] = from_acc<T>(m);
    }
  }
}

}  // namespace cuda
}  // namespace fastalex
