// Winograd F(4x4, 3x3) and F(2x2, 5x5) on AVX-512 (see conv2d_winograd_avx512.h). For one
// T x T output tile and one channel, Y = AT [(G g GT) . (BT d B)] A with d the tile's 6 x 6
// input patch and g the kernel; summed over channels, each of the 36 positions t of the
// transformed tile is a GEMM: M[t] (rows x tiles) = U[t] (rows x C) V[t] (C x tiles). Per call
// (so nothing is cached and nothing can be stale):
//  1. U = G g GT for every panel of <= 14 weight rows: beforehand, in parallel, when the tiles
//     make many blocks; otherwise by each task for its own panels, in cache;
//  2. V = the input patches of a block of 32 tiles (possibly spanning images) transformed, in
//     the micro-kernel's B layout [t][c][32]: by the task, or beforehand when several tasks
//     (pieces of a job's panels) share one block;
//  3. per task (a block and a piece of a job's panels), per panel, the 36 GEMMs into a scratch
//     M[t][row][32], then each row's tiles transformed back, bias added, ReLU applied and
//     stored to the output planes.
// The transforms are vectorized over 16 tiles (one lane per tile, the patches gathered).
#include "cpu/conv2d_winograd_avx512.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/multiversion.h"
#include "cpu/sgemm_avx512.h"

