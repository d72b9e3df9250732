// Device code of the cross-channel LRN (torch-free; see device_common.cuh).
//
// One thread per (sample, pixel) walks the channels with a running window sum of squares,
// so each x is read from global memory once and each y written once, at O(C) work per pixel.
// The window's values wait in a per-thread ring in shared memory (slot c % size): the value
// entering the window evicts exactly the one leaving it, and channel c's own value is still
// in the ring when y[c] is written. When size * blockDim does not fit in shared memory the
// kernel re-reads the two old values from global memory instead (they are cache-hot).
// The running sum is kept in double: squares of float/half values are exact there, so the
// add-and-subtract leaves no drift a float result could see; double inputs also carry a
// two-sum compensation term, so a huge value leaving the window leaves no error behind.
#pragma once

#include "cuda/device_common.cuh"

namespace fastalex {
namespace cuda {

struct LrnParams {
  int64_t pixels_per_sample;  // S = product of the dims after C
  int64_t total_pixels;       // N * S
  int64_t channels;           // C
  int64_t stride_n, stride_c, stride_s;  // element strides of the (N, C, S) view, same for y
  int size, pre, post;        // window [c - pre, c + post], pre = size / 2, post = (size - 1) / 2
  double alpha_over_size, beta, k;
  int beta_mode;              // 1: beta == 0.75, 2: beta == 0.5, 3: beta == 1, 0: any
};

template <typename A>
FA_DEVICE A lrn_inv_pow(A d, const LrnParams& p) {
  switch (p.beta_mode) {
    case 1: {
      A r = A(1) / sqrt(d);
      return r * sqrt(r);
    }
    case 2:
      return A(1) / sqrt(d);
    case 3:
      return A(1) / d;
    default:
      return pow(d, -A(p.beta));
  }
}

template <bool kCompensated>
FA_DEVICE void window_add(double& s, double& c, double v) {
  if (kCompensated) {
    const double t = s + v, bp = t - s;
    c += (s - (t - bp)) + (v - bp);
    s = t;
  } else {
    s += v;
  }
}

template <typename T, bool kRing>
__global__ void __launch_bounds__(256)
    local_response_norm_kernel(const T* __restrict__ x, T* __restrict__ y, LrnParams p) {
  using A = typename Acc<T>::type;
  const int64_t pix = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (pix >= p.total_pixels) return;  // no barrier in this kernel: early exit is safe
  const int64_t n = pix / p.pixels_per_sample, s = pix % p.pixels_per_sample;
  const T* xp = x + n * p.stride_n + s * p.stride_s;
  T* yp = y + n * p.stride_n + s * p.stride_s;
  const int64_t C = p.channels;
  const int size = p.size;
  A* ring = nullptr;
  if (kRing) {
    FA_DYNAMIC_SHARED(A, smem);
    ring = smem + threadIdx.x;  // slot j at ring[j * blockDim.x]: consecutive threads, no conflicts
  }
  constexpr bool kComp = sizeof(A) == sizeof(double);
  double sum = 0.0, comp = 0.0;
  for (int64_t c = 0; c < p.post && c < C; ++c) {
    const A v = to_acc(xp[c * p.stride_c]);
    window_add<kComp>(sum, comp, double(v) * double(v));
    if (kRing) ring[int(c % size) * blockDim.x] = v;
  }
  for (int64_t c = 0; c < C; ++c) {
    const int64_t enter = c + p.post, leave = c - p.pre - 1;
    A v_in = A(0), v_out = A(0), v_c;
    if (kRing) {
      // `enter` and `leave` differ by size: they share a slot.
      const int slot = int(enter % size);
      v_out = leave >= 0 ? ring[slot * blockDim.x] : A(0);
      if (enter < C) v_in = to_acc(xp[enter * p.stride_c]);
      ring[slot * blockDim.x] = v_in;
      v_c = ring[int(c % size) * blockDim.x];
    } else {
      if (leave >= 0) v_out = to_acc(xp[leave * p.stride_c]);
      if (enter < C) v_in = to_acc(xp[enter * p.stride_c]);
      v_c = to_acc(xp[c * p.stride_c]);
    }
    window_add<kComp>(sum, comp, double(v_in) * double(v_in));
    window_add<kComp>(sum, comp, -(double(v_out) * double(v_out)));
    // Rounding can push the running sum of squares below zero; the true sum cannot be.
    const double total = sum + comp;
    const A d = A(p.k + p.alpha_over_size * (total > 0.0 ? total : 0.0));
    yp[c * p.stride_c] = from_acc<T>(v_c * lrn_inv_pow(d, p));
  }
}

}  // namespace cuda
}  // namespace fastalex
