// Cross-channel LRN on the CPU: y = x * (k + alpha/size * sum_{window} x^2)^-beta.
// One pass: each element of x is read once from memory and y written once; the channel
// window is a running sum (add the square entering, subtract the one leaving), so the
// cost per pixel is O(C) whatever the window size. float32 on AVX-512 with the networks'
// window and beta takes lrn_block_avx512 instead (a ring of squares, no division or sqrt).
// Non-finite inputs give what torch's formula gives in the input's dtype: a NaN square in the
// window makes d NaN, an infinite one (or a window sum that overflows) makes d = +inf, and once
// such a value has left the window the later channels are as if it had never been there.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

// d^-beta, with root-based forms for the betas the networks use (pow is ~10x slower and
// blocks vectorization). Mode 1: beta 0.75, 2: 0.5, 3: 1, 0: any other (pow).
inline int inv_pow_mode(double beta) { return beta == 0.75 ? 1 : beta == 0.5 ? 2 : beta == 1.0 ? 3 : 0; }

template <int kMode, typename T>
FA_ALWAYS_INLINE T inv_pow(T d, double beta) {
  if constexpr (kMode == 1) {
    const T r = T(1) / std::sqrt(d);
    return r * std::sqrt(r);
  } else if constexpr (kMode == 2) {
    return T(1) / std::sqrt(d);
  } else if constexpr (kMode == 3) {
    return T(1) / d;
  } else {
    // For float, beta rounded to float puts a relative error of up to 2^-25 beta |ln d| on
    // d^-beta (1e-6 at beta 0.6 only beyond d = 1e+-30); pow in double measured 2x slower
    // here. Subnormal d goes to lrn_element_as_torch, which raises d to beta in double.
    return std::pow(d, -static_cast<T>(beta));
  }
}

// One output element as torch computes it, in T: the window's squares summed directly in
// channel order, d = sum / size * alpha + k, y = x / pow(d, beta) (torch's pow(d, 0.5) is
// sqrt(d)). For the rare elements whose d the fast forms do not cover: zero, subnormal or
// negative d, on the AVX-512 path also NaN, infinite or huge d, and the lanes whose running sum
// is rebuilt. xb points at the element's pixel in channel 0, channel planes `stride` apart.
template <typename T>
__attribute__((noinline)) T lrn_element_as_torch(const T* xb, int64_t C, int64_t stride, int64_t c, int64_t size,
                                                 double alpha, double beta, double k) {
  T sum = 0;
  for (int64_t j = std::max<int64_t>(c - size / 2, 0); j <= std::min(c + (size - 1) / 2, C - 1); ++j) {
    sum += xb[j * stride] * xb[j * stride];
  }
  const T d = sum / static_cast<T>(size) * static_cast<T>(alpha) + static_cast<T>(k);
  return xb[c * stride] / (beta == 0.5 ? std::sqrt(d) : static_cast<T>(std::pow(static_cast<double>(d), beta)));
}

// The running window sum is compensated (Knuth's two-sum, in the input's own precision, 16
// float lanes per AVX-512 vector): adding the square entering and subtracting the one leaving
// -- the same rounded value that was added -- leaves no rounding drift behind. What error
// remains is of the order of eps^2 times the largest sum the lane has held: below the rounding
// of the result unless the window's squares are ~eps^2 times smaller than ones that passed
// through, which shows only when k is about as small as they are.
template <typename T>
FA_ALWAYS_INLINE void window_add(T& s, T& c, T v) {
  const T t = s + v, bp = t - s;
  c += (s - (t - bp)) + (v - bp);
  s = t;
}

// Non-finite squares stay out of the running sum (inf - inf would leave NaN behind): each lane
// counts the NaN and the infinite squares in its window instead, and sums the finite ones. A
// non-finite square adds exactly 0 to the sum, so once it has left, the sum is bit for bit the
// one it would have been without it. Counts are integers as wide as T (one vector lane each).
template <typename T>
using lane_count_t = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;

// sign +1: the square v enters the window; -1: it leaves.
template <typename T>
FA_ALWAYS_INLINE void window_move(T& s, T& c, lane_count_t<T>& nans, lane_count_t<T>& infs, T v, int sign) {
  const bool finite = v < std::numeric_limits<T>::infinity();  // a square is >= 0, +inf or NaN
  window_add(s, c, finite ? T(sign) * v : T(0));
  nans += v != v ? sign : 0;
  infs += v == std::numeric_limits<T>::infinity() ? sign : 0;
}

