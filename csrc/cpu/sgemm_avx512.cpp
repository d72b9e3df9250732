#include "cpu/sgemm_avx512.h"

#include "cpu/multiversion.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace fastalex {
namespace cpu {
namespace sgemm {

int panel_count(int64_t m) { return static_cast<int>((m + kMR - 1) / kMR); }

int panel_height(int64_t m, int i) {
  const int64_t n = panel_count(m);
  return static_cast<int>(m / n + (i < m % n ? 1 : 0));
}

int64_t panel_row0(int64_t m, int i) {
  const int64_t n = panel_count(m), base = m / n, extra = m % n;
  return i * base + std::min<int64_t>(i, extra);
}

#if defined(__x86_64__)
namespace {

// One C tile of MR rows and NV 16-float vectors of columns: MR * NV accumulators + NV B vectors
// in the 32 vector registers. NV = 1 serves blocks of at most 16 columns (a small batch's last
// block; Winograd's 16 tiles of a 14 x 14 map at batch 1) at half the multiplies.
// A is read at a[m * lda + k], or with PACKED at a[k * MR + m] (one sequential stream).
template <int MR, int NV, bool PACKED = false>
__attribute__((target("avx512f"))) void tile(int64_t kc, const float* a, int64_t lda, const float* b_panel,
                                             int64_t ldb, float* c, int64_t ldc, int nr, bool accumulate,
                                             bool last, const float* bias_rows, const float* scale_rows) {
  __m512 acc[MR][NV];
#pragma GCC unroll 14
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b_panel + k * ldb + 16 * v);
#pragma GCC unroll 14
    for (int m = 0; m < MR; ++m) {
      const __m512 av = _mm512_set1_ps(PACKED ? a[k * MR + m] : a[m * lda + k]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_fmadd_ps(av, bv[v], acc[m][v]);
    }
  }
  // Partial tiles: masks for the columns.
  __mmask16 mask[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) mask[v] = static_cast<__mmask16>(first_lanes(nr - 16 * v));
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int m = 0; m < MR; ++m) {
    float* row = c + m * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      __m512 r = acc[m][v];
      if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
      if (last) {
        const __m512 bias = bias_rows ? _mm512_set1_ps(bias_rows[m]) : zero;
        r = scale_rows ? _mm512_fmadd_ps(r, _mm512_set1_ps(scale_rows[m]), bias) : _mm512_add_ps(r, bias);
        // relu keeping NaN: zero where r < 0 (an ordered compare is false for NaN)
        r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(r, zero, _CMP_LT_OQ), zero);
      }
      _mm512_mask_storeu_ps(row + 16 * v, mask[v], r);
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool, bool, const float*,
                        const float*);
using Tiles = std::array<std::array<TileFn, kMR + 1>, 2>;  // [nr > 16][mr]

// tile<mr, NV, PACKED> for mr = 1 .. kMR, by NV - 1 (entry 0 unused).
template <bool PACKED, int... I>
constexpr Tiles tiles(std::integer_sequence<int, I...>) {
  return {{{nullptr, tile<I + 1, 1, PACKED>...}, {nullptr, tile<I + 1, 2, PACKED>...}}};
}
constexpr Tiles kTiles = tiles<false>(std::make_integer_sequence<int, kMR>{});
constexpr Tiles kPackedTiles = tiles<true>(std::make_integer_sequence<int, kMR>{});

}  // namespace

void micro_kernel_packed_a(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int mr,
                           int nr, bool accumulate, bool last, const float* bias_rows, const float* scale_rows) {
  kPackedTiles[nr > 16][mr](kc, a, 0, b, ldb, c, ldc, nr, accumulate, last, bias_rows, scale_rows);
}

void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int mr,
                  int nr, bool accumulate, bool last, const float* bias_rows, const float* scale_rows) {
  kTiles[nr > 16][mr](kc, a, lda, b, ldb, c, ldc, nr, accumulate, last, bias_rows, scale_rows);
}
#else
void micro_kernel(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, int, bool, bool,
                  const float*, const float*) {}
void micro_kernel_packed_a(int64_t, const float*, const float*, int64_t, float*, int64_t, int, int, bool, bool,
                           const float*, const float*) {}
#endif

}  // namespace sgemm
}  // namespace cpu
}  // namespace fastalex
