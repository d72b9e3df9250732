// Kernels with planted bugs (and correct controls) that the SIMT emulator must catch. Device
// code written like csrc/cuda/*_kernel.cuh; compiled only for the tests (runner.cpp).
// The tests look for the line numbers of the PLANTED markers below, so keep each marker on
// the line of its bug.
#pragma once

#include "cuda/device_common.cuh"

namespace planted {

constexpr int kTile = 16;

// C[M, N] = A[M, K] B[K, N] with 16x16 tiles, one thread per output. `bug`: 0 correct,
// 1 no barrier between loading a tile and using it, 2 no barrier before the next load.
__global__ void tiled_gemm(const float* a, const float* b, float* c, int M, int N, int K, int bug) {
  FA_SHARED_ARRAY(float, as, [kTile][kTile]);
  FA_SHARED_ARRAY(float, bs, [kTile][kTile]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += kTile) {
    as[ty][tx] = (row < M && k0 + tx < K) ? a[row * K + k0 + tx] : 0.f;
    bs[ty][tx] = (k0 + ty < K && col < N) ? b[(k0 + ty) * N + col] : 0.f;
    if (bug != 1) __syncthreads();
    for (int kk = 0; kk < kTile; ++kk) acc += as[ty][kk] * bs[kk][tx];  // PLANTED: gemm-use
    if (bug != 2) __syncthreads();
  }
  if (row < M && col < N) c[row * N + col] = acc;
}

// A barrier that only part of the block reaches.
__global__ void divergent_barrier(const float* in, float* out, int n) {
  const int t = threadIdx.x;
  float v = t < n ? in[t] : 0.f;
  if (t < 16) {
    __syncthreads();  // PLANTED: divergent-barrier
    v *= 2.f;
  }
  __syncthreads();  // PLANTED: common-barrier
  if (t < n) out[t] = v;
}

// One thread leaves before the barrier the others wait at.
__global__ void early_return(const float* in, float* out, int n) {
  FA_SHARED_ARRAY(float, tile, [64]);
  const int t = threadIdx.x;
  if (t == 5) return;  // PLANTED: early-return
  tile[t] = t < n ? in[t] : 0.f;
  __syncthreads();  // PLANTED: early-return-barrier
  if (t < n) out[t] = tile[(t + 1) % 64];
}

// Shared-memory index one past the end.
__global__ void shared_oob(const float* in, float* out, int n) {
  FA_SHARED_ARRAY(float, tile, [64]);
  const int t = threadIdx.x;
  tile[t + 1] = t < n ? in[t] : 0.f;  // PLANTED: shared-oob
  __syncthreads();
  if (t < n) out[t] = tile[t];
}

// Reads one element past the end (shift 1) or before the start (shift -1) of `in`.
__global__ void global_oob_read(const float* in, float* out, int n, int shift) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i + shift];  // PLANTED: global-oob
}

// Warp-sum of each warp's 32 values with shuffles; `bug` 1: only half the warp shuffles.
__global__ void warp_sum(const float* in, float* out, int bug) {
  const int t = threadIdx.x, lane = t % 32;
  float v = in[t];
  if (bug == 1) {
    if (lane < 16) v += __shfl_down_sync(0xffffffffu, v, 8);  // PLANTED: half-warp-shuffle
  } else {
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  }
  const unsigned positive = __ballot_sync(0xffffffffu, in[t] > 0.f);
  if (lane == 0) {
    out[2 * (t / 32)] = v;
    out[2 * (t / 32) + 1] = static_cast<float>(__popc(positive));
  }
}

// Half a warp waits in __syncwarp for the other half, which waits at __syncthreads.
__global__ void warp_deadlock(float* out) {
  const int t = threadIdx.x;
  if (t < 16) {
    __syncwarp();  // PLANTED: deadlock-syncwarp
  } else {
    __syncthreads();  // PLANTED: deadlock-barrier
  }
  out[t] = 1.f;
}

// Dynamic shared memory: `mode` 0 reads it before anything was written (must see the
// poison), 1 writes one float past its end, 2 writes and reads it back correctly.
__global__ void dynamic_shared(float* out, int floats, int mode) {
  FA_DYNAMIC_SHARED(float, smem);
  const int t = threadIdx.x;
  if (mode == 1) smem[floats + t] = 1.f;  // PLANTED: dynamic-shared-oob
  if (mode == 2) smem[t] = static_cast<float>(t);
  __syncthreads();
  out[t] = smem[(t + 1) % floats];
}

// Pointer arithmetic on dynamic shared memory (FA_SHARED_PTR); `mode` 1 reads one float
// before its start.
__global__ void shared_ptr_arithmetic(float* out, int mode) {
  FA_DYNAMIC_SHARED(float, smem);  // 64 floats
  const int t = threadIdx.x;       // 32 threads
  FA_SHARED_PTR(float) mine = nullptr;
  if (mine == nullptr) mine = smem + 2 * t;
  *mine = static_cast<float>(t);
  mine[1] = static_cast<float>(-t);
  __syncthreads();
  FA_SHARED_PTR(const float) p = smem;
  p += 2 * ((t + 1) % 32);
  const FA_SHARED_PTR(const float) q = p++;  // q: the pair of thread t + 1, p its second float
  out[t] = *q + 10.f * p[0] + 100.f * static_cast<float>(p - smem) + (p > q ? 1000.f : 0.f) + (q >= p ? 1e4f : 0.f);
  if (mode == 1) out[t] = smem[t - 1];  // PLANTED: shared-ptr-before-start
}

}  // namespace planted