// NC(S) layout: channel planes of S contiguous pixels. A task owns a block of pixels of one
// sample and slides the window down the channels, vectorized across the block.
constexpr int64_t kLrnBlock = 512;

// d from a lane's window: NaN with a NaN square in it, k + scale * inf with an infinite one.
template <typename T, typename I>
FA_ALWAYS_INLINE T window_denominator(T k, T scale, T finite_sum, I nans, I infs) {
  const T w = nans ? std::numeric_limits<T>::quiet_NaN() : infs ? std::numeric_limits<T>::infinity() : finite_sum;
  return k + scale * w;
}

// A block's lanes. The running sums are double-buffered (a channel reads one pair and writes
// the other), so a channel's step can be redone from the state before it.
template <typename T>
struct LrnLanes {
  alignas(64) T sum[2][kLrnBlock];
  alignas(64) T comp[2][kLrnBlock];
  alignas(64) T d[kLrnBlock];
  alignas(64) lane_count_t<T> nans[kLrnBlock];
  alignas(64) lane_count_t<T> infs[kLrnBlock];
};

// A lane's running sum must be rebuilt: it is inf or NaN, or its residue may show in y (a NaN
// or infinite d, from a non-finite square in the window, never asks for it).
template <typename T>
FA_ALWAYS_INLINE bool needs_rebuild(T tot, T comp, T d, T residue_scale) {
  return !(tot <= std::numeric_limits<T>::max()) || residue_scale * std::fabs(comp) > std::fabs(d);
}

// The residue of a running sum is of the order of eps^2 times the largest sum the lane has held,
// held in the compensation term, whose own rounding error is of the order of eps times its
// size. It cannot show in y while scale * |comp| stays below d / kResidueRatio; a lane whose
// compensation grows past that (k ~ 0 and the window far smaller than squares that passed
// through, or all zeros after them) is rebuilt by a direct sum.
constexpr double kResidueRatio = 1024;

// One channel of a block: the squares of row xe enter the window, those of row xl leave it, and
// yc = xc * d^-beta. Counted: non-finite squares go to the lanes' counts (see window_move);
// otherwise every square so far has been finite and they are added as they are. Returns whether
// some lane needs rebuilding: its sum came out inf or NaN (a non-finite square entered,
// uncounted, or the finite squares' sum overflowed), or its residue may show (see
// kResidueRatio; residue_scale is scale * kResidueRatio).
// (No two of the arrays overlap -- xe and xl may both be the zero row, which is only read --
// and saying so lets the loop vectorize: it has more streams than the compiler checks for
// overlap at run time.)
template <int kMode, bool kCounted, typename T>
FA_ALWAYS_INLINE bool lrn_channel_step(const T* __restrict xe, const T* __restrict xl, const T* __restrict xc,
                                       T* __restrict yc, int64_t len, T kk, T scale, T residue_scale, double beta,
                                       const T* __restrict s_in, const T* __restrict c_in, T* __restrict s_out,
                                       T* __restrict c_out, lane_count_t<T>* __restrict nans,
                                       lane_count_t<T>* __restrict infs, T* __restrict d) {
  using I = lane_count_t<T>;
  I bad = 0;
  for (int64_t i = 0; i < len; ++i) {
    T s = s_in[i], cs = c_in[i];
    I nn = 0, ni = 0;
    if constexpr (kCounted) {
      nn = nans[i];
      ni = infs[i];
      window_move(s, cs, nn, ni, xe[i] * xe[i], 1);
      window_move(s, cs, nn, ni, xl[i] * xl[i], -1);
      nans[i] = nn;
      infs[i] = ni;
    } else {
      window_add(s, cs, xe[i] * xe[i]);
      window_add(s, cs, -(xl[i] * xl[i]));
    }
    s_out[i] = s;
    c_out[i] = cs;
    const T tot = s + cs;
    // Rounding can leave the running sum slightly below zero; a sum of squares is not.
    d[i] = window_denominator(kk, scale, std::max(tot, T(0)), nn, ni);
    bad |= needs_rebuild(tot, cs, d[i], residue_scale) ? 1 : 0;
    if constexpr (kMode != 0) yc[i] = xc[i] * inv_pow<kMode>(d[i], beta);
  }
  if constexpr (kMode == 0) {  // pow does not vectorize: a loop of its own
    for (int64_t i = 0; i < len; ++i) yc[i] = xc[i] * inv_pow<kMode>(d[i], beta);
  }
  return bad != 0;
}

