// Max-pooling building blocks shared by max_pool2d_cpu.cpp and the fused LRN + pooling ops
// (lrn_pool_cpu.cpp): the portable planar loop (any window) and the AVX-512 loops for the
// networks' 3x3/2 windows, torchvision GoogLeNet's 2x2/2 ones and the Inception modules' 3x3/1
// (padding 1) windows. NaN wins as in torch; padding acts as -inf.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {

// max that lets NaN win, like torch's pooling (`val > max || isnan(val)`).
template <typename T>
FA_ALWAYS_INLINE T nan_max(T a, T b) {
  return (b > a || std::isnan(b)) ? b : a;
}

template <typename scalar_t>
FA_ALWAYS_INLINE void pool_planar_range(const scalar_t* x, scalar_t* y, const PoolGeometry& g, int64_t begin,
                                        int64_t end) {
  const int64_t H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  {
    std::vector<scalar_t> colmax(W);
    for (int64_t p = begin; p < end; ++p) {
      const scalar_t* xp = x + p * H * W;
      scalar_t* yp = y + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = std::max<int64_t>(oh * g.stride_h - g.pad_h, 0);
        const int64_t h1 = std::min(oh * g.stride_h - g.pad_h + g.kernel_h, H);
        // h1 > h0 always: a window starts inside the input or its padding (<= k/2).
        std::copy(xp + h0 * W, xp + h0 * W + W, colmax.begin());
        for (int64_t h = h0 + 1; h < h1; ++h) {
          const scalar_t* row = xp + h * W;
          for (int64_t w = 0; w < W; ++w) colmax[w] = nan_max(colmax[w], row[w]);
        }
        scalar_t* yrow = yp + oh * OW;
        // Columns whose window lies inside the row: for the networks' 3-wide windows a
        // branch-free loop the compiler vectorizes across outputs; the rest clip the window.
        const int64_t sw = g.stride_w, pw = g.pad_w, kw = g.kernel_w;
        const int64_t in_lo = std::min(OW, (pw + sw - 1) / sw);
        const int64_t in_hi = std::max(in_lo, std::min(OW, W - kw + pw >= 0 ? (W - kw + pw) / sw + 1 : 0));
        auto clipped = [&](int64_t ow) {
          const int64_t w0 = std::max<int64_t>(ow * sw - pw, 0);
          const int64_t w1 = std::min(ow * sw - pw + kw, W);
          scalar_t m = colmax[w0];
          for (int64_t w = w0 + 1; w < w1; ++w) m = nan_max(m, colmax[w]);
          yrow[ow] = m;
        };
        for (int64_t ow = 0; ow < in_lo; ++ow) clipped(ow);
        if (kw == 3) {
          const scalar_t* c = colmax.data();
          for (int64_t ow = in_lo; ow < in_hi; ++ow) {
            const int64_t b = ow * sw - pw;  // >= 0 for interior columns
            yrow[ow] = nan_max(nan_max(c[b], c[b + 1]), c[b + 2]);
          }
        } else {
          for (int64_t ow = in_lo; ow < in_hi; ++ow) clipped(ow);
        }
        for (int64_t ow = in_hi; ow < OW; ++ow) clipped(ow);
      }
    }
  }
}

#if defined(__x86_64__)
// max(a, b, c) lanewise, NaN if any of them is NaN (maxps alone returns its second operand
// when either is NaN, so the unordered lanes are patched afterwards).
// kNaN false: the caller knows there is no NaN, and the patch (three of five operations) is left
// out; the result is the same.
template <bool kNaN = true>
__attribute__((target("avx512f"))) inline __m512 max3_nan(__m512 a, __m512 b, __m512 c) {
  const __m512 m = _mm512_max_ps(_mm512_max_ps(a, b), c);
  if (!kNaN) return m;
  const __mmask16 nan = _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(m, nan, _mm512_set1_ps(NAN));
}

