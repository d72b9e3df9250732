// Device code of max_pool2d_lrn: the LRN of max-pooled values in one pass (torch-free; see
// device_common.cuh).
//
// One thread per (sample, output pixel) walks the channels with the LRN's running window
// (LrnSweep, lrn_window.cuh) over pooled values: each channel's pooled value is computed from
// the input as it enters the window and waits in the thread's ring in shared memory until it
// leaves, so the pooled map is never written and each output is written once. Neighbouring
// outputs' windows overlap (3x3 stride 2 reads each input about 2.25 times), but those reads
// are served by the cache: the input comes from DRAM once. Without a ring (size * blockDim
// does not fit in shared memory) the two old pooled values are pooled again instead.
//
// The pooled value is the max of the input in A, which is the input's own value: the LRN sees
// exactly what it sees after fastalex's max_pool2d, and NaN and infinities come out as from the
// unfused pair (padding is -inf, NaN wins; then lrn_window.cuh's rules).
#pragma once

#include "cuda/device_common.cuh"
#include "cuda/lrn_window.cuh"
#include "cuda/max_pool2d_kernel.cuh"

namespace fastalex {
namespace cuda {

struct PoolLrnParams {
  PoolParams pool;       // geometry (no dilation), input strides in in_s*, output strides in out_s*
  LrnCoeffs lrn;
  int64_t total_pixels;  // batch * out_h * out_w
};

template <typename T, bool kRing>
__global__ void __launch_bounds__(256)
    max_pool2d_lrn_kernel(const T* __restrict__ x, T* __restrict__ y, PoolLrnParams p) {
  using A = typename Acc<T>::type;
  const PoolParams& q = p.pool;
  const int64_t pix = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (pix >= p.total_pixels) return;  // no barrier in this kernel: early exit is safe
  const int64_t per_sample = q.out_h * q.out_w;
  const int64_t n = pix / per_sample, s = pix % per_sample, oh = s / q.out_w, ow = s % q.out_w;
  const PoolWindow<int64_t> win = pool_window<int64_t>(q, oh, ow, 1, 1);
  const T* xn = x + n * q.in_sn;
  T* yp = y + n * q.out_sn + oh * q.out_sh + ow * q.out_sw;
  const auto pooled = [&](int64_t c) {
    const T* xc = xn + c * q.in_sc;
    return window_max<A>(win, 1, 1, [&](int64_t h, int64_t w) { return to_acc(xc[h * q.in_sh + w * q.in_sw]); });
  };
  LrnSweep<A, kRing> sweep;
  if (kRing) {
    FA_DYNAMIC_SHARED(A, smem);
    sweep.ring = smem + threadIdx.x;  // slot j at ring[j * blockDim.x]: consecutive threads, no conflicts
    sweep.ring_stride = blockDim.x;
  }
  sweep.start(p.lrn, pooled);
  for (int64_t c = 0; c < q.channels; ++c) yp[c * q.out_sc] = from_acc<T>(sweep.next(c, p.lrn, pooled));
}

}  // namespace cuda
}  // namespace fastalex
