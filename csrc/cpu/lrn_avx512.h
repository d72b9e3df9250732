// Cross-channel LRN in float32 on AVX-512, for windows up to kRingMax channels and beta 0.75 or
// 0.5 (the networks' LRNs), over a band of `len` pixels: the channels one after another, 16
// pixels per vector. Shared by the plain LRN (local_response_norm_cpu.cpp) and the fused LRN +
// pooling ops (lrn_pool_cpu.cpp), which differ only in where a channel's values come from and
// where its results go (the hooks of lrn_band_avx512).
//
// The window sum is the direct sum of a ring of the window's squares (each square computed once,
// when its channel enters; no running subtraction, so nothing drifts, and a NaN or inf square
// reaches d as in torch's sum), and d^-beta comes from reciprocal square root estimates refined
// by one Newton step: no division, square root or pow. The lanes whose d lies outside the range
// where those forms are accurate (zero, negative, subnormal, huge, inf, NaN) are recomputed as
// torch computes them, which is rare, so the vector loop only tests for them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <new>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/lrn_kernels.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {

constexpr int64_t kRingMax = 16;
constexpr int64_t kPrefetchAhead = 3;

inline bool lrn_fast_path(int64_t size, double beta) {
  return use_avx512_path() && size >= 1 && size <= kRingMax && (beta == 0.75 || beta == 0.5);
}

// A 64-byte aligned float buffer (ring slots, scratch rows), uninitialised.
class AlignedFloats {
 public:
  explicit AlignedFloats(int64_t n)
      : p_(n > 0 ? static_cast<float*>(::operator new[](static_cast<size_t>(n) * sizeof(float), std::align_val_t(64)))
                 : nullptr) {}
  ~AlignedFloats() {
    if (p_) ::operator delete[](p_, std::align_val_t(64));
  }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* get() const { return p_; }

 private:
  float* p_;
};

// n rounded up to whole vectors: the length of ring slots and scratch rows, so the vector loop
// may store full vectors past a band's last pixel.
inline int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }

// The scratch lrn_band_avx512 takes: the window's squares (size slots) and a row of d.
inline int64_t lrn_ring_floats(int64_t size, int64_t ring_stride) { return (size + 1) * ring_stride; }

#if defined(__x86_64__)
// The range of d where the forms below are accurate: for d^-1/2, the Newton step's 0.5 * d stays
// normal; for d^-3/4, d^3 (in its Newton step) neither overflows nor goes subnormal.
template <bool kThreeQuarters>
struct FastRange {
  static constexpr float lo = kThreeQuarters ? 0x1p-40f : 0x1p-125f;
  static constexpr float hi = kThreeQuarters ? 0x1p40f : 0x1p100f;
};

// 1/sqrt(d) to ~1 ulp: the 14-bit estimate and one Newton step, r * (1.5 - 0.5 * d * r^2).
__attribute__((target("avx512f"))) inline __m512 rsqrt_nr(__m512 d) {
  const __m512 r = _mm512_rsqrt14_ps(d);
  const __m512 hd = _mm512_mul_ps(_mm512_set1_ps(0.5f), d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(_mm512_mul_ps(hd, r), r, _mm512_set1_ps(1.5f)));
}

// The window's squares at pixels i.., summed as a tree: the loop is bound by how many vectors'
// dependency chains the out-of-order core holds at once, so every step off the chain counts.
template <typename Int>
__attribute__((target("avx512f"), always_inline)) inline __m512 ring_sum(const float* ring, int64_t ring_stride,
                                                                       Int size, int64_t i) {
  __m512 part[4];
  const int64_t n = std::min<int64_t>(size, 4);
  for (int64_t j = 0; j < n; ++j) part[j] = _mm512_load_ps(ring + j * ring_stride + i);
  for (int64_t j = 4; j < size; ++j) part[j & 3] = _mm512_add_ps(part[j & 3], _mm512_load_ps(ring + j * ring_stride + i));
  if (n == 1) return part[0];
  if (n == 2) return _mm512_add_ps(part[0], part[1]);
  if (n == 3) return _mm512_add_ps(_mm512_add_ps(part[0], part[1]), part[2]);
  return _mm512_add_ps(_mm512_add_ps(part[0], part[1]), _mm512_add_ps(part[2], part[3]));
}

// d^-3/4 to ~2 ulp: f0 = (d^2 * rsqrt14(d))^-1/2 estimates it to ~1.5 * 2^-14 (two 14-bit
// estimates), and one Newton step for the inverse fourth root of d^3, f0 * (1 + (1 - d^3 f0^4) / 4),
// squares that error away (2.5 e^2 ~ 2e-8). Ten operations, two of them estimates; the square
// root of a Newton-refined square root took twelve.
// x * d^-3/4 (x times f0 off the chain of the Newton step's correction).
__attribute__((target("avx512f"))) inline __m512 x_inv_pow_three_quarters(__m512 x, __m512 d) {
  const __m512 dd = _mm512_mul_ps(d, d);
  const __m512 f0 = _mm512_rsqrt14_ps(_mm512_mul_ps(dd, _mm512_rsqrt14_ps(d)));
  const __m512 f2 = _mm512_mul_ps(f0, f0);
  const __m512 p = _mm512_mul_ps(_mm512_mul_ps(dd, f2), _mm512_mul_ps(d, f2));
  return _mm512_mul_ps(_mm512_mul_ps(x, f0), _mm512_fnmadd_ps(p, _mm512_set1_ps(0.25f), _mm512_set1_ps(1.25f)));
}