// The lanes that need_rebuild: their sum of finite squares rebuilt by a direct (compensated)
// sum over channel c's window, and their y computed as torch does. While the sum overflows
// (torch's sum in the same dtype does too: d = inf), the state stays non-finite, so the next
// channel rebuilds again.
template <typename T>
__attribute__((noinline)) void rebuild_lanes(const T* xb, T* yb, int64_t C, int64_t S, int64_t c, int64_t len,
                                             int64_t size, double alpha, double beta, double k, T residue_scale,
                                             T* sum, T* comp, T* d) {
  for (int64_t i = 0; i < len; ++i) {
    if (!needs_rebuild(sum[i] + comp[i], comp[i], d[i], residue_scale)) continue;
    T s = 0, cc = 0;
    for (int64_t j = std::max<int64_t>(c - size / 2, 0); j <= std::min(c + (size - 1) / 2, C - 1); ++j) {
      const T v = xb[j * S + i] * xb[j * S + i];
      if (v < std::numeric_limits<T>::infinity()) window_add(s, cc, v);
    }
    sum[i] = s;
    comp[i] = cc;
    d[i] = std::numeric_limits<T>::infinity();  // not below the smallest normal number: y is final
    yb[c * S + i] = lrn_element_as_torch(xb + i, C, S, c, size, alpha, beta, k);
  }
}

template <typename T>
__attribute__((noinline)) bool any_nonfinite_sum(const T* sum, const T* comp, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    if (!(sum[i] + comp[i] <= std::numeric_limits<T>::max())) return true;
  }
  return false;
}

// One block of `len` pixels (channel planes S apart). A block starts uncounted (the plain
// compensated sum: the common case costs two tests per element more than that) and switches to
// counting, for good, at the first channel whose step leaves a sum inf or NaN; that channel's
// step is redone counted from the state before it, so the counted sums are exactly the
// uncounted ones with the non-finite squares left out.
template <int kMode, typename T>
FA_ALWAYS_INLINE void lrn_planar_block(const T* xb, T* yb, int64_t C, int64_t S, int64_t len, int64_t size,
                                       double alpha, double beta, double k, LrnLanes<T>& st) {
  using I = lane_count_t<T>;
  const int64_t pre = size / 2, post = (size - 1) / 2;
  const T scale = static_cast<T>(alpha / static_cast<double>(size)), kk = static_cast<T>(k);
  const T residue_scale = static_cast<T>(std::fabs(alpha / static_cast<double>(size)) * kResidueRatio);
  // With k normal and positive and alpha >= 0 (the usual case), d >= k or d is NaN or +inf,
  // which the forms of inv_pow get right; otherwise the lanes whose d is below the smallest
  // normal number (zero, subnormal, negative) are recomputed as torch does: x * d^-beta would
  // overflow where x / d^beta does not, and a subnormal d has rounded differently.
  constexpr T kMinNormal = std::numeric_limits<T>::min();
  const bool d_normal = kk >= kMinNormal && scale >= 0;
  // Stands in for the channels before 0 and past C - 1: a zero square entering or leaving
  // leaves the sum as it is.
  static const T zeros[kLrnBlock] = {};
  std::fill(st.sum[0], st.sum[0] + len, T(0));
  std::fill(st.comp[0], st.comp[0] + len, T(0));
  std::fill(st.nans, st.nans + len, I(0));
  std::fill(st.infs, st.infs + len, I(0));
  for (int64_t c = 0; c < std::min(post, C); ++c) {
    const T* xc = xb + c * S;
    for (int64_t i = 0; i < len; ++i) window_move(st.sum[0][i], st.comp[0][i], st.nans[i], st.infs[i], xc[i] * xc[i], 1);
  }
  I nonfinite = 0;
  for (int64_t i = 0; i < len; ++i) nonfinite |= st.nans[i] | st.infs[i];
  bool counted = nonfinite != 0;
  int cur = 0;
  for (int64_t c = 0; c < C; ++c, cur ^= 1) {
    const int64_t enter = c + post, leave = c - pre - 1;
    const T* xe = enter < C ? xb + enter * S : zeros;
    const T* xl = leave >= 0 ? xb + leave * S : zeros;
    const T* xc = xb + c * S;
    T* yc = yb + c * S;
    const T *s_in = st.sum[cur], *c_in = st.comp[cur];
    T *s_out = st.sum[cur ^ 1], *c_out = st.comp[cur ^ 1];
    bool bad = false;
    if (!counted) {
      bad = lrn_channel_step<kMode, false>(xe, xl, xc, yc, len, kk, scale, residue_scale, beta, s_in, c_in, s_out,
                                           c_out, st.nans, st.infs, st.d);
      counted = bad && any_nonfinite_sum(s_out, c_out, len);
    }
    if (counted) {
      bad = lrn_channel_step<kMode, true>(xe, xl, xc, yc, len, kk, scale, residue_scale, beta, s_in, c_in, s_out,
                                          c_out, st.nans, st.infs, st.d);
    }
    if (bad) rebuild_lanes(xb, yb, C, S, c, len, size, alpha, beta, k, residue_scale, s_out, c_out, st.d);
    if (!d_normal) {
      I small = 0;
      for (int64_t i = 0; i < len; ++i) small |= st.d[i] < kMinNormal ? 1 : 0;
      for (int64_t i = 0; small && i < len; ++i) {
        if (st.d[i] < kMinNormal) yc[i] = lrn_element_as_torch(xb + i, C, S, c, size, alpha, beta, k);
      }
    }
  }
}

