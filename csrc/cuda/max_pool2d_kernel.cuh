// Device code of max-pooling (any dilation, no indices; torch-free, see device_common.cuh).
// Padding acts as -inf and NaN wins, as in torch. Three kernels:
//  - NCHW (contiguous input and output, 32-bit indices): one thread per output element;
//  - strided (any input and output strides, 64-bit indices): one thread per output element,
//    for every other layout and for tensors too large for 32-bit indices;
//  - channels-last (NHWC contiguous, 32-bit indices): one thread per VEC consecutive channels
//    of one output pixel, loading VEC elements (16 bytes) at a time.
#pragma once

#include "cuda/device_common.cuh"

namespace fastalex {
namespace cuda {

struct PoolParams {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t in_sn, in_sc, in_sh, in_sw;      // input element strides (strided kernel)
  int64_t out_sn, out_sc, out_sh, out_sw;  // output element strides (strided kernel)
};

// The taps i in [lo, hi) of a window starting at `start` (taps start + i * dilation) that fall
// inside [0, size): the others are padding, which acts as -inf.
template <typename I>
FA_DEVICE void pool_taps(I start, int kernel, int dilation, I size, I& lo, I& hi) {
  lo = start < 0 ? (-start + dilation - 1) / dilation : I(0);
  const I room = size - start;
  hi = room <= 0 ? I(0) : (room + dilation - 1) / dilation;
  if (hi > kernel) hi = kernel;
}

// The window of output (oh, ow): its origin (h0, w0) and the taps [h_lo, h_hi) x [w_lo, w_hi)
// that fall inside the input. Dilation is an argument so that kernels without one pass 1 and
// the divisions in pool_taps fold away.
template <typename I>
struct PoolWindow {
  I h0, w0, h_lo, h_hi, w_lo, w_hi;
};

template <typename I>
FA_DEVICE PoolWindow<I> pool_window(const PoolParams& p, I oh, I ow, int dilation_h, int dilation_w) {
  PoolWindow<I> win;
  win.h0 = oh * p.stride_h - p.pad_h;
  win.w0 = ow * p.stride_w - p.pad_w;
  pool_taps<I>(win.h0, p.kernel_h, dilation_h, I(p.in_h), win.h_lo, win.h_hi);
  pool_taps<I>(win.w0, p.kernel_w, dilation_w, I(p.in_w), win.w_lo, win.w_hi);
  return win;
}

// The max of load(h, w) (a value in A) over the window's taps, in torch's order (rows, then
// columns; NaN wins); -inf when every tap is padding.
template <typename A, typename I, typename Load>
FA_DEVICE A window_max(const PoolWindow<I>& win, int dilation_h, int dilation_w, const Load& load) {
  A m = -INFINITY;
  for (I i = win.h_lo; i < win.h_hi; ++i) {
    const I h = win.h0 + i * dilation_h;
    for (I j = win.w_lo; j < win.w_hi; ++j) m = nan_max(m, A(load(h, win.w0 + j * dilation_w)));
  }
  return m;
}

template <typename T>
__global__ void
    max_pool2d_strided_kernel(const T* __restrict__ x, T* __restrict__ y, PoolParams p) {
  using A = typename Acc<T>::type;
  const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = i % p.out_w;
    int64_t r = i / p.out_w;
    const int64_t oh = r % p.out_h;
    r /= p.out_h;
    const int64_t c = r % p.channels, n = r / p.channels;
    const T* xp = x + n * p.in_sn + c * p.in_sc;
    const A m = window_max<A>(pool_window<int64_t>(p, oh, ow, p.dilation_h, p.dilation_w), p.dilation_h,
                              p.dilation_w, [&](int64_t h, int64_t w) { return to_acc(xp[h * p.in_sh + w * p.in_sw]); });
    y[n * p.out_sn + c * p.out_sc + oh * p.out_sh + ow * p.out_sw] = from_acc<T>(m);
  }
}

// Contiguous NCHW input and output whose indices fit in 32 bits. The strided kernel spends
// three 64-bit divisions and three 64-bit remainders on each element's coordinates, and on the
// GPU each is a called subroutine (the first H200 runs timed that kernel at 0.59-0.72x of
// torch's on NCHW); here two 32-bit divisions and their remainders give the output column, row
// and plane, and the output index is the thread's own.
template <typename T>
__global__ void
    max_pool2d_nchw_kernel(const T* __restrict__ x, T* __restrict__ y, PoolParams p) {
  using A = typename Acc<T>::type;
  using Index = int32_t;
  const Index out_w = Index(p.out_w), out_h = Index(p.out_h), in_w = Index(p.in_w);
  const Index in_plane = Index(p.in_h) * in_w;
  const Index total = Index(p.batch) * Index(p.channels) * out_h * out_w;
  for (Index i = Index(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += Index(gridDim.x) * blockDim.x) {
    const Index ow = i % out_w, r = i / out_w;
    const Index oh = r % out_h, plane = r / out_h;
    const T* xp = x + plane * in_plane;
    const A m = window_max<A>(pool_window<Index>(p, oh, ow, p.dilation_h, p.dilation_w), p.dilation_h, p.dilation_w,
                              [&](Index h, Index w) { return to_acc(xp[h * in_w + w]); });
    y[i] = from_acc<T>(m);
  }
}

// VEC elements of T packed in 16 bytes (or VEC == 1: plain loads).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

// 32-bit index math: 64-bit division is a called subroutine that spills in this kernel, so
// the host sends tensors whose indices exceed int32 to the strided kernel instead. (No
// __launch_bounds__: with it ptxas caps this kernel at 40 registers and spills.)
template <typename T, int VEC>
__global__ void
    max_pool2d_channels_last_kernel(const T* __restrict__ x, T* __restrict__ y, PoolParams p) {
  using A = typename Acc<T>::type;
  using Index = int32_t;
  const Index cvecs = Index(p.channels / VEC), out_w = Index(p.out_w), out_h = Index(p.out_h);
  const Index in_w = Index(p.in_w), in_h = Index(p.in_h), channels = Index(p.channels);
  const Index total = Index(p.batch) * out_h * out_w * cvecs;
  for (Index i = Index(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += Index(gridDim.x) * blockDim.x) {
    const Index cv = i % cvecs;
    Index r = i / cvecs;
    const Index ow = r % out_w;
    r /= out_w;
    const Index oh = r % out_h, n = r / out_h;
    const PoolWindow<Index> win = pool_window<Index>(p, oh, ow, p.dilation_h, p.dilation_w);
    A m[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) m[j] = -INFINITY;
    const T* xn = x + n * in_h * in_w * channels + cv * VEC;
    for (Index i = win.h_lo; i < win.h_hi; ++i) {
      const Index h = win.h0 + i * p.dilation_h;
      for (Index j = win.w_lo; j < win.w_hi; ++j) {
        const Index w = win.w0 + j * p.dilation_w;
        const Vec<T, VEC> v = *reinterpret_cast<const Vec<T, VEC>*>(xn + (h * in_w + w) * channels);
#pragma unroll
        for (int j = 0; j < VEC; ++j) m[j] = nan_max(m[j], to_acc(v.v[j]));
      }
    }
    Vec<T, VEC> out;
#pragma unroll
    for (int j = 0; j < VEC; ++j) out.v[j] = from_acc<T>(m[j]);
    *reinterpret_cast<Vec<T, VEC>*>(y + ((n * out_h + oh) * out_w + ow) * channels + cv * VEC) = out;
  }
}

}  // namespace cuda
}  // namespace fastalex
