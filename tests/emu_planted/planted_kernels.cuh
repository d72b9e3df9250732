// Kernels with planted bugs (and correct controls) that the SIMT emulator must catch. Device
// code written like csrc/cuda/*_kernel.cuh; compiled only for the tests (runner.cpp).
// The tests look for the line numbers of the PLANTED markers below, so keep each marker on
// the line of its bug.
#pragma once

#include "cuda/device_common.cuh"
#include "cuda/mma_primitives.cuh"

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

// ---------------------------------------------------------------- tensor-core primitives
namespace fc = ::fastalex::cuda;

// Operand shapes: m16n8k16 for f16/bf16 (2-byte elements), m16n8k8 for tf32 (4-byte). A row of
// A (K elements) is 32 bytes in all three, two 16-byte cp.async chunks.
template <typename Tag>
struct MmaShape {
  static constexpr int K = 16, kElem = 2;
};
template <>
struct MmaShape<fc::MmaTF32> {
  static constexpr int K = 8, kElem = 4;
};

inline __device__ int clamp16(int v) { return v < 0 ? 0 : v > 16 ? 16 : v; }

enum MmaBug {
  kMmaCorrect = 0,
  kSwapFragment,     // a[1] and a[2] swapped in the mma: a wrong result
  kLaneMissing,      // lane 7 skips the mma
  kMisalignedRow,    // lane 3 gives ldmatrix an address 4 bytes into a row
  kRowOutside,       // lane 5 gives ldmatrix an address 4 KiB past the A tile
  kNoWait,           // no cp_async_wait before the fragments are loaded
  kNoBarrier,        // no __syncthreads between the wait and other lanes' ldmatrix
  kLaneAtBarrier,    // lane 7 skips the mma and waits at the barrier after it
  kLaneAtSyncwarp,   // lane 7 runs __syncwarp where the others run the mma
};

