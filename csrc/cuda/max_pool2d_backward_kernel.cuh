// Device code of max-pooling's gradient without stored indices (torch-free; see
// device_common.cuh). A gather: one thread per input element finds the windows with a tap on it,
// finds each one's argmax again as torch's max_pool2d_with_indices does (window_argmax), and sums
// the gradients of those whose argmax it is, in output order, in the accumulation precision. No
// atomics: the result does not depend on the order threads run in.
#pragma once

#include "cuda/device_common.cuh"
#include "cuda/max_pool2d_kernel.cuh"

namespace fastalex {
namespace cuda {

// PoolParams' in_* strides are the input's, its out_* strides grad_output's.
struct PoolBackwardParams : PoolParams {
  int64_t gin_sn, gin_sc, gin_sh, gin_sw;  // grad_input element strides
};

// The input position (ah, aw) of the window's argmax as torch chooses it: the taps in row-major
// order, a value taking over when it is greater than the running maximum or NaN (the first of
// equal maxima, the last NaN), the first tap when nothing beats -inf.
template <typename A, typename I, typename Load>
FA_DEVICE void window_argmax(const PoolWindow<I>& win, int dilation_h, int dilation_w, const Load& load, I& ah,
                             I& aw) {
  A m = -INFINITY;
  ah = win.h0 + win.h_lo * dilation_h;
  aw = win.w0 + win.w_lo * dilation_w;
  for (I i = win.h_lo; i < win.h_hi; ++i) {
    const I h = win.h0 + i * dilation_h;
    for (I j = win.w_lo; j < win.w_hi; ++j) {
      const I w = win.w0 + j * dilation_w;
      const A v = load(h, w);
      if (v > m || v != v) {
        m = v;
        ah = h;
        aw = w;
      }
    }
  }
}

// The outputs [lo, hi] along one axis whose window has a tap on input position `pos`:
// o * stride - pad + a * dilation = pos for some tap a in [0, kernel) (the caller checks the
// divisibility by dilation).
FA_DEVICE void windows_over(int64_t pos, int kernel, int stride, int pad, int dilation, int64_t out, int64_t& lo,
                            int64_t& hi) {
  const int64_t first = pos + pad - int64_t(kernel - 1) * dilation;  // o * stride >= first
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  hi = (pos + pad) / stride;
  if (hi > out - 1) hi = out - 1;
}

template <typename T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ gx,
                                           PoolBackwardParams p) {
  using A = typename Acc<T>::type;
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t w = i % p.in_w;
    int64_t r = i / p.in_w;
    const int64_t h = r % p.in_h;
    r /= p.in_h;
    const int64_t c = r % p.channels, n = r / p.channels;
    const T* xp = x + n * p.in_sn + c * p.in_sc;
    const T* gp = g + n * p.out_sn + c * p.out_sc;
    const auto load = [&](int64_t hh, int64_t ww) { return to_acc(xp[hh * p.in_sh + ww * p.in_sw]); };
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    windows_over(h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.out_h, oh_lo, oh_hi);
    windows_over(w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.out_w, ow_lo, ow_hi);
    A sum = 0;
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      if ((h + p.pad_h - oh * p.stride_h) % p.dilation_h != 0) continue;  // h falls between two taps
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        if ((w + p.pad_w - ow * p.stride_w) % p.dilation_w != 0) continue;
        int64_t ah, aw;
        window_argmax<A>(pool_window<int64_t>(p, oh, ow, p.dilation_h, p.dilation_w), p.dilation_h, p.dilation_w,
                         load, ah, aw);
        if (ah == h && aw == w) sum += to_acc(gp[oh * p.out_sh + ow * p.out_sw]);
      }
    }
    gx[n * p.gin_sn + c * p.gin_sc + h * p.gin_sh + w * p.gin_sw] = from_acc<T>(sum);
  }
}

}  // namespace cuda
}  // namespace fastalex