// The lanes of m whose d is outside [lo, hi] (NaN included). With kDAboveMin, d >= k >= lo is
// known and only the upper end is tested (an unordered compare: NaN fails it too).
template <bool kDAboveMin>
__attribute__((target("avx512f"))) inline __mmask16 out_of_range(__m512 d, __mmask16 m, __m512 lo, __m512 hi) {
  const __mmask16 above = _mm512_mask_cmp_ps_mask(m, d, hi, _CMP_NLE_UQ);
  return kDAboveMin ? above : static_cast<__mmask16>(above | _mm512_mask_cmp_ps_mask(m, d, lo, _CMP_LT_OQ));
}

// The lanes of `lanes` (pixels i.. of channel c) recomputed as torch does; values(j) is channel
// j's row of the band (every channel of c's window still readable).
template <class Values>
__attribute__((noinline)) void lrn_lanes_as_torch(Values values, float* yc, int64_t C, int64_t c, int64_t i,
                                                  int64_t size, double alpha, double beta, double k,
                                                  __mmask16 lanes) {
  for (int l = 0; l < 16; ++l) {
    if (lanes & (1u << l)) {
      yc[i + l] = lrn_as_torch<float>([&](int64_t j) { return values(j)[i + l]; }, C, c, size, alpha, beta, k);
    }
  }
}

// A channel in two passes over its row, each a shorter dependency chain per vector: the loop is
// bound by how many vectors' chains the out-of-order core holds at once (one pass doing both
// ran at 15.5 cycles per vector here, the two at 13.3, for ~23 vector operations).
// Pass one, pixels i.. (lanes m): xe's squares (zeros without xe: a channel past the last) into
// the entering slot, the window's sum, d into dbuf. Returns the lanes whose d is out of the
// forms' range. (The ring's slots and dbuf are aligned and padded to whole vectors.)
template <bool kDAboveMin>
__attribute__((target("avx512f"), always_inline)) inline __mmask16 lrn_denominator(
    const float* xe, const float* ahead, float* slot, const float* ring,
    int64_t ring_stride, int64_t size, int64_t i, __mmask16 m, __m512 sv, __m512 kv, __m512 lo, __m512 hi, float* dbuf) {
  if (ahead) _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
  __m512 sq = _mm512_setzero_ps();
  if (xe) {
    const __m512 v = _mm512_maskz_loadu_ps(m, xe + i);
    sq = _mm512_mul_ps(v, v);
  }
  _mm512_store_ps(slot + i, sq);
  const __m512 d = _mm512_fmadd_ps(sv, ring_sum(ring, ring_stride, size, i), kv);
  _mm512_store_ps(dbuf + i, d);
  return out_of_range<kDAboveMin>(d, m, lo, hi);
}
// Pass two: yc = xc * d^-beta.
template <bool kThreeQuarters>
__attribute__((target("avx512f"), always_inline)) inline void lrn_result(const float* xc, float* yc, const float* dbuf,
                                                                       int64_t i, __mmask16 m) {
  const __m512 d = _mm512_load_ps(dbuf + i);
  const __m512 x = _mm512_maskz_loadu_ps(m, xc + i);
  _mm512_mask_storeu_ps(yc + i, m, kThreeQuarters ? x_inv_pow_three_quarters(x, d) : _mm512_mul_ps(x, rsqrt_nr(d)));
}

// The band, channel by channel. Hooks (called in channel order):
//   enter(e) -> const float*: channel e's `len` values, called once as e enters the window
//     (e = c + post); they are squared into the ring;
//   prefetch(e) -> const float*: channel e's values to prefetch (nullptr: none), called before
//     enter(e) while channel e - kPrefetchAhead enters;
//   values(c) -> const float*: channel c's values again (and, for the rare lanes recomputed as
//     torch does, those of every channel of c's window: what enter returned must stay readable
//     for `size` channels);
//   dest(c) -> float*: where channel c's `len` results go;
//   done(c, may_have_nan): dest(c) holds channel c's final results; may_have_nan false: none of
//     them is NaN (a NaN result needs a NaN or inf input in the window, hence d out of range).
// ring: 64-byte aligned, lrn_ring_floats(size, ring_stride) floats, ring_stride >= round_up16(len)
// and a multiple of 16. kSize: the window size when known
// at compile time (0: `size`).
template <bool kDAboveMin, bool kThreeQuarters, int kSize, class Enter, class Prefetch, class Values, class Dest,
          class Done>
