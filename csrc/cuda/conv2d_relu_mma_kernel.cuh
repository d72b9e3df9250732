// Device code of the tensor-core conv2d + bias + ReLU (torch-free; see device_common.cuh and
// mma_primitives.cuh).
//
// Implicit GEMM, per group g:  Y[p, m] = relu(bias[m] + sum_k X[p, k] W[m, k])
//   p: an output pixel (n, oh, ow)               -- the GEMM's M, rows of the A operand
//   m: an output channel of the group            -- the GEMM's N, rows of the B operand
//   k: (kh, kw, c), channel fastest              -- the reduction, contiguous in NHWC memory
// so the channels_last layout gives both operands K-contiguous rows: A rows are 16-byte runs
// of one input pixel's channels, B rows are the weight reordered by the host to
// [groups * out_channels_per_group][K] (K padded to 16 bytes with zeros).
//
// One block computes a BM x BN tile of Y with mma.sync (m16n8k16 for float16/bfloat16, m16n8k8
// TF32 for float32); each of its warps owns a WM x WN sub-tile held in registers.
//   - K advances 64 bytes per stage (32 half elements, 16 float elements): STAGES stages of
//     shared memory, filled with cp.async 16 bytes at a time (zero-fill for padding, edges and
//     the K tail), kept STAGES - 1 tiles ahead of the math.
//   - Shared tiles have 64-byte rows swizzled by swizzle64, so both the cp.async writes and the
//     ldmatrix reads hit 8 distinct 16-byte bank groups (no conflicts).
//   - Each 64-byte stage is two 32-byte k-steps; one k-step is one m16n8k16 (or m16n8k8 TF32):
//     A fragments by ldmatrix.x4 per 16 rows, B fragments by ldmatrix.x4 per 16 channels.
//   - Epilogue: bias and a NaN-keeping ReLU on the accumulators, conversion to T, a staging
//     pass through shared memory, then 16-byte stores along the channels (NHWC output) or
//     element stores through the strides (any other output layout).
// kVec (template) selects the A loader: true for K-contiguous 16-byte runs (channels per group
// a multiple of 16 / sizeof(T), channels stride 1, aligned), false for the gather loader that
// reads any layout and any channel count element by element (the stem layers: 3 channels, taps
// folded into K so a 11x11x3 filter is K = 363, not 11x11x8).
#pragma once

#include "cuda/conv2d_relu_shape.cuh"
#include "cuda/device_common.cuh"
#include "cuda/mma_primitives.cuh"

