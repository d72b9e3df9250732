// Device code of max-pooling (dilation 1, no indices; torch-free, see device_common.cuh).
// Padding acts as -inf and NaN wins, as in torch. Two layouts:
//  - planar (any strides): one thread per output element;
//  - channels-last (NHWC contiguous): one thread per VEC consecutive channels of one output
//    pixel, loading VEC elements (16 bytes) at a time.
#pragma once

#include "cuda/device_common.cuh"

namespace fastalex {
namespace cuda {

struct PoolParams {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t in_sn, in_sc, in_sh, in_sw;  // input element strides
};

template <typename T>
__global__ void __launch_bounds__(256)
    max_pool2d_planar_kernel(const T* __restrict__ x, T* __restrict__ y, PoolParams p) {
  using A = typename Acc<T>::type;
  const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = i % p.out_w;
    int64_t r = i / p.out_w;
    const int64_t oh = r % p.out_h;
    r /= p.out_h;
    const int64_t c = r % p.channels, n = r / p.channels;
    const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    const int64_t hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
    const int64_t he = h0 + p.kernel_h < p.in_h ? h0 + p.kernel_h : p.in_h;
    const int64_t we = w0 + p.kernel_w < p.in_w ? w0 + p.kernel_w : p.in_w;
    const T* xp = x + n * p.in_sn + c * p.in_sc;
    A m = -INFINITY;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) m = nan_max(m, to_acc(xp[h * p.in_sh + w * p.in_sw]));
    y[i] = from_acc<T>(m);  // y is contiguous NCHW
  }
}

// VEC elements of T packed in 16 bytes (or VEC == 1: plain loads).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

template <typename T, int VEC>
__global__ void __launch_bounds__(256)
    max_pool2d_channels_last_kernel(const T* __restrict__ x, T* __restrict__ y, PoolParams p) {
  using A = typename Acc<T>::type;
  const int64_t cvecs = p.channels / VEC;
  const int64_t total = p.batch * p.out_h * p.out_w * cvecs;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t cv = i % cvecs;
    int64_t r = i / cvecs;
    const int64_t ow = r % p.out_w;
    r /= p.out_w;
    const int64_t oh = r % p.out_h, n = r / p.out_h;
    const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    const int64_t hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
    const int64_t he = h0 + p.kernel_h < p.in_h ? h0 + p.kernel_h : p.in_h;
    const int64_t we = w0 + p.kernel_w < p.in_w ? w0 + p.kernel_w : p.in_w;
    A m[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) m[j] = -INFINITY;
    const T* xn = x + n * p.in_h * p.in_w * p.channels + cv * VEC;
    for (int64_t h = hs; h < he; ++h) {
      for (int64_t w = ws; w < we; ++w) {
        const Vec<T, VEC> v = *reinterpret_cast<const Vec<T, VEC>*>(xn + (h * p.in_w + w) * p.channels);
#pragma unroll
        for (int j = 0; j < VEC; ++j) m[j] = nan_max(m[j], to_acc(v.v[j]));
      }
    }
    Vec<T, VEC> out;
#pragma unroll
    for (int j = 0; j < VEC; ++j) out.v[j] = from_acc<T>(m[j]);
    *reinterpret_cast<Vec<T, VEC>*>(y + ((n * p.out_h + oh) * p.out_w + ow) * p.channels + cv * VEC) = out;
  }
}

}  // namespace cuda
}  // namespace fastalex
