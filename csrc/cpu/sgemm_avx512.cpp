#include "cpu/sgemm_avx512.h"

#include "cpu/multiversion.h"

#include <algorithm>
#include <cstring>

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

// One C tile of MR rows: 2 * MR accumulators + 2 B vectors in the 32 vector registers.
template <int MR>
__attribute__((target("avx512f"))) void tile(int64_t kc, const float* a, int64_t lda, const float* b_panel,
                                             int64_t ldb, float* c, int64_t ldc, int nr, bool accumulate,
                                             bool last, const float* bias_rows) {
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int m = 0; m < MR; ++m) {
    acc[m][0] = _mm512_setzero_ps();
    acc[m][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b_panel + k * ldb);
    const __m512 b1 = _mm512_loadu_ps(b_panel + k * ldb + 16);
#pragma GCC unroll 14
    for (int m = 0; m < MR; ++m) {
      const __m512 av = _mm512_set1_ps(a[m * lda + k]);
      acc[m][0] = _mm512_fmadd_ps(av, b0, acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(av, b1, acc[m][1]);
    }
  }
  // Partial tiles: masks for the columns.
  const __mmask16 m0 = static_cast<__mmask16>(first_lanes(nr)), m1 = static_cast<__mmask16>(first_lanes(nr - 16));
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int m = 0; m < MR; ++m) {
    float* row = c + m * ldc;
    __m512 v0 = acc[m][0], v1 = acc[m][1];
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    if (last) {
      if (bias_rows) {
        const __m512 bv = _mm512_set1_ps(bias_rows[m]);
        v0 = _mm512_add_ps(v0, bv);
        v1 = _mm512_add_ps(v1, bv);
      }
      // relu keeping NaN: zero where v < 0 (an ordered compare is false for NaN)
      v0 = _mm512_mask_mov_ps(v0, _mm512_cmp_ps_mask(v0, zero, _CMP_LT_OQ), zero);
      v1 = _mm512_mask_mov_ps(v1, _mm512_cmp_ps_mask(v1, zero, _CMP_LT_OQ), zero);
    }
    _mm512_mask_storeu_ps(row, m0, v0);
    _mm512_mask_storeu_ps(row + 16, m1, v1);
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool, bool, const float*);
constexpr TileFn kTiles[kMR + 1] = {nullptr,  tile<1>,  tile<2>,  tile<3>,  tile<4>,  tile<5>,  tile<6>, tile<7>,
                                    tile<8>,  tile<9>,  tile<10>, tile<11>, tile<12>, tile<13>, tile<14>};

}  // namespace

void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int mr,
                  int nr, bool accumulate, bool last, const float* bias_rows) {
  kTiles[mr](kc, a, lda, b, ldb, c, ldc, nr, accumulate, last, bias_rows);
}
#else
void micro_kernel(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, int, bool, bool,
                  const float*) {}
#endif

}  // namespace sgemm
}  // namespace cpu
}  // namespace fastalex