namespace fastalex {
namespace cuda {

struct MmaConvParams : ConvShape {  // K is ordered (kh, kw, c); pixels is the GEMM's M
  int K_padded;  // K rounded up to 16 bytes: the weight matrix's row length
  // Input element strides: within one sample every offset fits in 32 bits (the host sends
  // larger samples to the FFMA kernel, which uses 64-bit offsets throughout).
  int64_t in_sn;
  int in_sc, in_sh, in_sw;
  int64_t out_sn, out_sc, out_sh, out_sw;  // output element strides
  bool vector_store;  // output channels contiguous and 16-byte aligned runs
};

// The MMA instruction for a storage type.
template <typename T>
struct MmaFor;
template <>
struct MmaFor<__half> {
  using tag = MmaF16;
};
template <>
struct MmaFor<__nv_bfloat16> {
  using tag = MmaBF16;
};
template <>
struct MmaFor<float> {
  using tag = MmaTF32;
};

// A block tile configuration. STAGES x (BM + BN) x 64 bytes of pipeline shared memory.
template <int BM_, int BN_, int WM_, int WN_, int STAGES_>
struct MmaTile {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int MI = WM / 16, NI = WN / 8;  // mma tiles per warp
  static constexpr int kStageBytes = (BM + BN) * 64;
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0, "warp tiles must divide the block");
  static_assert((BM * 4) % kThreads == 0 && (BN * 4) % kThreads == 0, "16-byte chunks must divide among threads");
  static_assert(STAGES >= 3, "the pipeline keeps at least two tiles in flight");
};
using MmaTile128x128 = MmaTile<128, 128, 64, 64, 3>;  // 4 warps, 48 KiB pipeline
using MmaTile128x64 = MmaTile<128, 64, 64, 32, 4>;    // 4 warps, 48 KiB
using MmaTile64x64 = MmaTile<64, 64, 32, 32, 4>;      // 4 warps, 32 KiB

// Bytes of dynamic shared memory a tile needs for T: the pipeline, or the epilogue's staging
// tile (BM rows, padded by 16 bytes so a warp's 8 rows start in different banks), whichever
// is larger -- they reuse the same memory.
template <typename Tile, typename T>
FA_HOST_DEVICE int mma_conv_smem_bytes() {
  const int pipeline = Tile::STAGES * Tile::kStageBytes;
  const int staging = Tile::BM * (Tile::BN * int(sizeof(T)) + 16);
  return pipeline > staging ? pipeline : staging;
}

template <typename T>
FA_DEVICE uint32_t bits_of(T v) {
  uint32_t u = 0;
  memcpy(&u, &v, sizeof(T));
  return u;
}
template <typename T>
FA_DEVICE T from_bits16(uint32_t u) {
  T v;
  const uint16_t h = static_cast<uint16_t>(u);
  memcpy(&v, &h, sizeof(T));
  return v;
}

// The input window of output pixel `pix` (an A row): its sample's base, its top-left corner
// (ih0, iw0; padding makes them negative) and that corner's 32-bit offset in the sample. A row
// past the last pixel gets a corner no tap can bring inside the image, so it reads zeros.
template <typename T>
FA_DEVICE void window_origin(const MmaConvParams& p, const T* xg, int64_t pix, const T*& base, int& ih0, int& iw0,
                             int& off0) {
  base = xg;
  ih0 = -(1 << 30);
  iw0 = 0;
  off0 = 0;
  if (pix < p.pixels) {
    const int64_t ow = pix % p.out_w, t = pix / p.out_w;
    const int64_t oh = t % p.out_h, n = t / p.out_h;
    ih0 = int(oh * p.stride_h - p.pad_h);
    iw0 = int(ow * p.stride_w - p.pad_w);
    base = xg + n * p.in_sn;
    off0 = ih0 * p.in_sh + iw0 * p.in_sw;
  }
}

// grid: (ceil(pixels / BM), ceil(out_channels_per_group / BN), groups), block: Tile::kThreads.
// w: [groups * out_channels_per_group][K_padded], (kh, kw, c) order, zero beyond K; for float
// (TF32) already rounded to TF32 by the host.
template <typename T, typename Tile, bool kVec>
__global__ void __launch_bounds__(Tile::kThreads)
    conv2d_relu_mma_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                           T* __restrict__ y, MmaConvParams p) {
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES, NT = Tile::kThreads;
  constexpr int MI = Tile::MI, NI = Tile::NI;
  constexpr int kElems16 = 16 / int(sizeof(T));  // elements per 16-byte chunk
  constexpr int kBK = 4 * kElems16;               // elements of K per stage (64 bytes)
  constexpr int kAChunks = BM * 4 / NT, kBChunks = BN * 4 / NT;
  using Mma = typename MmaFor<T>::tag;

  FA_DYNAMIC_SHARED(unsigned char, smem);
  const SmemAddr smem_base = smem_addr(smem);
  auto a_stage = [&](int s) { return smem_base + s * Tile::kStageBytes; };
  auto b_stage = [&](int s) { return smem_base + s * Tile::kStageBytes + BM * 64; };

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp % Tile::kWarpsM, warp_n = warp / Tile::kWarpsM;
  const int64_t pix0 = int64_t(blockIdx.x) * BM;
  const int m0 = blockIdx.y * BN;
  const int grp = blockIdx.z;
  const int ocg = p.out_channels_per_group, cg = p.in_channels_per_group;
  const T* xg = x + int64_t(grp) * cg * p.in_sc;
  const T* wg = w + (int64_t(grp) * ocg + m0) * p.K_padded;

  // ---- A loader (vector): thread tid owns chunk tid % 4 of rows tid / 4 + i * NT / 4. Each
  // row is an output pixel: the 64-bit address of its window's origin is formed once, each
  // tile adds a 32-bit tap offset shared by all the thread's rows.
  const T* a_ptr[kVec ? kAChunks : 1];
  int a_ih0[kVec ? kAChunks : 1], a_iw0[kVec ? kAChunks : 1], a_off0[kVec ? kAChunks : 1];
  if constexpr (kVec) {
#pragma unroll
    for (int i = 0; i < kAChunks; ++i) {
      window_origin(p, xg, pix0 + tid / 4 + i * (NT / 4), a_ptr[i], a_ih0[i], a_iw0[i], a_off0[i]);
    }
  }
  // ---- A loader (gather): thread tid owns rows tid / 16 + i * NT / 16, with the same per-row
  // window origins.
  constexpr int kGatherRows = kVec ? 1 : BM * 16 / NT;
  const T* g_ptr[kGatherRows];
  int g_ih0[kGatherRows], g_iw0[kGatherRows], g_off0[kGatherRows];
  if constexpr (!kVec) {
#pragma unroll
    for (int i = 0; i < kGatherRows; ++i) {
      window_origin(p, xg, pix0 + tid / 16 + i * (NT / 16), g_ptr[i], g_ih0[i], g_iw0[i], g_off0[i]);
    }
  }
  // ---- B loader: thread tid owns chunk tid % 4 of weight rows tid / 4 + i * NT / 4.
  const T* b_ptr[kBChunks];
  bool b_row_ok[kBChunks];
#pragma unroll
  for (int i = 0; i < kBChunks; ++i) {
    const int row = tid / 4 + i * (NT / 4);
    b_row_ok[i] = m0 + row < ocg;
    b_ptr[i] = wg + (b_row_ok[i] ? int64_t(row) * p.K_padded : 0);
  }
  int b_k = (tid % 4) * kElems16;  // K offset of this thread's B chunk in the next tile

  const int ktiles = (p.K + kBK - 1) / kBK;

  // The tap (r, s) and channel c of this thread's A chunk in the next tile to load: tiles are
  // loaded in order, so they advance by kBK elements per tile, without divisions.
  int a_c = 0, a_r = 0, a_s = 0;
  if constexpr (kVec) {
    const int k0 = (tid % 4) * kElems16, tap = k0 / cg;
    a_c = k0 % cg;
    a_r = tap / p.kernel_w;
    a_s = tap % p.kernel_w;
  }

  // Issues the loads of the next K tile (tiles in increasing order) into stage `s`.
  auto load_tile = [&](int kt, int s) {
    const SmemAddr as = a_stage(s), bs = b_stage(s);
    const int chunk = tid % 4;
    if constexpr (kVec) {
      // The chunk is 16 bytes of one tap's channels (the channels per group are a multiple of
      // 16 bytes); past the last tap (a_r == kernel_h) it is the K tail: zero-filled.
      const bool k_ok = a_r < p.kernel_h;
      const int dh = a_r * p.dilation_h, dw = a_s * p.dilation_w;
      const int tap_off = dh * p.in_sh + dw * p.in_sw + a_c;
#pragma unroll
      for (int i = 0; i < kAChunks; ++i) {
        const int row = tid / 4 + i * (NT / 4);
        const int ih = a_ih0[i] + dh, iw = a_iw0[i] + dw;
        const bool ok = k_ok && unsigned(ih) < unsigned(p.in_h) && unsigned(iw) < unsigned(p.in_w);
        const T* src = ok ? a_ptr[i] + (a_off0[i] + tap_off) : x;
        cp_async_16(as + swizzle64(row, chunk), src, ok ? 16 : 0);
      }
      a_c += kBK;
      while (a_c >= cg) {
        a_c -= cg;
        if (++a_s == p.kernel_w) {
          a_s = 0;
          ++a_r;
        }
      }
    } else {
      // Gather: the tile as 32-bit words, 16 per row; this thread owns word column tid % 16 of
      // rows tid / 16 + i * NT / 16. Per tile, the word's K elements are decoded into (tap, c)
      // once, then read for each row at its window origin + the tap's 32-bit offset.
      constexpr int kPerWord = 4 / int(sizeof(T));
      const int word = tid % 16;
      int tap_off[kPerWord], dh[kPerWord], dw[kPerWord];
      bool k_ok[kPerWord];
#pragma unroll
      for (int e = 0; e < kPerWord; ++e) {
        const int k = kt * kBK + word * kPerWord + e;
        k_ok[e] = k < p.K;
        const int tap = k_ok[e] ? k / cg : 0, c = k_ok[e] ? k % cg : 0;
        dh[e] = tap / p.kernel_w * p.dilation_h;
        dw[e] = tap % p.kernel_w * p.dilation_w;
        tap_off[e] = dh[e] * p.in_sh + dw[e] * p.in_sw + c * p.in_sc;
      }
#pragma unroll
      for (int i = 0; i < kGatherRows; ++i) {
        uint32_t packed = 0;
#pragma unroll
        for (int e = 0; e < kPerWord; ++e) {
          const int ih = g_ih0[i] + dh[e], iw = g_iw0[i] + dw[e];
          if (k_ok[e] && unsigned(ih) < unsigned(p.in_h) && unsigned(iw) < unsigned(p.in_w))
            packed |= bits_of(g_ptr[i][g_off0[i] + tap_off[e]]) << (16 * e);
        }
        const int row = tid / 16 + i * (NT / 16);
        st_shared_b32(as + swizzle64(row, word / 4) + (word % 4) * 4, packed);
      }
    }
    const bool k_ok = b_k < p.K_padded;
#pragma unroll
    for (int i = 0; i < kBChunks; ++i) {
      const int row = tid / 4 + i * (NT / 4);
      const bool ok = b_row_ok[i] && k_ok;
      cp_async_16(bs + swizzle64(row, chunk), ok ? b_ptr[i] + b_k : w, ok ? 16 : 0);
    }
    b_k += kBK;
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // Prologue: tiles 0 .. STAGES-2 in flight, one commit group each (empty groups past the end
  // keep the group count, and so the wait below, uniform).
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_tile(s, s);
    cp_async_commit();
  }

  // ldmatrix row addresses (byte offsets in a stage), lanes 8j..8j+7 giving matrix j's rows:
  //   A (16 pixels x 32 bytes per mma): matrix j = rows (j % 2) * 8.., 16-byte chunk j / 2;
  //   B (16 channels x 32 bytes, two n8 tiles): matrix j = rows (j / 2) * 8.., chunk j % 2.
  // Moving 16 rows down keeps the swizzle ((row >> 1) & 3), so per k-step one offset serves
  // every 16-row block: row block i is at + i * 16 * 64 bytes.
  const int lj = lane / 8, lr = lane % 8;
  const int a_row = warp_m * Tile::WM + (lj % 2) * 8 + lr, a_chunk = lj / 2;
  const int b_row = warp_n * Tile::WN + (lj / 2) * 8 + lr, b_chunk = lj % 2;
  int a_ld[2], b_ld[2];
#pragma unroll
  for (int ks = 0; ks < 2; ++ks) {
    a_ld[ks] = swizzle64(a_row, ks * 2 + a_chunk);
    b_ld[ks] = BM * 64 + swizzle64(b_row, ks * 2 + b_chunk);
  }

  int read_stage = 0, write_stage = STAGES - 1;
#pragma unroll 1
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();              // everyone's have; and everyone is done with tile kt - 1's stage
    if (kt + STAGES - 1 < ktiles) load_tile(kt + STAGES - 1, write_stage);
    cp_async_commit();
    write_stage = write_stage == STAGES - 1 ? 0 : write_stage + 1;
    const SmemAddr stage = smem_base + read_stage * Tile::kStageBytes;
    read_stage = read_stage == STAGES - 1 ? 0 : read_stage + 1;
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {  // two 32-byte k-steps per 64-byte stage
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) ldmatrix_x4(af[i], stage + a_ld[ks] + i * 16 * 64);
#pragma unroll
      for (int j = 0; j < NI / 2; ++j) {
        uint32_t r[4];
        ldmatrix_x4(r, stage + b_ld[ks] + j * 16 * 64);
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
      if constexpr (sizeof(T) == 4) {
        // float32 activations are rounded to TF32 here (cvt.rna); the host rounded the weights
        // the same way when it laid them out, which saves the B fragments' conversions.
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) af[i][e] = to_tf32(af[i][e]);
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma(Mma{}, acc[i][j], af[i], bf[j]);
    }
  }

  // ---- Epilogue. The pipeline's shared memory becomes the staging tile.
  cp_async_wait<0>();  // only empty groups can remain, but no copy may land on the staging tile
  __syncthreads();     // every warp is done with the pipeline's stages
  constexpr int kPitch = BN * int(sizeof(T)) + 16;
  const int g = lane / 4, t4 = lane % 4;