template <int kMode, typename T>
FA_ALWAYS_INLINE void lrn_planar_range_mode(const T* x, T* y, int64_t C, int64_t S, int64_t size, double alpha,
                                            double beta, double k, int64_t begin, int64_t end) {
  const int64_t blocks = (S + kLrnBlock - 1) / kLrnBlock;
  LrnLanes<T> st;
  for (int64_t t = begin; t < end; ++t) {
    const int64_t n = t / blocks, s0 = (t % blocks) * kLrnBlock;
    lrn_planar_block<kMode>(x + n * C * S + s0, y + n * C * S + s0, C, S, std::min(kLrnBlock, S - s0), size, alpha,
                            beta, k, st);
  }
}

template <typename T>
FA_ALWAYS_INLINE void lrn_planar_range(const T* x, T* y, int64_t C, int64_t S, int64_t size, double alpha,
                                       double beta, double k, int64_t begin, int64_t end) {
  switch (inv_pow_mode(beta)) {
    case 1: return lrn_planar_range_mode<1>(x, y, C, S, size, alpha, beta, k, begin, end);
    case 2: return lrn_planar_range_mode<2>(x, y, C, S, size, alpha, beta, k, begin, end);
    case 3: return lrn_planar_range_mode<3>(x, y, C, S, size, alpha, beta, k, begin, end);
    default: return lrn_planar_range_mode<0>(x, y, C, S, size, alpha, beta, k, begin, end);
  }
}

