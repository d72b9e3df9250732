// Device code of the LRN's gradient (torch-free; see device_common.cuh). With
// D = k + alpha/size * W(x^2) (W: the window sum over [c - pre, c + post]),
//   dx = g * D^-beta - 2 alpha beta / size * x * W'(t),  t = g * y / D,
// W' the transposed window [c - post, c + pre].
//
// One thread per (sample, pixel) walks the channels once: step m computes D, D^-beta and t of
// channel m (D's window reaches x[m + post]), then dx of channel c = m - pre, whose transposed
// window ends at t[m]. Three rings of `size` slots (slot j % size) hold the window's squares,
// t and D^-beta: in dynamic shared memory (kRing), or, when even 32 threads' rings do not fit
// there, in a global scratch buffer of the host's. Both window sums are summed directly in
// channel order, in the accumulation precision A, as the torch-op formula sums them: NaN,
// infinities and overflow come out as there (O(size) adds per element; a running sum would
// need LrnWindow's counts to match). D^-beta is lrn_inv_pow: torch's pow, sqrt and rsqrt.
#pragma once

#include "cuda/device_common.cuh"
#include "cuda/lrn_window.cuh"

namespace fastalex {
namespace cuda {

struct LrnBackwardParams : LrnCoeffs {
  double coef;                // 2 alpha beta / size, as the torch formula computes it
  int64_t pixels_per_sample;  // S = product of the dims after C
  int64_t total_pixels;       // N * S
  int64_t stride_n, stride_c, stride_s;  // element strides of the (N, C, S) view, same for g, y, dx
};

// The ring slot after `s`.
FA_DEVICE int next_slot(int s, int size) { return s + 1 == size ? 0 : s + 1; }

// ring[slot(first) ...] summed over the channels first..last (slots in ring order), in order.
template <typename A, typename Ptr>
FA_DEVICE A ring_sum(const Ptr& ring, int64_t stride, int size, int first, int last) {
  int s = first % size;
  A w = ring[s * stride];
  for (int j = first + 1; j <= last; ++j) {
    s = next_slot(s, size);
    w += ring[s * stride];
  }
  return w;
}

// One pixel's sweep; g, x, y, dx point at its channel 0; the rings' slot j % size at
// [slot * stride]. Channel indices are 32-bit (the host checks C): 64-bit modulo is a called
// subroutine.
template <typename T, typename A, typename Ptr>
FA_DEVICE void lrn_backward_sweep(const T* g, const T* x, const T* y, T* dx, const LrnBackwardParams& p, Ptr sq,
                                  Ptr t, Ptr pw, int64_t stride) {
  const int C = int(p.channels), size = p.size, pre = p.pre, post = p.post;
  const int64_t sc = p.stride_c;
  // The scalars rounded to A, as torch's tensor-scalar ops round them to the tensor's type.
  const A scale = A(p.alpha_over_size), kk = A(p.k), coef = A(p.coef);
  for (int j = 0; j < post && j < C; ++j) sq[(j % size) * stride] = lrn_square(to_acc(x[j * sc]));
  for (int m = 0; m < C + pre; ++m) {
    if (m < C) {
      const int enter = m + post;  // its slot held channel m - pre - 1, now out of the window
      if (enter < C) sq[(enter % size) * stride] = lrn_square(to_acc(x[enter * sc]));
      const int first = m > pre ? m - pre : 0, last = enter < C ? enter : C - 1;
      const A d = kk + scale * ring_sum<A>(sq, stride, size, first, last);
      const int slot = m % size;
      t[slot * stride] = to_acc(g[m * sc]) * to_acc(y[m * sc]) / d;
      pw[slot * stride] = lrn_inv_pow(d, p);
    }
    const int c = m - pre;
    if (c < 0) continue;
    // t of channels [c - post, c + pre]: the last `size` slots written, m the newest.
    const int first = c > post ? c - post : 0, last = m < C ? m : C - 1;
    const A w = ring_sum<A>(t, stride, size, first, last);
    const A gc = to_acc(g[c * sc]), xc = to_acc(x[c * sc]);
    dx[c * sc] = from_acc<T>(gc * A(pw[(c % size) * stride]) - coef * xc * w);
  }
}

template <typename T, bool kRing>
__global__ void __launch_bounds__(256)
    local_response_norm_backward_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ y,
                                        T* __restrict__ dx, typename Acc<T>::type* __restrict__ scratch,
                                        LrnBackwardParams p) {
  using A = typename Acc<T>::type;
  const int64_t pix = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (pix >= p.total_pixels) return;  // no barrier in this kernel: early exit is safe
  const int64_t off = pix / p.pixels_per_sample * p.stride_n + pix % p.pixels_per_sample * p.stride_s;
  if (kRing) {
    // Ring r's slot j at smem[(r * size + j) * blockDim + thread]: consecutive threads, no conflicts.
    FA_DYNAMIC_SHARED(A, smem);
    const int64_t ring = int64_t(p.size) * blockDim.x;
    FA_SHARED_PTR(A) base = smem + threadIdx.x;
    lrn_backward_sweep<T, A>(g + off, x + off, y + off, dx + off, p, base, base + ring, base + 2 * ring,
                             blockDim.x);
  } else {
    // Ring r's slot j at scratch[(r * size + j) * total_pixels + pixel].
    const int64_t ring = int64_t(p.size) * p.total_pixels;
    A* base = scratch + pix;
    lrn_backward_sweep<T, A>(g + off, x + off, y + off, dx + off, p, base, base + ring, base + 2 * ring,
                             p.total_pixels);
  }
}

}  // namespace cuda
}  // namespace fastalex