#pragma unroll
  for (int j = 0; j < NI; ++j) {
    const int col = warp_n * Tile::WN + j * 8 + 2 * t4;  // channel within the tile
    float b0 = 0.f, b1 = 0.f;
    if (bias) {
      const int64_t oc = int64_t(grp) * ocg + m0 + col;
      if (m0 + col < ocg) b0 = to_acc(bias[oc]);
      if (m0 + col + 1 < ocg) b1 = to_acc(bias[oc + 1]);
    }
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // rows g and g + 8
        const int row = warp_m * Tile::WM + i * 16 + g + 8 * h;
        const float v0 = relu_keep_nan(acc[i][j][2 * h] + b0), v1 = relu_keep_nan(acc[i][j][2 * h + 1] + b1);
        const SmemAddr dst = smem_base + row * kPitch + col * int(sizeof(T));
        if constexpr (sizeof(T) == 4) {
          st_shared_b32(dst, bits_of(v0));
          st_shared_b32(dst + 4, bits_of(v1));
        } else {
          st_shared_b32(dst, bits_of(from_acc<T>(v0)) | (bits_of(from_acc<T>(v1)) << 16));
        }
      }
  }
  __syncthreads();  // the staging tile is complete
  // 16-byte chunks of the staging tile: BM rows x BN * sizeof(T) / 16 chunks.
  constexpr int kRowChunks = BN * int(sizeof(T)) / 16;