FA_CPU_CLONES void lrn_planar_tasks(const float* x, float* y, int64_t C, int64_t S, int64_t size, double alpha,
                                    double beta, double k, int64_t begin, int64_t end) {
  lrn_planar_range<float>(x, y, C, S, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void lrn_planar_tasks(const double* x, double* y, int64_t C, int64_t S, int64_t size, double alpha,
                                    double beta, double k, int64_t begin, int64_t end) {
  lrn_planar_range<double>(x, y, C, S, size, alpha, beta, k, begin, end);
}

// float32 on AVX-512 for windows up to kRingMax channels and beta 0.75 or 0.5 (the networks'
// LRNs): the window sum is the direct sum of a ring of the window's squares (each square is
// computed once, when its channel enters; no running subtraction, so nothing drifts), and
// d^-beta comes from the reciprocal square root estimate refined by one Newton step
// (d^-0.75 = q^2 * q^-1/2 with q = d^-1/2): no division, square root or pow. The compensated
// running sum above, with its sqrt and division, was compute-bound at about 5x the copy time
// of its input; this path does a third of the work per element.
constexpr int64_t kRingMax = 16;
// Pixels per task: long enough runs of each plane for the hardware prefetcher.
constexpr int64_t kFastBlock = 512;
constexpr int64_t kPrefetchAhead = 3;

bool lrn_fast_path(int64_t size, double beta) {
  return use_avx512_path() && size <= kRingMax && (beta == 0.75 || beta == 0.5);
}

#if defined(__x86_64__)
// 1/sqrt(d) to ~1 ulp: the 14-bit estimate and one Newton step, r * (1.5 - 0.5 * d * r^2).
__attribute__((target("avx512f"))) inline __m512 rsqrt_nr(__m512 d) {
  const __m512 r = _mm512_rsqrt14_ps(d);
  const __m512 hd = _mm512_mul_ps(_mm512_set1_ps(0.5f), d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(_mm512_mul_ps(hd, r), r, _mm512_set1_ps(1.5f)));
}

// Channel e's squares into its ring slot (zeros for channels past the end).
__attribute__((target("avx512f"))) void lrn_enter(const float* xb, int64_t C, int64_t stride, int64_t len,
                                                  int64_t size, int64_t e, float* ring) {
  float* slot = ring + (e % size) * kFastBlock;
  if (e >= C) {
    std::fill(slot, slot + len, 0.f);
    return;
  }
  const float* xe = xb + e * stride;
  // The block's rows are short (2 KiB) and a plane apart, too short a stream for the hardware
  // prefetcher: fetch the row that enters kPrefetchAhead channels from now.
  const float* ahead = e + kPrefetchAhead < C ? xe + kPrefetchAhead * stride : nullptr;
  for (int64_t i = 0; i < len; i += 16) {
    const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i));
    if (ahead) _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
    const __m512 v = _mm512_maskz_loadu_ps(m, xe + i);
    _mm512_mask_storeu_ps(slot + i, m, _mm512_mul_ps(v, v));
  }
}

// The rsqrt forms are accurate for d in [kFastMinD, kFastMaxD]: the Newton step's 0.5 * d is
// still normal and q^2 in d^-0.75 = q^2 * q^-1/2 does not go subnormal.
constexpr float kFastMinD = 0x1p-125f, kFastMaxD = 0x1p100f;

// The lanes of `lanes` (pixels i.. of channel c) recomputed as torch does: their d is outside
// the rsqrt forms' range (zero, infinite, NaN, negative, subnormal or huge), which is rare, so
// each vector only tests for it.
__attribute__((target("avx512f"), noinline)) void lrn_lanes_as_torch(const float* xb, float* yc, int64_t C,
                                                                    int64_t stride, int64_t c, int64_t size,
                                                                    double alpha, double beta, double k,
                                                                    __mmask16 lanes) {
  for (int l = 0; l < 16; ++l) {
    if (lanes & (1u << l)) yc[l] = lrn_element_as_torch(xb + l, C, stride, c, size, alpha, beta, k);
  }
}

// d for pixels i..i+15 from the ring: a direct sum of squares, never negative; a NaN or inf
// square in the window carries through to d as in torch's sum.
__attribute__((target("avx512f"))) inline __m512 ring_denominator(const float* ring, int64_t size, int64_t i,
                                                                  __mmask16 m, __m512 sv, __m512 kv) {
  __m512 sum = _mm512_maskz_loadu_ps(m, ring + i);
  for (int64_t j = 1; j < size; ++j) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, ring + j * kFastBlock + i));
  return _mm512_fmadd_ps(sv, sum, kv);
}

// The lanes of m whose d is outside the rsqrt forms' range [lo, hi] (NaN included). With
// kDAboveMin, d >= k >= lo is known.
template <bool kDAboveMin>
__attribute__((target("avx512f"))) inline __mmask16 out_of_range(__m512 d, __mmask16 m, __m512 lo, __m512 hi) {
  const __mmask16 above = _mm512_mask_cmp_ps_mask(m, d, hi, _CMP_NLE_UQ);
  return kDAboveMin ? above : static_cast<__mmask16>(above | _mm512_mask_cmp_ps_mask(m, d, lo, _CMP_LT_OQ));
}