namespace fastalex {
namespace cpu {

ConvAlgo conv_algo() {
  const char* mode = std::getenv("FASTALEX_CPU_CONV");
  if (mode == nullptr) return ConvAlgo::kAuto;
  const std::string m(mode);
  return m == "direct" ? ConvAlgo::kDirect : m == "winograd" ? ConvAlgo::kWinograd : ConvAlgo::kAuto;
}

namespace {

std::atomic<int64_t>& calls() {
  static std::atomic<int64_t> n{0};
  return n;
}

constexpr int kAlpha = 6;     // input patch side
constexpr int kPos = 36;      // positions of a transformed tile
constexpr int kBlock = sgemm::kNR;  // tiles per block (the micro-kernel's columns)
// Inputs and weights beyond this magnitude take the direct path: with |d|, |g| <= 1e14,
// |V| <= 7^2 * 1e14 (rows of BT sum to at most 7 in magnitude) and |U| <= 2.07^2 * 1e14 (rows
// of G: 1.87 for 3 taps, 2.07 for 5), so a sum over <= 2048 channels stays below 4.3e33 and the
// output transform (rows of AT up to 11.125) below 5.4e35: nothing in between overflows.
constexpr float kLimit = 1e14f;
// A block's transformed input holds all of a group's channels (36 x 32 floats each, 9 MiB per
// thread at this bound); deeper convolutions take the direct path.
constexpr int64_t kMaxChannels = 2048;

// Interpolation points 0, 1, -1, 1/2, -2 and infinity. In float32 against float64 on
// GoogLeNet's 4e 3x3 (160 channels, 14 x 14), the largest error was 1.8e-5 against 4.1e-5 with
// the usual 0, +-1, +-2 (outputs of unit variance): the smaller coefficients of BT and AT
// (rows summing to 7 and 11.1 instead of 10 and 19) cancel less. The points fix BT, so both
// variants below share it (and the input transform).
constexpr float kBT[kAlpha][kAlpha] = {
    {1.f, -1.5f, -2.f, 1.5f, 1.f, 0.f}, {0.f, -1.f, 0.5f, 2.5f, 1.f, 0.f},  {0.f, 1.f, -2.5f, 0.5f, 1.f, 0.f},
    {0.f, -2.f, -1.f, 2.f, 1.f, 0.f},   {0.f, 0.5f, -1.f, -0.5f, 1.f, 0.f}, {0.f, 1.f, -1.5f, -2.f, 1.5f, 1.f}};

// F(4x4, 3x3): 36 multiplies for 16 outputs instead of 144.
struct F4x4_3x3 {
  static constexpr int M = 4, R = 3;
  static constexpr float G[kAlpha][R] = {{1.f, 0.f, 0.f},
                                         {1.f / 3, 1.f / 3, 1.f / 3},
                                         {-1.f / 3, 1.f / 3, -1.f / 3},
                                         {-16.f / 15, -8.f / 15, -4.f / 15},
                                         {1.f / 15, -2.f / 15, 4.f / 15},
                                         {0.f, 0.f, 1.f}};
  static constexpr float AT[M][kAlpha] = {{1.f, 1.f, 1.f, 1.f, 1.f, 0.f},
                                          {0.f, 1.f, -1.f, 0.5f, -2.f, 0.f},
                                          {0.f, 1.f, 1.f, 0.25f, 4.f, 0.f},
                                          {0.f, 1.f, -1.f, 0.125f, -8.f, 1.f}};
};

// F(2x2, 5x5): 36 multiplies for 4 outputs instead of 100 (AlexNet's conv2, the Inception
// modules' 5x5 branches). Its float32 error is below F(4x4, 3x3)'s: 7.4e-6 on AlexNet conv2.
struct F2x2_5x5 {
  static constexpr int M = 2, R = 5;
  static constexpr float G[kAlpha][R] = {{1.f, 0.f, 0.f, 0.f, 0.f},
                                         {1.f / 3, 1.f / 3, 1.f / 3, 1.f / 3, 1.f / 3},
                                         {-1.f / 3, 1.f / 3, -1.f / 3, 1.f / 3, -1.f / 3},
                                         {-16.f / 15, -8.f / 15, -4.f / 15, -2.f / 15, -1.f / 15},
                                         {1.f / 15, -2.f / 15, 4.f / 15, -8.f / 15, 16.f / 15},
                                         {0.f, 0.f, 0.f, 0.f, 1.f}};
  static constexpr float AT[M][kAlpha] = {{1.f, 1.f, 1.f, 1.f, 1.f, 0.f}, {0.f, 1.f, -1.f, 0.5f, -2.f, 1.f}};
};

}  // namespace

int64_t winograd_calls() { return calls().load(std::memory_order_relaxed); }

bool winograd_supports(const ConvGeometry& g, int64_t x_image_stride) {
  const bool kernel = (g.kernel_h == 3 || g.kernel_h == 5) && g.kernel_w == g.kernel_h;
  if (!kernel || g.stride_h != 1 || g.stride_w != 1 || g.dilation_h != 1 || g.dilation_w != 1 || g.out_h <= 0 ||
      g.out_w <= 0 || g.in_channels / g.groups > kMaxChannels) {
    return false;
  }
  // Gather offsets are 32-bit, relative to the first image of a block (<= kBlock images).
  return (kBlock + 1) * std::max(x_image_stride, g.in_h * g.in_w) < (int64_t{1} << 31);
}

bool winograd_preferred(const ConvGeometry& g, const std::vector<ConvJob>& jobs) {
  // Costs in FMA-vector slots per (row, input channel), from one-thread measurements of the
  // parts: the micro-kernel's columns come in blocks of 32 in both algorithms; a block's input
  // transform costs about as much as 20 positions' GEMM columns per row at 64 rows, its
  // output transform and the weight transform a few more.
  const int64_t Cg = g.in_channels / g.groups;
  int64_t rows = 0;
  for (const ConvJob& j : jobs) {
    for (const ConvRows& s : j.segments) rows += s.rows;
  }
  const int64_t m = g.kernel_h == 3 ? F4x4_3x3::M : F2x2_5x5::M;
  const int64_t tiles = g.batch * ((g.out_h + m - 1) / m) * ((g.out_w + m - 1) / m);
  const int64_t pixels = g.batch * g.out_h * g.out_w;
  auto blocks = [](int64_t n) { return static_cast<double>((n + kBlock - 1) / kBlock); };
  const double direct = double(g.kernel_h * g.kernel_w) * kBlock * blocks(pixels) * rows * Cg;
  const double gemm = double{kPos} * kBlock * blocks(tiles) * rows * Cg;
  const double input = 1400.0 * blocks(tiles) * Cg * static_cast<double>(jobs.size());
  const double output = (m == 4 ? 1200.0 : 600.0) * blocks(tiles) * rows;
  const double weights = 4.5 * g.kernel_h * g.kernel_w * rows * Cg;
  return gemm + input + output + weights < 0.9 * direct;
}

#if defined(__x86_64__)
namespace {

#define FA_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))

// out[i * os] = sum_k mx[i][k] * in[k * is] for vectors. Inlined into loops unrolled over
// constant indices, so the coefficients are constants: zeros drop out, +-1 become adds and
// subtracts, the rest FMAs.
template <int RO, int RI>
FA_AVX512 FA_ALWAYS_INLINE void apply(const float (&mx)[RO][RI], const __m512* in, int is, __m512* out, int os) {
#pragma GCC unroll 8
  for (int i = 0; i < RO; ++i) {
    __m512 acc = _mm512_setzero_ps();
    bool have = false;
#pragma GCC unroll 8
    for (int k = 0; k < RI; ++k) {
      const float c = mx[i][k];
      if (c == 0.f) continue;
      const __m512 v = in[k * is];
      if (c == 1.f) {
        acc = have ? _mm512_add_ps(acc, v) : v;
      } else if (c == -1.f) {
        acc = have ? _mm512_sub_ps(acc, v) : _mm512_sub_ps(_mm512_setzero_ps(), v);
      } else {
        acc = have ? _mm512_fmadd_ps(_mm512_set1_ps(c), v, acc) : _mm512_mul_ps(_mm512_set1_ps(c), v);
      }
      have = true;
    }
    out[i * os] = acc;
  }
}

// Lanes whose magnitude is beyond kLimit or NaN.
FA_AVX512 FA_ALWAYS_INLINE __mmask16 out_of_range(__m512 v) {
  return _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(kLimit), _CMP_NLE_UQ);
}

// The kernel transform along one axis, (o0 .. o5) = G (g[0], g[gs], ...). For 3 taps by hand:
// the shared sum and the grouping halve the operations of the generic product.
template <class V>
FA_AVX512 FA_ALWAYS_INLINE void kernel_1d(const __m512* g, int gs, __m512* o, int os) {
  if constexpr (V::R != 3) {
    apply(V::G, g, gs, o, os);
  } else {
    const __m512 a = g[0], b = g[gs], c = g[2 * gs];
    const __m512 s = _mm512_add_ps(a, c), third = _mm512_set1_ps(1.f / 3);
    o[0] = a;
    o[1 * os] = _mm512_mul_ps(_mm512_add_ps(s, b), third);
    o[2 * os] = _mm512_mul_ps(_mm512_sub_ps(b, s), third);
    o[3 * os] = _mm512_fmadd_ps(a, _mm512_set1_ps(-16.f / 15),
                                _mm512_fmadd_ps(b, _mm512_set1_ps(-8.f / 15), _mm512_mul_ps(c, _mm512_set1_ps(-4.f / 15))));
    o[4 * os] = _mm512_fmadd_ps(a, _mm512_set1_ps(1.f / 15),
                                _mm512_fmadd_ps(b, _mm512_set1_ps(-2.f / 15), _mm512_mul_ps(c, _mm512_set1_ps(4.f / 15))));
    o[5 * os] = c;
  }
}

// The transformed weights of one panel of mr <= 14 rows (rows of Cg * R * R floats at w).
// PACKED, for micro_kernel_packed_a: U[t][c][r] at U + (t * Cg + c) * mr + r, lanes the
// panel's rows, one channel at a time (U streams from memory at large batches: one sequential
// stream per panel). Otherwise row-major, for micro_kernel: U[t][r][c] at U + (t * mr + r) * Cg
// + c, lanes 16 channels of one row (their weights are adjacent: at batch 1, where each task
// transforms its panel in cache, 25-30% less time than the strided gathers of the packed form).
// Returns whether every weight was within range.
template <class V, bool PACKED>
FA_AVX512 bool transform_weights(const float* w, int mr, int64_t Cg, float* U) {
  constexpr int R = V::R, RR = R * R;
  const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(static_cast<int32_t>(PACKED ? Cg * RR : RR)));
  __mmask16 bad = 0;
  for (int r = 0; r < (PACKED ? 1 : mr); ++r) {
    for (int64_t c = 0; c < Cg; c += PACKED ? 1 : 16) {
      const __mmask16 m = static_cast<__mmask16>(first_lanes(PACKED ? mr : Cg - c));
      const float* src = w + (r * Cg + c) * RR;
      __m512 g[RR], t[kAlpha * R], u[kAlpha];
#pragma GCC unroll 25
      for (int e = 0; e < RR; ++e) {
        g[e] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_add_epi32(lanes, _mm512_set1_epi32(e)), src, 4);
        bad |= out_of_range(g[e]);
      }
#pragma GCC unroll 5
      for (int j = 0; j < R; ++j) kernel_1d<V>(g + j, R, t + j, R);  // t = G g (6 x R)
      float* dst = PACKED ? U + c * mr : U + r * Cg + c;
      const int64_t pos = PACKED ? Cg * mr : mr * Cg;  // floats between positions
#pragma GCC unroll 6
      for (int i = 0; i < kAlpha; ++i) {  // row i of t GT, stored as it is made
        kernel_1d<V>(t + i * R, 1, u, 1);
#pragma GCC unroll 6
        for (int j = 0; j < kAlpha; ++j) _mm512_mask_storeu_ps(dst + (i * kAlpha + j) * pos, m, u[j]);
      }
    }
  }
  return bad == 0;
}