// The three input rows of output row oh's windows; rows past the input (a window the ceil
// mode clips at the bottom) repeat the last one.
struct WindowRows {
  const float* r[3];
};
inline WindowRows window_rows(const float* xp, int64_t oh, int64_t H, int64_t W) {
  const int64_t rows = std::min<int64_t>(3, H - 2 * oh);
  const float* r0 = xp + 2 * oh * W;
  const float* r1 = rows > 1 ? r0 + W : r0;
  return WindowRows{{r0, r1, rows > 2 ? r0 + 2 * W : r1}};
}

// The vertical max of the window rows over columns w .. w+15; lanes outside mask m (columns
// past the row) read nothing and hold -inf.
template <bool kNaN>
__attribute__((target("avx512f"))) inline __m512 column_max3(const WindowRows& rows, int64_t w, __mmask16 m) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  return max3_nan<kNaN>(_mm512_mask_loadu_ps(ninf, m, rows.r[0] + w), _mm512_mask_loadu_ps(ninf, m, rows.r[1] + w),
                  _mm512_mask_loadu_ps(ninf, m, rows.r[2] + w));
}

// 3x3/2 pooling of planes at most 15 columns wide (13x13 and 14x14 maps in the networks), whose
// output rows (at most 7 outputs) would fill under half a vector: two output rows at a time,
// one input row per vector (-inf past the row), the pair's outputs picked from the two
// vertical maxima by permutes and stored with one masked store (the rows are adjacent).
template <bool kNaN>
__attribute__((target("avx512f"))) inline void pool_3x3s2_narrow(const float* x, float* y, const PoolGeometry& g,
                                                          int64_t begin, int64_t end) {
  const int64_t H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  // Lane l < OW: output (oh, l) from the first vector; lane OW + l: (oh + 1, l) from the second.
  alignas(64) int32_t ie[16], io[16], in[16];
  for (int l = 0; l < 16; ++l) {
    const int32_t base = l < OW ? 2 * l : 16 + 2 * (l - static_cast<int>(OW));
    const bool used = l < 2 * OW;
    ie[l] = used ? base : 0;
    io[l] = used ? base + 1 : 0;
    in[l] = used ? base + 2 : 0;  // <= 2 * OW <= 14 for the first row: inside its vector
  }
  const __m512i even = _mm512_load_si512(ie), odd = _mm512_load_si512(io), next = _mm512_load_si512(in);
  const __mmask16 m = static_cast<__mmask16>(first_lanes(W));
  for (int64_t p = begin; p < end; ++p) {
    const float* xp = x + p * H * W;
    float* yp = y + p * OH * OW;
    for (int64_t oh = 0; oh < OH; oh += 2) {
      const __m512 va = column_max3<kNaN>(window_rows(xp, oh, H, W), 0, m);
      const __m512 vb = oh + 1 < OH ? column_max3<kNaN>(window_rows(xp, oh + 1, H, W), 0, m) : va;
      const __m512 out = max3_nan<kNaN>(_mm512_permutex2var_ps(va, even, vb), _mm512_permutex2var_ps(va, odd, vb),
                                  _mm512_permutex2var_ps(va, next, vb));
      const int64_t n = (oh + 1 < OH ? 2 : 1) * OW;
      _mm512_mask_storeu_ps(yp + oh * OW, static_cast<__mmask16>(first_lanes(n)), out);
    }
  }
}