#pragma unroll 1
  for (int q = tid; q < BM * kRowChunks; q += NT) {
    const int row = q / kRowChunks, chunk = q % kRowChunks;
    const int64_t pix = pix0 + row;
    const int col = chunk * kElems16;
    if (pix >= p.pixels || m0 + col >= ocg) continue;
    const Vec16 v = ld_shared_b128(smem_base + row * kPitch + chunk * 16);
    const int64_t ow = pix % p.out_w, t = pix / p.out_w;
    const int64_t oh = t % p.out_h, n = t / p.out_h;
    T* yp = y + n * p.out_sn + oh * p.out_sh + ow * p.out_sw + (int64_t(grp) * ocg + m0 + col) * p.out_sc;
    if (p.vector_store) {  // the whole chunk is inside the channels: ocg is a multiple of kElems16
      *reinterpret_cast<Vec16*>(yp) = v;
    } else {
#pragma unroll
      for (int e = 0; e < kElems16; ++e) {
        if (m0 + col + e >= ocg) break;
        const uint32_t word = v.w[e * int(sizeof(T)) / 4];
        if constexpr (sizeof(T) == 4) {
          float f;
          memcpy(&f, &word, 4);
          yp[e * p.out_sc] = f;
        } else {
          yp[e * p.out_sc] = from_bits16<T>(e % 2 ? word >> 16 : word);
        }
      }
    }
  }
}

}  // namespace cuda
}  // namespace fastalex