// Where the 16 tiles of one half of a block read and write: per lane the offset of the
// tile's patch origin from the block's first image (input) and of its output origin (plus the
// image, for the output), how many of its rows and columns are inside the output, and per
// patch element the lanes whose element lies inside the input (the rest read as zero).
struct Lanes {
  int count = 0;
  int32_t in_offset[16];
  __mmask16 inside[kPos];
  int64_t out_offset[16];  // n * y_image_stride is added per segment: image and pixel kept apart
  int64_t image[16];
  int rows[16], cols[16];
};

void plan_lanes(int64_t q0, int64_t nt, int64_t n0, int64_t x_image_stride, const ConvGeometry& g, int64_t th,
                int64_t tw, int64_t m, Lanes& L) {
  int32_t* off = L.in_offset;
  std::fill(off, off + 16, 0);
  uint32_t inside[kPos] = {};
  L.count = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(16, nt)));
  for (int l = 0; l < L.count; ++l) {
    const int64_t q = q0 + l, n = q / (th * tw), ty = (q / tw) % th, tx = q % tw;
    const int64_t ih0 = ty * m - g.pad_h, iw0 = tx * m - g.pad_w;
    off[l] = static_cast<int32_t>((n - n0) * x_image_stride + ih0 * g.in_w + iw0);
    for (int i = 0; i < kAlpha; ++i) {
      for (int j = 0; j < kAlpha; ++j) {
        const bool in = ih0 + i >= 0 && ih0 + i < g.in_h && iw0 + j >= 0 && iw0 + j < g.in_w;
        inside[i * kAlpha + j] |= static_cast<uint32_t>(in) << l;
      }
    }
    L.image[l] = n;
    L.out_offset[l] = ty * m * g.out_w + tx * m;
    L.rows[l] = static_cast<int>(std::min<int64_t>(m, g.out_h - ty * m));
    L.cols[l] = static_cast<int>(std::min<int64_t>(m, g.out_w - tx * m));
  }
  for (int p = 0; p < kPos; ++p) L.inside[p] = static_cast<__mmask16>(inside[p]);
}