// The networks' pooling (3x3, stride 2, no padding; floor or ceil mode), float32 planes
// [begin, end) on AVX-512, 16 outputs of a row per step, all in registers: the vertical max of
// the window's three rows over input columns 2*o0 .. 2*o0 + 32 (two vectors and one more
// column), then the even, odd and next-even columns picked out by permutes. Columns past the
// row read as -inf and rows past the input repeat the last one, which is what the windows
// the ceil mode clips need.
template <bool kNaN>
__attribute__((target("avx512f"))) inline void pool_3x3s2_wide(const float* x, float* y, const PoolGeometry& g,
                                                          int64_t begin, int64_t end) {
  const int64_t H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  // Columns 2, 4, ..., 30 and (lane 15, patched below) column 32.
  const __m512i next = _mm512_set_epi32(0, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2);
  auto cols = [W](int64_t w, int64_t n) {  // columns w .. w+n-1 that lie in the row
    return static_cast<__mmask16>(first_lanes(std::min<int64_t>(n, W - w)));
  };
  for (int64_t p = begin; p < end; ++p) {
    const float* xp = x + p * H * W;
    float* yp = y + p * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const WindowRows rows = window_rows(xp, oh, H, W);
      for (int64_t o0 = 0; o0 < OW; o0 += 16) {
        const int64_t w = 2 * o0;
        // Rows two output rows ahead, into L1 (hardware prefetch alone left the three row
        // streams waiting on memory). A prefetch never faults, so past the plane's end is fine.
        for (int64_t q = 5; q <= 6; ++q) {
          _mm_prefetch(reinterpret_cast<const char*>(rows.r[0] + q * W + w), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(rows.r[0] + q * W + w + 16), _MM_HINT_T0);
        }
        const __m512 va = column_max3<kNaN>(rows, w, cols(w, 16)), vb = column_max3<kNaN>(rows, w + 16, cols(w + 16, 16));
        const __m512 vc = column_max3<kNaN>(rows, w + 32, cols(w + 32, 1));
        const __m512 e1 = _mm512_mask_broadcastss_ps(_mm512_permutex2var_ps(va, next, vb), __mmask16(0x8000),
                                                     _mm512_castps512_ps128(vc));
        const __m512 out = max3_nan<kNaN>(_mm512_permutex2var_ps(va, even, vb), _mm512_permutex2var_ps(va, odd, vb), e1);
        const int64_t n = std::min<int64_t>(16, OW - o0);
        _mm512_mask_storeu_ps(yp + oh * OW + o0, static_cast<__mmask16>(first_lanes(n)), out);
      }
    }
  }
}

// Planes [begin, end) of g through the 3x3/2 loops (pool_3x3s2_fast(g) must hold); may_have_nan
// false: the caller knows the planes hold no NaN.
inline void pool_3x3s2_planes(const float* x, float* y, const PoolGeometry& g, int64_t begin, int64_t end,
                              bool may_have_nan = true) {
  // Rows of at most 7 outputs fill under half a vector: two output rows per vector.
  if (g.in_w <= 15) {
    may_have_nan ? pool_3x3s2_narrow<true>(x, y, g, begin, end) : pool_3x3s2_narrow<false>(x, y, g, begin, end);
  } else {
    may_have_nan ? pool_3x3s2_wide<true>(x, y, g, begin, end) : pool_3x3s2_wide<false>(x, y, g, begin, end);
  }
}

// max(a, b) lanewise, NaN if either is NaN (maxps alone returns b then).
__attribute__((target("avx512f"))) inline __m512 max2_nan(__m512 a, __m512 b) {
  return _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q), _mm512_set1_ps(NAN));
}

// torchvision GoogLeNet's last pool (2x2, stride 2, no padding; floor or ceil mode), float32
// planes [begin, end) on AVX-512, 16 outputs of a row per step: the vertical max of the
// window's two rows over input columns 2*o0 .. 2*o0 + 31, then the even and odd columns
// picked out by permutes. Columns past the row read as -inf and a row past the input repeats
// the last one: the windows the ceil mode clips.
__attribute__((target("avx512f"))) inline void pool_2x2s2_planes(const float* x, float* y, const PoolGeometry& g,
                                                               int64_t begin, int64_t end) {
  const int64_t H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  auto cols = [W](int64_t w) { return static_cast<__mmask16>(first_lanes(std::min<int64_t>(16, W - w))); };
  for (int64_t p = begin; p < end; ++p) {
    const float* xp = x + p * H * W;
    float* yp = y + p * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const float* r0 = xp + 2 * oh * W;
      const float* r1 = 2 * oh + 1 < H ? r0 + W : r0;
      for (int64_t o0 = 0; o0 < OW; o0 += 16) {
        const int64_t w = 2 * o0;
        const __mmask16 ma = cols(w), mb = cols(w + 16);
        const __m512 va = max2_nan(_mm512_mask_loadu_ps(ninf, ma, r0 + w), _mm512_mask_loadu_ps(ninf, ma, r1 + w));
        const __m512 vb = max2_nan(_mm512_mask_loadu_ps(ninf, mb, r0 + w + 16), _mm512_mask_loadu_ps(ninf, mb, r1 + w + 16));
        const __m512 out = max2_nan(_mm512_permutex2var_ps(va, even, vb), _mm512_permutex2var_ps(va, odd, vb));
        _mm512_mask_storeu_ps(yp + oh * OW + o0, static_cast<__mmask16>(first_lanes(std::min<int64_t>(16, OW - o0))),
                              out);
      }
    }
  }
}

