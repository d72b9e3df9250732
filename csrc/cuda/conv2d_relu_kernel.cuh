// Device code of the fused conv2d + bias + ReLU (torch-free; see device_common.cuh).
//
// Implicit GEMM on CUDA cores: per group g, Y[m, p] = relu(bias[m] + sum_k W[m, k] X[k, p])
// with m an output channel of the group, p an output pixel (n, oh, ow) and k = (c, kh, kw).
// The im2col matrix X is never materialised: each 64x64 output tile loads 16-deep slices of
// W and of the gathered input into shared memory (zeros for padding), every thread
// accumulates a 4x4 register tile, and the epilogue adds the bias and clamps before the
// single store. Input and output are addressed through strides, so NCHW, channels_last and
// non-contiguous views take the same path; dilation spaces the taps. Tensor-core variants come later.
#pragma once

#include "cuda/conv2d_relu_shape.cuh"
#include "cuda/device_common.cuh"

namespace fastalex {
namespace cuda {

struct ConvParams : ConvShape {
  int64_t in_sn, in_sc, in_sh, in_sw;     // input element strides
  int64_t out_sn, out_sc, out_sh, out_sw;  // output element strides
};

constexpr int kConvBM = 64;       // output channels per block tile
constexpr int kConvBN = 64;       // output pixels per block tile
constexpr int kConvBK = 16;       // reduction depth per shared-memory stage
constexpr int kConvThreads = 256;
constexpr int kConvTM = 4, kConvTN = 4;  // per-thread register tile
static_assert(kConvBM * kConvBN == kConvThreads * kConvTM * kConvTN, "tile/thread mismatch");
static_assert(kConvBK * kConvBN == kConvThreads * 4 && kConvBK * kConvBM == kConvThreads * 4,
              "each thread loads 4 elements of each operand per stage");

// grid: (ceil(pixels / BN), ceil(out_channels_per_group / BM), groups), block: 256 threads.
template <typename T>
__global__ void __launch_bounds__(kConvThreads)
    conv2d_relu_igemm_kernel(const T* __restrict__ x, const T* __restrict__ w,
                             const T* __restrict__ bias, T* __restrict__ y, ConvParams p) {
  using A = typename Acc<T>::type;
  FA_SHARED_ARRAY(A, w_tile, [kConvBK][kConvBM]);  // k-major so the inner loop reads a row
  FA_SHARED_ARRAY(A, x_tile, [kConvBK][kConvBN]);

  const int tid = threadIdx.x;
  const int64_t p0 = int64_t(blockIdx.x) * kConvBN;
  const int m0 = blockIdx.y * kConvBM;
  const int grp = blockIdx.z;
  const int ocg = p.out_channels_per_group;
  const int khw = p.kernel_h * p.kernel_w;

  // Loader roles. Input: a fixed pixel column per thread (consecutive threads, consecutive
  // pixels), rows tid / BN + 4 i. Weights: a fixed output channel, 4 consecutive k.
  const int ld_col = tid % kConvBN, ld_row = tid / kConvBN;
  const int64_t ld_pix = p0 + ld_col;
  const bool pix_ok = ld_pix < p.pixels;
  int64_t ih0 = 0, iw0 = 0;
  const T* xg = x;
  if (pix_ok) {
    const int64_t ow = ld_pix % p.out_w, t = ld_pix / p.out_w;
    const int64_t oh = t % p.out_h, n = t / p.out_h;
    ih0 = oh * p.stride_h - p.pad_h;
    iw0 = ow * p.stride_w - p.pad_w;
    xg = x + n * p.in_sn + int64_t(grp) * p.in_channels_per_group * p.in_sc;
  }
  const int wm = tid / 4, wk = (tid % 4) * 4;
  const bool wrow_ok = m0 + wm < ocg;
  const T* wg = w + (int64_t(grp) * ocg + m0 + wm) * p.K;

  const int tx = tid % (kConvBN / kConvTN), ty = tid / (kConvBN / kConvTN);
  A acc[kConvTM][kConvTN];
#pragma unroll
  for (int i = 0; i < kConvTM; ++i)
#pragma unroll
    for (int j = 0; j < kConvTN; ++j) acc[i][j] = A(0);

  for (int k0 = 0; k0 < p.K; k0 += kConvBK) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k = k0 + wk + j;
      w_tile[wk + j][wm] = (wrow_ok && k < p.K) ? to_acc(wg[k]) : A(0);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = ld_row + 4 * i, k = k0 + row;
      A v = A(0);
      if (pix_ok && k < p.K) {
        const int c = k / khw, r = k % khw;
        const int64_t ih = ih0 + int64_t(r / p.kernel_w) * p.dilation_h;
        const int64_t iw = iw0 + int64_t(r % p.kernel_w) * p.dilation_w;
        if (ih >= 0 && ih < p.in_h && iw >= 0 && iw < p.in_w)
          v = to_acc(xg[c * p.in_sc + ih * p.in_sh + iw * p.in_sw]);
      }
      x_tile[row][ld_col] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kConvBK; ++kk) {
      A a[kConvTM], b[kConvTN];
#pragma unroll
      for (int i = 0; i < kConvTM; ++i) a[i] = w_tile[kk][ty * kConvTM + i];
#pragma unroll
      for (int j = 0; j < kConvTN; ++j) b[j] = x_tile[kk][tx * kConvTN + j];
#pragma unroll
      for (int i = 0; i < kConvTM; ++i)
#pragma unroll
        for (int j = 0; j < kConvTN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();  // the next stage overwrites the tiles
  }

  // Epilogue: bias + ReLU in registers, one store per output.
#pragma unroll
  for (int j = 0; j < kConvTN; ++j) {
    const int64_t pix = p0 + tx * kConvTN + j;
    if (pix >= p.pixels) continue;
    const int64_t ow = pix % p.out_w, t = pix / p.out_w;
    const int64_t oh = t % p.out_h, n = t / p.out_h;
    T* yp = y + n * p.out_sn + oh * p.out_sh + ow * p.out_sw;
#pragma unroll
    for (int i = 0; i < kConvTM; ++i) {
      const int m = m0 + ty * kConvTM + i;
      if (m >= ocg) continue;
      const int64_t oc = int64_t(grp) * ocg + m;
      const A v = acc[i][j] + (bias ? to_acc(bias[oc]) : A(0));
      yp[oc * p.out_sc] = from_acc<T>(relu_keep_nan(v));
    }
  }
}

}  // namespace cuda
}  // namespace fastalex