// V[t][c][half * 16 + lane] for channels [c0, c1) of the job's Cg (input channel c at
// chan0 + c * HW). Returns whether every input read was within range.
FA_AVX512 bool transform_input(const float* chan0, int64_t HW, int64_t W, int64_t c0, int64_t c1, int64_t Cg,
                               const Lanes& L, int half, float* V) {
  __mmask16 bad = 0;
  const __m512i in_offset = _mm512_loadu_si512(L.in_offset);
  for (int64_t c = c0; c < c1; ++c) {
    const float* src = chan0 + c * HW;
    __m512 t[kPos];
#pragma GCC unroll 6
    for (int i = 0; i < kAlpha; ++i) {  // row i of the patch, transformed along the row: t = d B
      __m512 d[kAlpha];
#pragma GCC unroll 6
      for (int j = 0; j < kAlpha; ++j) {
        const __m512i idx = _mm512_add_epi32(in_offset, _mm512_set1_epi32(static_cast<int32_t>(i * W + j)));
        d[j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), L.inside[i * kAlpha + j], idx, src, 4);
        bad |= out_of_range(d[j]);
      }
      apply(kBT, d, 1, t + i * kAlpha, 1);
    }
    float* dst = V + c * kBlock + half * 16;
#pragma GCC unroll 6
    for (int j = 0; j < kAlpha; ++j) {  // column j: v = BT t, stored as it is made
      __m512 v[kAlpha];
      apply(kBT, t + j, kAlpha, v, 1);
#pragma GCC unroll 6
      for (int i = 0; i < kAlpha; ++i) _mm512_storeu_ps(dst + (i * kAlpha + j) * Cg * kBlock, v[i]);
    }
  }
  return bad == 0;
}