// max(r[l - 1], r[l], r[l + 1]) for lanes l: each of the three loads reads only its mask's lanes
// (so r - 1 may lie before the plane) and holds -inf elsewhere.
template <bool kNaN>
__attribute__((target("avx512f"))) inline __m512 row_max3(const float* r, __mmask16 ml, __mmask16 mc, __mmask16 mr) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  return max3_nan<kNaN>(_mm512_mask_loadu_ps(ninf, ml, r - 1), _mm512_mask_loadu_ps(ninf, mc, r),
                        _mm512_mask_loadu_ps(ninf, mr, r + 1));
}

// The Inception modules' pool branch (3x3, stride 1, padding 1: the output is the input's
// size), float32 planes [begin, end) on AVX-512. Separable: a column strip of 16 outputs walks
// down the plane, the horizontal max of each input row (columns w-1, w, w+1 by three masked
// loads; columns outside the row read as -inf, which is the padding) computed once and kept in
// registers for the three output rows it serves.
template <bool kNaN>
__attribute__((target("avx512f"))) inline void pool_3x3s1_strips(const float* x, float* y, const PoolGeometry& g,
                                                            int64_t begin, int64_t end) {
  const int64_t H = g.in_h, W = g.in_w;
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t p = begin; p < end; ++p) {
    for (int64_t w0 = 0; w0 < W; w0 += 16) {
      // Lane l of the load shifted by s reads column w0 + s + l: inside the row for l in [lo, hi).
      auto lanes = [&](int64_t s) {
        const int64_t lo = -(w0 + s), hi = W - (w0 + s);
        return static_cast<__mmask16>(first_lanes(std::min<int64_t>(hi, 16)) & ~first_lanes(lo));
      };
      const __mmask16 ml = lanes(-1), mc = lanes(0), mr = lanes(1);
      const float* xp = x + p * H * W + w0;
      float* yp = y + p * H * W + w0;
      __m512 above = ninf, here = row_max3<kNaN>(xp, ml, mc, mr);
      for (int64_t h = 0; h < H; ++h) {
        const __m512 below = h + 1 < H ? row_max3<kNaN>(xp + (h + 1) * W, ml, mc, mr) : ninf;
        _mm512_mask_storeu_ps(yp + h * W, mc, max3_nan<kNaN>(above, here, below));
        above = here;
        here = below;
      }
    }
  }
}
#endif

// Whether the AVX-512 loops are on and g's window is k x k at stride `stride` with padding `pad`
// and no dilation: what each loop below is written for.
inline bool square_window_fast(const PoolGeometry& g, int64_t k, int64_t stride, int64_t pad) {
#if defined(__x86_64__)
  return use_avx512_path() && g.kernel_h == k && g.kernel_w == k && g.stride_h == stride && g.stride_w == stride &&
         g.pad_h == pad && g.pad_w == pad && g.dilation_h == 1 && g.dilation_w == 1;
#else
  return false;
#endif
}

// Whether pool_3x3s2_wide / pool_3x3s2_narrow handle geometry g (float32 on AVX-512).
inline bool pool_3x3s2_fast(const PoolGeometry& g) { return square_window_fast(g, 3, 2, 0); }

// Whether pool_2x2s2_planes handles geometry g (float32 on AVX-512).
inline bool pool_2x2s2_fast(const PoolGeometry& g) { return square_window_fast(g, 2, 2, 0); }

// Whether pool_3x3s1_strips handles geometry g (float32 on AVX-512): the output the input's size.
inline bool pool_3x3s1_fast(const PoolGeometry& g) {
  return square_window_fast(g, 3, 1, 1) && g.out_h == g.in_h && g.out_w == g.in_w;
}

}  // namespace cpu
}  // namespace fastalex