__attribute__((target("avx512f"))) void lrn_band_avx512_t(int64_t C, int64_t len, int64_t size_arg, double alpha,
                                                          double beta, double k, float* ring, int64_t ring_stride,
                                                          Enter enter, Prefetch prefetch, Values values, Dest dest,
                                                          Done done) {
  const int64_t size = kSize ? kSize : size_arg;
  const int64_t post = (size - 1) / 2;
  const __m512 kv = _mm512_set1_ps(static_cast<float>(k));
  const __m512 sv = _mm512_set1_ps(static_cast<float>(alpha / static_cast<double>(size)));
  const __m512 lo = _mm512_set1_ps(FastRange<kThreeQuarters>::lo), hi = _mm512_set1_ps(FastRange<kThreeQuarters>::hi);
  const int64_t padded = round_up16(len);
  for (int64_t j = 0; j < size; ++j) std::fill(ring + j * ring_stride, ring + j * ring_stride + padded, 0.f);
  for (int64_t e = 0; e < std::min(post, C); ++e) {
    const float* xe = enter(e);
    float* slot = ring + (e % size) * ring_stride;
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i));
      const __m512 v = _mm512_maskz_loadu_ps(m, xe + i);
      _mm512_store_ps(slot + i, _mm512_mul_ps(v, v));
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    // The slot of channel c - pre - 1 (leaving) is the slot of c + post (entering).
    const int64_t e = c + post;
    const float* xe = e < C ? enter(e) : nullptr;
    // The row entering kPrefetchAhead channels on, into L1 as this one goes (a band's rows are
    // a few KiB, a plane apart: too short a stream for the hardware prefetcher alone).
    const float* ahead = e + kPrefetchAhead < C ? prefetch(e + kPrefetchAhead) : nullptr;
    float* slot = ring + (e % size) * ring_stride;
    const float* xc = values(c);
    float* yc = dest(c);
    float* dbuf = ring + size * ring_stride;
    __mmask16 any_out = 0;
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
      any_out |= lrn_denominator<kDAboveMin>(xe, ahead, slot, ring, ring_stride, size, i,
                                             static_cast<__mmask16>(0xFFFF), sv, kv, lo, hi, dbuf);
    }
    if (i < len) {
      any_out |= lrn_denominator<kDAboveMin>(xe, ahead, slot, ring, ring_stride, size, i,
                                             static_cast<__mmask16>(first_lanes(len - i)), sv, kv, lo, hi, dbuf);
    }
    for (i = 0; i + 16 <= len; i += 16) lrn_result<kThreeQuarters>(xc, yc, dbuf, i, static_cast<__mmask16>(0xFFFF));
    if (i < len) lrn_result<kThreeQuarters>(xc, yc, dbuf, i, static_cast<__mmask16>(first_lanes(len - i)));
    // Rare: such lanes in this channel. Found again and recomputed after the row, so the loop
    // above holds no call (which would cost it its vector registers).
    if (any_out) {
      for (int64_t i0 = 0; i0 < len; i0 += 16) {
        const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i0));
        const __mmask16 out = out_of_range<kDAboveMin>(_mm512_load_ps(dbuf + i0), m, lo, hi);
        if (out) lrn_lanes_as_torch(values, yc, C, c, i0, size, alpha, beta, k, out);
      }
    }
    done(c, any_out != 0);
  }
}

// lrn_band_avx512_t for the run-time arguments (lrn_fast_path(size, beta) must hold).
template <class Enter, class Prefetch, class Values, class Dest, class Done>
void lrn_band_avx512(int64_t C, int64_t len, int64_t size, double alpha, double beta, double k, float* ring,
                     int64_t ring_stride, Enter enter, Prefetch prefetch, Values values, Dest dest, Done done) {
  // k at or above the range and alpha >= 0 (the usual case): d >= k, only its upper end needs
  // testing.
  const bool tq = beta == 0.75;
  const bool above = k >= (tq ? FastRange<true>::lo : FastRange<false>::lo) && alpha >= 0;
#define FA_LRN_BAND(A, B, S) \
  lrn_band_avx512_t<A, B, S>(C, len, size, alpha, beta, k, ring, ring_stride, enter, prefetch, values, dest, done)
  if (size == 5) {  // both networks' window: the ring sum unrolled
    if (above) {
      tq ? FA_LRN_BAND(true, true, 5) : FA_LRN_BAND(true, false, 5);
    } else {
      tq ? FA_LRN_BAND(false, true, 5) : FA_LRN_BAND(false, false, 5);
    }
  } else if (above) {
    tq ? FA_LRN_BAND(true, true, 0) : FA_LRN_BAND(true, false, 0);
  } else {
    tq ? FA_LRN_BAND(false, true, 0) : FA_LRN_BAND(false, false, 0);
  }
#undef FA_LRN_BAND
}
#endif

}  // namespace cpu
}  // namespace fastalex