// Rows [0, mr) of the scratch M[t][row][kBlock] back to outputs: y = (AT m A) * scale + bias, ReLU,
// stored to the tiles' pixels (row r of the panel is output channel row0 + r of the segment).
template <class V>
FA_AVX512 void transform_output(const float* M, int mr, const Lanes& L, int half, const ConvRows& seg, int64_t row0,
                                int64_t P, int64_t OW) {
  constexpr int T = V::M;
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < mr; ++r) {
    __m512 m[kPos], t[T * kAlpha], y[T * T];
#pragma GCC unroll 36
    for (int p = 0; p < kPos; ++p) m[p] = _mm512_loadu_ps(M + (p * sgemm::kMR + r) * kBlock + half * 16);
#pragma GCC unroll 6
    for (int j = 0; j < kAlpha; ++j) apply(V::AT, m + j, kAlpha, t + j, kAlpha);  // t = AT m (T x 6)
#pragma GCC unroll 4
    for (int i = 0; i < T; ++i) apply(V::AT, t + i * kAlpha, 1, y + i * T, 1);  // y = t A (T x T)
    const __m512 bias = seg.b ? _mm512_set1_ps(seg.b[row0 + r]) : zero;
    const __m512 scale = seg.scale ? _mm512_set1_ps(seg.scale[row0 + r]) : _mm512_set1_ps(1.f);
#pragma GCC unroll 16
    for (int p = 0; p < T * T; ++p) {
      // (a multiply by 1 changes nothing, NaN included: one form for both)
      const __m512 v = _mm512_fmadd_ps(y[p], scale, bias);
      y[p] = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);  // ReLU keeping NaN
    }
    // y[i * T + j] holds output (i, j) of the 16 tiles, a lane each. Interleaved in registers,
    // each tile's output row becomes T adjacent lanes of one vector, stored with a lane mask
    // at the address that puts those lanes on the row (masked-off lanes are not touched).
    // q[i][s]: row i; tile l's row lies in q[i][l % S] at lanes lane0(l) .. lane0(l) + T - 1.
    constexpr int S = T == 4 ? 4 : 2;
    __m512 q[T][S];
#pragma GCC unroll 4
    for (int i = 0; i < T; ++i) {
      if constexpr (T == 4) {  // 4 x 16 -> 16 x 4: tile 4k + s in lanes 4k .. 4k + 3 of q[i][s]
        const __m512 ab_lo = _mm512_unpacklo_ps(y[4 * i], y[4 * i + 1]),
                     ab_hi = _mm512_unpackhi_ps(y[4 * i], y[4 * i + 1]);
        const __m512 cd_lo = _mm512_unpacklo_ps(y[4 * i + 2], y[4 * i + 3]),
                     cd_hi = _mm512_unpackhi_ps(y[4 * i + 2], y[4 * i + 3]);
        q[i][0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab_lo), _mm512_castps_pd(cd_lo)));
        q[i][1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab_lo), _mm512_castps_pd(cd_lo)));
        q[i][2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab_hi), _mm512_castps_pd(cd_hi)));
        q[i][3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab_hi), _mm512_castps_pd(cd_hi)));
      } else {  // 2 x 16 -> 16 x 2: tiles 4k, 4k + 1 in q[i][0], 4k + 2, 4k + 3 in q[i][1]
        q[i][0] = _mm512_unpacklo_ps(y[2 * i], y[2 * i + 1]);
        q[i][1] = _mm512_unpackhi_ps(y[2 * i], y[2 * i + 1]);
      }
    }
    float* plane = seg.y + (row0 + r) * P;
    for (int l = 0; l < L.count; ++l) {
      const int lane0 = T == 4 ? 4 * (l / 4) : 4 * (l / 4) + 2 * (l % 2), s = T == 4 ? l % 4 : (l % 4) / 2;
      const __mmask16 cols = static_cast<__mmask16>(((1u << L.cols[l]) - 1u) << lane0);
      float* dst = plane + L.image[l] * seg.y_image_stride + L.out_offset[l] - lane0;
      for (int i = 0; i < L.rows[l]; ++i) _mm512_mask_storeu_ps(dst + i * OW, cols, q[i][s]);
    }
  }
}