// One D = A B + C on one warp. A (16 x K, row-major, row stride K elements, only `mv` rows in
// the buffer) and B go to shared memory by cp.async, zero-filled past `mv` rows, `kv` columns
// of A / rows of B and `nv` columns of B; ldmatrix loads the fragments. f16/bf16: B is k x n
// row-major (8 elements a row, `kv` rows in the buffer) and loaded with ldmatrix.trans; tf32:
// B is stored n-major (B^T, 8 floats a row, `nv` rows in the buffer) and loaded plainly, its
// 32-bit elements being pairs of b16 columns. C and D are 16 x 8 row-major floats.
template <typename Tag>
__global__ void mma_single(const uint8_t* a, const uint8_t* b, const float* c, float* d, int mv, int kv, int nv,
                           int bug) {
  using S = MmaShape<Tag>;
  FA_SHARED_ARRAY(uint32_t, as, [16][8]);  // A: 16 rows of 32 bytes
  FA_DYNAMIC_SHARED(uint8_t, bs);          // B: 256 bytes
  const int lane = threadIdx.x;
  {
    const int r = lane / 2, ch = lane % 2;
    const int bytes = r < mv ? clamp16(kv * S::kElem - ch * 16) : 0;
    fc::cp_async_16(fc::smem_addr(as[r]) + ch * 16, a + r * 32 + ch * 16, bytes);  // PLANTED: mma-cp-async-a
  }
  if (lane < 16) {
    if (S::kElem == 2) {  // row k of B: 8 halves
      fc::cp_async_16(fc::smem_addr(bs) + lane * 16, b + lane * 16, lane < kv ? 2 * nv : 0);
    } else {  // half a row n of B^T: 4 floats
      const int n = lane / 2, ch = lane % 2;
      fc::cp_async_16(fc::smem_addr(bs + n * 32 + ch * 16), b + n * 32 + ch * 16, n < nv ? clamp16(4 * kv - ch * 16) : 0);
    }
  }
  fc::cp_async_commit();
  if (bug != kNoWait) fc::cp_async_wait<0>();  // PLANTED: mma-wait
  if (bug != kNoBarrier) __syncthreads();
  // Matrix j of A: rows 8 (j % 2) .. +7, bytes 16 (j / 2) .. +15 of each row.
  uint32_t af[4], bf[2];
  char* arow = fc::smem_addr(as[(lane / 8 % 2) * 8 + lane % 8]) + (lane / 16) * 16;
  if (bug == kMisalignedRow && lane == 3) arow += 4;
  if (bug == kRowOutside && lane == 5) arow += 4096;
  fc::ldmatrix_x4(af, arow);  // PLANTED: mma-ldmatrix-a
  if (S::kElem == 2) {
    // rows k = lane (the addresses of lanes >= 16 are not used)
    fc::ldmatrix_x2_trans(bf, fc::smem_addr(bs) + (lane % 16) * 16);  // PLANTED: mma-ldmatrix-b
  } else {
    fc::ldmatrix_x2(bf, fc::smem_addr(bs) + (lane % 8) * 32 + (lane / 8 % 2) * 16);  // PLANTED: mma-ldmatrix-bt
    for (int i = 0; i < 4; ++i) af[i] = fc::to_tf32(af[i]);
    for (int i = 0; i < 2; ++i) bf[i] = fc::to_tf32(bf[i]);
  }
  const int g = lane / 4, t = lane % 4;
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  if (bug == kSwapFragment) {
    const uint32_t swapped[4] = {af[0], af[2], af[1], af[3]};
    fc::mma(Tag{}, acc, swapped, bf);  // PLANTED: swapped-fragment
  } else if (bug == kLaneAtSyncwarp && lane == 7) {
    __syncwarp();  // PLANTED: mma-syncwarp
  } else if ((bug != kLaneMissing && bug != kLaneAtBarrier) || lane != 7) {
    fc::mma(Tag{}, acc, af, bf);  // PLANTED: mma-lane-missing
  }
  if (bug == kLaneAtBarrier) __syncthreads();  // PLANTED: mma-barrier
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

enum CopyBug {
  kCopyCorrect = 0,
  kCopyNoWait,        // reads its own cp.async destination before waiting
  kCopyOverlap,       // threads 2i and 2i+1 copy into the same 16 bytes
  kCopySourcePastEnd, // the last thread's source is the 16 bytes after `in`
  kCopyLeftInFlight,  // one more copy, never waited for and never read: fine
  kCopyMisaligned,    // thread 3's destination is 4 bytes into its chunk
};

// Each of 32 threads copies 16 bytes of `in` into dynamic shared memory with cp.async (all
// are issued before anyone waits: the barrier), waits, reads its own chunk back, and after a
// barrier stages twice its neighbour's chunk in a static array with st.shared, which its
// other neighbour reads back with ld.shared: out = 3 in.
__global__ void cp_async_basics(const float* in, float* out, int bug) {
  FA_DYNAMIC_SHARED(float, smem);  // 32 x 4 floats
  FA_SHARED_ARRAY(float, staged, [32][4]);
  const int t = threadIdx.x;
  const int chunk = bug == kCopyOverlap ? t / 2 : t;
  const float* src = in + (bug == kCopySourcePastEnd && t == 31 ? 32 : t) * 4;
  fc::cp_async_16(fc::smem_addr(smem + chunk * 4 + (bug == kCopyMisaligned && t == 3)), src, 16);  // PLANTED: copy-issue
  if (bug == kCopyLeftInFlight) fc::cp_async_16(fc::smem_addr(smem + 128 + t * 4), src, 16);
  fc::cp_async_commit();
  __syncthreads();
  if (bug != kCopyNoWait) fc::cp_async_wait<0>();
  const fc::Vec16 mine = fc::ld_shared_b128(fc::smem_addr(smem + t * 4));  // PLANTED: copy-read-own
  __syncthreads();
  const fc::Vec16 next = fc::ld_shared_b128(fc::smem_addr(smem + (t + 1) % 32 * 4));
  for (int i = 0; i < 4; ++i) {
    float v;
    std::memcpy(&v, &next.w[i], 4);
    v *= 2.f;
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    fc::st_shared_b32(fc::smem_addr(&staged[t][i]), bits);
  }
  __syncthreads();
  const fc::Vec16 back = fc::ld_shared_b128(fc::smem_addr(staged[(t + 31) % 32]));
  for (int i = 0; i < 4; ++i) {
    float v, w;
    std::memcpy(&v, &back.w[i], 4);
    std::memcpy(&w, &mine.w[i], 4);
    out[t * 4 + i] = v + w;  // 2 * in[t] + in[t]
  }
}

// C[M, N] = A[M, K] B[K, N] (f16 in, f32 out; K and N multiples of 8 so rows are 16-byte
// aligned) with a 3-stage cp.async pipeline: each block computes a (16 * warps) x 16 tile of C,
// each warp 16 rows, over k-tiles of 16 through stages in dynamic shared memory (A tile
// rows of 32 bytes, B tile k rows of 32 bytes), fragments by ldmatrix (.trans for B), two
// m16n8k16 mma per k-tile. Edges are cp.async zero-fill.
constexpr int kStages = 3;
enum PipelineBug {
  kPipelineCorrect = 0,
  kStageOffByOne,   // computes on stage (kt + 1) % kStages, whose copies are in flight
  kWaitTooFew,      // cp_async_wait<kStages - 1>: tile kt's group is still in flight
  kIssueBeforeBarrier,  // refills the stage read last iteration before the barrier (WAR)
};

__global__ void pipelined_gemm(const __half* a, const __half* b, float* c, int M, int N, int K, int bug) {
  const int warps = blockDim.x / 32, t = threadIdx.x, warp = t / 32, lane = t % 32;
  const int bm = 16 * warps;
  const int row0 = blockIdx.y * bm, col0 = blockIdx.x * 16;
  const int a_bytes = bm * 32, stage_bytes = a_bytes + 16 * 32;
  FA_DYNAMIC_SHARED(char, smem);
  const int ktiles = (K + 15) / 16;
  // Tile kt into stage s: A rows row0.., columns 16 kt..; B rows 16 kt.., columns col0..
  auto load = [&](int s, int kt) {
    char* stage = fc::smem_addr(smem + s * stage_bytes);
    for (int i = t; i < bm * 2 + 32; i += blockDim.x) {
      if (i < bm * 2) {
        const int r = i / 2, ch = i % 2, gr = row0 + r, gk = kt * 16 + ch * 8;
        const bool in = gr < M && gk < K;
        fc::cp_async_16(stage + r * 32 + ch * 16, in ? a + gr * K + gk : a, in ? 16 : 0);  // PLANTED: pipe-issue-a
      } else {
        const int j = i - bm * 2, r = j / 2, ch = j % 2, gk = kt * 16 + r, gn = col0 + ch * 8;
        const bool in = gk < K && gn < N;
        fc::cp_async_16(stage + a_bytes + r * 32 + ch * 16, in ? b + gk * N + gn : b, in ? 16 : 0);  // PLANTED: pipe-issue-b
      }
    }
  };
  float acc[2][4] = {};
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load(s, s);
    fc::cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    const int next = kt + kStages - 1;
    if (bug == kIssueBeforeBarrier) {
      if (next < ktiles) load(next % kStages, next);  // the bug: refills before the barrier
      fc::cp_async_commit();
      fc::cp_async_wait<kStages - 1>();
    } else if (bug == kWaitTooFew) {
      fc::cp_async_wait<kStages - 1>();  // PLANTED: pipe-wait-too-few
    } else {
      fc::cp_async_wait<kStages - 2>();
    }
    __syncthreads();
    if (bug != kIssueBeforeBarrier) {
      if (next < ktiles) load(next % kStages, next);
      fc::cp_async_commit();
    }
    const int s = (bug == kStageOffByOne ? kt + 1 : kt) % kStages;  // PLANTED: pipe-stage
    char* stage = fc::smem_addr(smem + s * stage_bytes);
    uint32_t af[4], bf[4];
    // A: matrix j = rows 8 (j % 2).. of this warp's 16, bytes 16 (j / 2)..; B (k x n, .trans):
    // matrix j = k rows 8 (j % 2).., n columns 8 (j / 2).. -> bf[0..1] n-tile 0, bf[2..3] n-tile 1.
    fc::ldmatrix_x4(af, stage + (warp * 16 + (lane / 8 % 2) * 8 + lane % 8) * 32 + (lane / 16) * 16);  // PLANTED: pipe-ldmatrix-a
    fc::ldmatrix_x4_trans(bf, stage + a_bytes + ((lane / 8 % 2) * 8 + lane % 8) * 32 + (lane / 16) * 16);  // PLANTED: pipe-ldmatrix-b
    const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
    fc::mma(fc::MmaF16{}, acc[0], af, b0);
    fc::mma(fc::MmaF16{}, acc[1], af, b1);
  }
  const int g = lane / 4, q = lane % 4;
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 4; ++i) {
      const int r = row0 + warp * 16 + g + 8 * (i / 2), col = col0 + n * 8 + 2 * q + i % 2;
      if (r < M && col < N) c[r * N + col] = acc[n][i];
    }
}

}  // namespace planted