// One block: channels 0..C-1 of `len` pixels, channel planes `stride` floats apart.
// ring: scratch of size * kFastBlock floats. kDAboveMin: k >= kFastMinD and alpha >= 0 (the
// usual case), so d >= k and only d's upper end needs testing (an ordered compare: NaN fails
// it too).
template <bool kDAboveMin>
__attribute__((target("avx512f"))) void lrn_block_avx512_t(const float* xb, float* yb, int64_t C, int64_t stride,
                                                           int64_t len, int64_t size, double alpha, double beta,
                                                           double k, float* ring) {
  const int64_t post = (size - 1) / 2;
  const bool three_quarters = beta == 0.75;
  const __m512 kv = _mm512_set1_ps(static_cast<float>(k));
  const __m512 sv = _mm512_set1_ps(static_cast<float>(alpha / static_cast<double>(size)));
  const __m512 lo = _mm512_set1_ps(kFastMinD), hi = _mm512_set1_ps(kFastMaxD);
  for (int64_t j = 0; j < size; ++j) std::fill(ring + j * kFastBlock, ring + j * kFastBlock + len, 0.f);
  for (int64_t e = 0; e < std::min(post, C); ++e) lrn_enter(xb, C, stride, len, size, e, ring);
  for (int64_t c = 0; c < C; ++c) {
    // The slot of channel c - pre - 1 (leaving) is the slot of c + post (entering).
    lrn_enter(xb, C, stride, len, size, c + post, ring);
    const float* xc = xb + c * stride;
    float* yc = yb + c * stride;
    __mmask16 any_out = 0;
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i));
      // The output line a few channels on: storing into it needs it in cache first.
      _mm_prefetch(reinterpret_cast<const char*>(yc + kPrefetchAhead * stride + i), _MM_HINT_T0);
      const __m512 d = ring_denominator(ring, size, i, m, sv, kv);
      __m512 f = rsqrt_nr(d);
      if (three_quarters) f = _mm512_mul_ps(_mm512_mul_ps(f, f), rsqrt_nr(f));
      _mm512_mask_storeu_ps(yc + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xc + i), f));
      any_out = static_cast<__mmask16>(any_out | out_of_range<kDAboveMin>(d, m, lo, hi));
    }
    // Rare: such lanes in this channel. Found again and recomputed after the row, so the loop
    // above holds no call (which would cost it its vector registers).
    if (any_out) {
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 m = static_cast<__mmask16>(first_lanes(len - i));
        const __mmask16 out = out_of_range<kDAboveMin>(ring_denominator(ring, size, i, m, sv, kv), m, lo, hi);
        if (out) lrn_lanes_as_torch(xb + i, yc + i, C, stride, c, size, alpha, beta, k, out);
      }
    }
  }
}

void lrn_block_avx512(const float* xb, float* yb, int64_t C, int64_t stride, int64_t len, int64_t size, double alpha,
                      double beta, double k, float* ring) {
  if (k >= kFastMinD && alpha >= 0) {
    lrn_block_avx512_t<true>(xb, yb, C, stride, len, size, alpha, beta, k, ring);
  } else {
    lrn_block_avx512_t<false>(xb, yb, C, stride, len, size, alpha, beta, k, ring);
  }
}
#endif

template <typename scalar_t>
void lrn_planar(const scalar_t* x, scalar_t* y, int64_t N, int64_t C, int64_t S, int64_t size,
                double alpha, double beta, double k) {
#if defined(__x86_64__)
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (lrn_fast_path(size, beta)) {
      const int64_t blocks = (S + kFastBlock - 1) / kFastBlock;
      at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> ring(static_cast<size_t>(size * kFastBlock));
        for (int64_t t = begin; t < end; ++t) {
          const int64_t n = t / blocks, s0 = (t % blocks) * kFastBlock;
          lrn_block_avx512(x + n * C * S + s0, y + n * C * S + s0, C, S, std::min(kFastBlock, S - s0), size, alpha,
                           beta, k, ring.data());
        }
      });
      return;
    }
  }
#endif
  const int64_t blocks = (S + kLrnBlock - 1) / kLrnBlock;
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    lrn_planar_tasks(x, y, C, S, size, alpha, beta, k, begin, end);
  });
}