template <class V>
bool winograd_jobs(const float* x, int64_t x_image_stride, const std::vector<ConvJob>& jobs, const ConvGeometry& g) {
  using namespace sgemm;
  constexpr int RR = V::R * V::R;
  const int64_t Cg = g.in_channels / g.groups, HW = g.in_h * g.in_w, P = g.out_h * g.out_w;
  const int64_t th = (g.out_h + V::M - 1) / V::M, tw = (g.out_w + V::M - 1) / V::M;
  const int64_t tiles = g.batch * th * tw, nblocks = (tiles + kBlock - 1) / kBlock;
  // Per job: where its U starts and its panels (rows of all its segments, in order).
  struct Panel {
    int seg, mr;
    int64_t row0, u_row;  // row within the segment, row within the job's U
  };
  std::vector<int64_t> u_start(jobs.size() + 1, 0);
  std::vector<std::vector<Panel>> panels(jobs.size());
  int max_panels = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    int64_t u_row = 0;
    for (size_t s = 0; s < jobs[j].segments.size(); ++s) {
      const int64_t rows = jobs[j].segments[s].rows;
      for (int i = 0; i < panel_count(rows); ++i) {
        panels[j].push_back(Panel{static_cast<int>(s), panel_height(rows, i), panel_row0(rows, i),
                                  u_row + panel_row0(rows, i)});
      }
      u_row += rows;
    }
    u_start[j + 1] = u_start[j] + kPos * u_row * Cg;
    max_panels = std::max(max_panels, static_cast<int>(panels[j].size()));
  }
  std::atomic<bool> ok{true};
  // With few blocks a weight row serves few tasks: each task transforms its panels' rows into
  // a scratch that stays in cache, instead of all of U going through memory once and coming
  // back once per block.
  const bool fuse = nblocks <= 4;
  std::unique_ptr<PooledFloats> U(fuse ? nullptr : new PooledFloats(u_start.back()));

  // 1. The weights, panel by panel (a panel's U is 36 * Cg * mr floats at 36 * Cg * u_row).
  if (!fuse) {
    std::vector<std::pair<size_t, size_t>> all_panels;  // (job, panel)
    for (size_t j = 0; j < jobs.size(); ++j) {
      for (size_t i = 0; i < panels[j].size(); ++i) all_panels.emplace_back(j, i);
    }
    at::parallel_for(0, static_cast<int64_t>(all_panels.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const size_t j = all_panels[k].first;
        const Panel& pn = panels[j][all_panels[k].second];
        const ConvRows& seg = jobs[j].segments[pn.seg];
        float* u = U->get() + u_start[j] + kPos * Cg * pn.u_row;
        if (!transform_weights<V, true>(seg.w + pn.row0 * Cg * RR, pn.mr, Cg, u)) {
          ok = false;
        }
      }
    });
  }
  if (!ok) return false;

  // 2. Blocks of tiles x pieces of each job's panels.
  const int64_t pieces = conv_row_pieces(static_cast<int64_t>(jobs.size()) * nblocks, max_panels);
  const int64_t tasks = static_cast<int64_t>(jobs.size()) * pieces * nblocks;
  const int64_t v_size = kPos * Cg * kBlock;
  std::vector<Lanes> lanes(static_cast<size_t>(2 * nblocks));
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t q0 = blk * kBlock, nt = std::min<int64_t>(kBlock, tiles - q0);
    for (int h = 0; h < 2; ++h) {
      plan_lanes(q0 + 16 * h, nt - 16 * h, q0 / (th * tw), x_image_stride, g, th, tw, V::M, lanes[2 * blk + h]);
    }
  }
  auto block_input = [&](size_t j, int64_t blk) {
    return x + (blk * kBlock / (th * tw)) * x_image_stride + jobs[j].in_channel0 * HW;
  };
  // Pieces of one block would each transform its input again: with several, every (job,
  // block)'s V is transformed once beforehand, its channels shared among the threads.
  std::unique_ptr<PooledFloats> shared_v;
  if (pieces > 1) {
    shared_v.reset(new PooledFloats(static_cast<int64_t>(jobs.size()) * nblocks * v_size));
    const int64_t chunks = (Cg + 15) / 16, units = static_cast<int64_t>(jobs.size()) * nblocks * 2 * chunks;
    at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t chunk = u % chunks, h = (u / chunks) % 2, blk = (u / chunks / 2) % nblocks;
        const size_t j = static_cast<size_t>(u / chunks / 2 / nblocks);
        const Lanes& L = lanes[2 * blk + h];
        if (L.count == 0) continue;
        if (!transform_input(block_input(j, blk), HW, g.in_w, chunk * 16, std::min(Cg, chunk * 16 + 16), Cg, L,
                             static_cast<int>(h), shared_v->get() + (j * nblocks + blk) * v_size)) {
          ok = false;
        }
      }
    });
    if (!ok) return false;
  }
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::unique_ptr<PooledFloats> own_v(shared_v ? nullptr : new PooledFloats(v_size));
    PooledFloats M(kPos * kMR * kBlock);
    std::unique_ptr<PooledFloats> Upanel(fuse ? new PooledFloats(kPos * kMR * Cg) : nullptr);
    for (int64_t t = begin; t < end && ok.load(std::memory_order_relaxed); ++t) {
      const int64_t block = t % nblocks, piece = (t / nblocks) % pieces;
      const size_t j = static_cast<size_t>(t / nblocks / pieces);
      const std::vector<Panel>& all = panels[j];
      const int64_t npanels = static_cast<int64_t>(all.size());
      const int64_t first = piece * npanels / pieces, last = (piece + 1) * npanels / pieces;
      if (first == last) continue;
      const int64_t nt = std::min<int64_t>(kBlock, tiles - block * kBlock);
      const Lanes* L = &lanes[2 * block];
      float* const vb = shared_v ? shared_v->get() + (j * nblocks + block) * v_size : own_v->get();
      if (!shared_v) {
        bool inputs_ok = true;
        // (an empty second half is not read: the micro-kernel computes only nt <= 16 columns)
        for (int h = 0; h < 2; ++h) {
          if (L[h].count > 0 && !transform_input(block_input(j, block), HW, g.in_w, 0, Cg, Cg, L[h], h, vb)) {
            inputs_ok = false;
          }
        }
        if (!inputs_ok) {
          ok = false;
          break;
        }
      }
      for (int64_t i = first; i < last; ++i) {
        const Panel& pn = all[i];
        const ConvRows& seg = jobs[j].segments[pn.seg];
        // The panel's transformed weights: U's rows, or transformed here (a few blocks).
        const float* u = fuse ? Upanel->get() : U->get() + u_start[j] + kPos * Cg * pn.u_row;
        if (fuse && !transform_weights<V, false>(seg.w + pn.row0 * Cg * RR, pn.mr, Cg, Upanel->get())) {
          ok = false;
          break;
        }
        for (int64_t kb = 0; kb < Cg; kb += kKC) {
          const int64_t kc = std::min<int64_t>(kKC, Cg - kb);
          for (int p = 0; p < kPos; ++p) {
            float* c = M.get() + p * kMR * kBlock;
            if (fuse) {
              micro_kernel(kc, u + p * pn.mr * Cg + kb, Cg, vb + (p * Cg + kb) * kBlock, kBlock, c, kBlock, pn.mr,
                           static_cast<int>(nt), kb > 0, false, nullptr);
            } else {
              micro_kernel_packed_a(kc, u + (p * Cg + kb) * pn.mr, vb + (p * Cg + kb) * kBlock, kBlock, c, kBlock,
                                    pn.mr, static_cast<int>(nt), kb > 0, false, nullptr);
            }
          }
        }
        for (int h = 0; h < 2; ++h) {
          if (L[h].count > 0) {
            transform_output<V>(M.get(), pn.mr, L[h], h, seg, pn.row0, P, g.out_w);
          }
        }
      }
    }
  });
  return ok.load();
}

}  // namespace

bool conv_winograd_jobs(const float* x, int64_t x_image_stride, const std::vector<ConvJob>& jobs,
                        const ConvGeometry& g) {
  // A non-finite scale (a BatchNorm whose variance + eps is not positive) times Winograd's
  // result would turn its rounding residue into inf where the direct sum is an exact zero
  // (inf * 0 = NaN): such calls take the direct path too.
  for (const ConvJob& job : jobs) {
    for (const ConvRows& seg : job.segments) {
      if (seg.scale != nullptr && !std::all_of(seg.scale, seg.scale + seg.rows, [](float v) { return std::isfinite(v); })) {
        return false;
      }
    }
  }
  const bool done = g.kernel_h == 3 ? winograd_jobs<F4x4_3x3>(x, x_image_stride, jobs, g)
                                    : winograd_jobs<F2x2_5x5>(x, x_image_stride, jobs, g);
  if (done) calls().fetch_add(1, std::memory_order_relaxed);
  return done;
}
#else
bool conv_winograd_jobs(const float*, int64_t, const std::vector<ConvJob>&, const ConvGeometry&) { return false; }
#endif

}  // namespace cpu
}  // namespace fastalex
