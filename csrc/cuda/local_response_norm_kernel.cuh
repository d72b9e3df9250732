// Device code of the cross-channel LRN (torch-free; see device_common.cuh).
//
// One thread per (sample, pixel) walks the channels with the running window of lrn_window.cuh
// (LrnSweep), so each x is read from global memory once and each y written once, at O(C) work
// per pixel. The window's values wait in a per-thread ring in dynamic shared memory; when
// size * blockDim does not fit there, the kernel re-reads the two old values from global
// memory instead (they are cache-hot). Non-finite values: see lrn_window.cuh.
#pragma once

#include "cuda/device_common.cuh"
#include "cuda/lrn_window.cuh"

namespace fastalex {
namespace cuda {

struct LrnParams : LrnCoeffs {
  int64_t pixels_per_sample;  // S = product of the dims after C
  int64_t total_pixels;       // N * S
  int64_t stride_n, stride_c, stride_s;  // element strides of the (N, C, S) view, same for y
};

template <typename T, bool kRing>
__global__ void __launch_bounds__(256)
    local_response_norm_kernel(const T* __restrict__ x, T* __restrict__ y, LrnParams p) {
  using A = typename Acc<T>::type;
  const int64_t pix = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (pix >= p.total_pixels) return;  // no barrier in this kernel: early exit is safe
  const int64_t n = pix / p.pixels_per_sample, s = pix % p.pixels_per_sample;
  const T* xp = x + n * p.stride_n + s * p.stride_s;
  T* yp = y + n * p.stride_n + s * p.stride_s;
  LrnSweep<A, kRing> sweep;
  if (kRing) {
    FA_DYNAMIC_SHARED(A, smem);
    sweep.ring = smem + threadIdx.x;  // slot j at ring[j * blockDim.x]: consecutive threads, no conflicts
    sweep.ring_stride = blockDim.x;
  }
  const auto value = [&](int64_t c) { return to_acc(xp[c * p.stride_c]); };
  sweep.start(p, value);
  for (int64_t c = 0; c < p.channels; ++c) yp[c * p.stride_c] = from_acc<T>(sweep.next(c, p, value));
}

}  // namespace cuda
}  // namespace fastalex