// A (C x len) tile, channel rows len floats apart, through the fast path when it applies;
// false (and nothing written) otherwise.
inline bool lrn_tile_fast(const float* xt, float* yt, int64_t C, int64_t len, int64_t size, double alpha,
                          double beta, double k, float* ring) {
#if defined(__x86_64__)
  if (!lrn_fast_path(size, beta)) return false;
  lrn_block_avx512(xt, yt, C, len, len, size, alpha, beta, k, ring);
  return true;
#else
  return false;
#endif
}
inline bool lrn_tile_fast(const double*, double*, int64_t, int64_t, int64_t, double, double, double, float*) {
  return false;
}

// Channels-last layout: each pixel's C channels are contiguous. Blocks of 16 pixels are
// transposed into a (C x 16) scratch tile, normalised there by the planar code (the window
// slides down the channels with one vector across the 16 pixels), and transposed back.
template <typename scalar_t>
FA_ALWAYS_INLINE void lrn_channels_last_range(const scalar_t* x, scalar_t* y, int64_t C, int64_t size, double alpha,
                                              double beta, double k, int64_t begin, int64_t end) {
  using T = scalar_t;
  constexpr int64_t kPix = 16;
  std::vector<T> xt(C * kPix), yt(C * kPix);
  const bool fast = std::is_same<T, float>::value && lrn_fast_path(size, beta);
  std::vector<float> ring(fast ? static_cast<size_t>(size * kFastBlock) : 0);
  for (int64_t p0 = begin; p0 < end; p0 += kPix) {
    const int64_t np = std::min(kPix, end - p0);
    for (int64_t j = 0; j < kPix; ++j) {
      const T* xp = x + (p0 + std::min(j, np - 1)) * C;  // unused lanes repeat the last pixel
      for (int64_t c = 0; c < C; ++c) xt[c * kPix + j] = xp[c];
    }
    if (!lrn_tile_fast(xt.data(), yt.data(), C, kPix, size, alpha, beta, k, ring.data())) {
      lrn_planar_range<T>(xt.data(), yt.data(), C, kPix, size, alpha, beta, k, 0, 1);
    }
    for (int64_t j = 0; j < np; ++j) {
      T* yp = y + (p0 + j) * C;
      for (int64_t c = 0; c < C; ++c) yp[c] = yt[c * kPix + j];
    }
  }
}

FA_CPU_CLONES void lrn_channels_last_tasks(const float* x, float* y, int64_t C, int64_t size, double alpha, double beta,
                                           double k, int64_t begin, int64_t end) {
  lrn_channels_last_range<float>(x, y, C, size, alpha, beta, k, begin, end);
}
FA_CPU_CLONES void lrn_channels_last_tasks(const double* x, double* y, int64_t C, int64_t size, double alpha,
                                           double beta, double k, int64_t begin, int64_t end) {
  lrn_channels_last_range<double>(x, y, C, size, alpha, beta, k, begin, end);
}

template <typename scalar_t>
void lrn_channels_last(const scalar_t* x, scalar_t* y, int64_t pixels, int64_t C, int64_t size,
                       double alpha, double beta, double k) {
  // Grains of whole 16-pixel blocks (plus a tail), at least ~16K elements each.
  const int64_t grain = std::max<int64_t>(16, (16384 / std::max<int64_t>(C, 1) + 15) / 16 * 16);
  at::parallel_for(0, pixels, grain, [&](int64_t begin, int64_t end) {
    lrn_channels_last_tasks(x, y, C, size, alpha, beta, k, begin, end);
  });
}

at::Tensor local_response_norm_cpu(const at::Tensor& input, int64_t size, double alpha, double beta,
                                   double k) {
  check_local_response_norm(input, size, alpha, beta, k);
  check_float_dtype("local_response_norm", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(fmt));
  if (x.numel() == 0) return y;
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_local_response_norm_cpu", [&] {
    if (fmt == at::MemoryFormat::ChannelsLast) {
      lrn_channels_last<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), N * S,
                                  C, size, alpha, beta, k);
    } else {
      lrn_planar<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), N, C, S,
                           size, alpha, beta, k);
    }
  });
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("local_response_norm", &fastalex::cpu::local_response_norm_cpu);
}
