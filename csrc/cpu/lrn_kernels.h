// The portable cross-channel LRN core, shared by local_response_norm_cpu.cpp and the fused LRN +
// pooling ops (lrn_pool_cpu.cpp): any dtype, window and beta. A block of pixels slides the window
// down the channels as a compensated running sum; what torch's formula gives for non-finite
// inputs is kept exactly (see the comments below).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {


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
// is rebuilt. at(j) is the element's pixel in channel j.
template <typename T, class At>
FA_ALWAYS_INLINE T lrn_as_torch(At at, int64_t C, int64_t c, int64_t size, double alpha, double beta, double k) {
  T sum = 0;
  for (int64_t j = std::max<int64_t>(c - size / 2, 0); j <= std::min(c + (size - 1) / 2, C - 1); ++j) {
    sum += at(j) * at(j);
  }
  const T d = sum / static_cast<T>(size) * static_cast<T>(alpha) + static_cast<T>(k);
  return at(c) / (beta == 0.5 ? std::sqrt(d) : static_cast<T>(std::pow(static_cast<double>(d), beta)));
}

// The same, xb pointing at the element's pixel in channel 0, channel planes `stride` apart.
template <typename T>
__attribute__((noinline)) T lrn_element_as_torch(const T* xb, int64_t C, int64_t stride, int64_t c, int64_t size,
                                                 double alpha, double beta, double k) {
  return lrn_as_torch<T>([&](int64_t j) { return xb[j * stride]; }, C, c, size, alpha, beta, k);
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
__attribute__((noinline)) void rebuild_lanes(const T* xb, int64_t S, T* yb, int64_t YS, int64_t C, int64_t c, int64_t len,
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
    yb[c * YS + i] = lrn_element_as_torch(xb + i, C, S, c, size, alpha, beta, k);
  }
}

template <typename T>
__attribute__((noinline)) bool any_nonfinite_sum(const T* sum, const T* comp, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    if (!(sum[i] + comp[i] <= std::numeric_limits<T>::max())) return true;
  }
  return false;
}

// One block of `len` pixels: x's channel rows S apart, y's YS apart. A block starts uncounted (the plain
// compensated sum: the common case costs two tests per element more than that) and switches to
// counting, for good, at the first channel whose step leaves a sum inf or NaN; that channel's
// step is redone counted from the state before it, so the counted sums are exactly the
// uncounted ones with the non-finite squares left out.
template <int kMode, typename T>
FA_ALWAYS_INLINE void lrn_planar_block(const T* xb, int64_t S, T* yb, int64_t YS, int64_t C, int64_t len, int64_t size,
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
    T* yc = yb + c * YS;
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
    if (bad) rebuild_lanes(xb, S, yb, YS, C, c, len, size, alpha, beta, k, residue_scale, s_out, c_out, st.d);
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
    lrn_planar_block<kMode>(x + n * C * S + s0, S, y + n * C * S + s0, S, C, std::min(kLrnBlock, S - s0), size, alpha,
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

}  // namespace cpu
}  // namespace fastalex
