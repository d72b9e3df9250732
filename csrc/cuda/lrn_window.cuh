// The cross-channel LRN window, shared by every kernel that computes an LRN (torch-free; see
// device_common.cuh): local_response_norm_kernel.cuh, and the fused LRN + pooling kernels
// (lrn_max_pool2d_kernel.cuh, max_pool2d_lrn_kernel.cuh).
//
// A pixel's LRN walks the channels with a running window sum of squares (LrnSweep), so each
// value enters and leaves the window once, at O(C) work per pixel. The window's values wait in
// a per-thread ring in shared memory (slot c % size): the value entering the window evicts
// exactly the one leaving it, and channel c's own value is still in the ring when y[c] is
// computed. Without a ring (it does not fit in shared memory) the sweep asks for the two old
// values again instead. (Rarely, the whole window is asked for again: see LrnSum.)
//
// Non-finite values follow torch computed in the accumulation precision A (float for
// float/half/bfloat16, double for double): each square is rounded to A, so a float |x| above
// ~1.8e19 squares to +inf; a NaN square in the window makes d, and y, NaN; an infinite one
// makes the window sum +inf (for alpha > 0, d = +inf: y = 0 for finite x, NaN for x = +-inf).
// d^-beta follows torch's pow at d = 0, +-inf and NaN (lrn_inv_pow). The running sum (LrnWindow)
// counts NaN and infinite squares instead of adding them, so one leaving the window leaves
// nothing behind (adding it would leave NaN for good: inf - inf). See LrnWindow for how
// finite squares are summed.
#pragma once

#include <cmath>

#include "cuda/device_common.cuh"

namespace fastalex {
namespace cuda {

// The LRN's arguments as the kernels use them (filled by lrn_coeffs() in lrn_pool_params.h).
struct LrnCoeffs {
  int64_t channels;           // C
  int size, pre, post;        // window [c - pre, c + post], pre = size / 2, post = (size - 1) / 2
  double alpha_over_size, beta, k;
  int beta_mode;              // 1: beta == 0.75, 2: beta == 0.5, 3: beta == 1, 4: beta == -0.5, 0: any
};


// d^-beta, with torch's result wherever torch's x / d^beta is not finite: torch takes
// d^0.5 as sqrt(d) and d^-0.5 as rsqrt(d), every other beta as pow(d, beta), whose special
// cases pow(d, -beta) shares (d = 0: +inf for beta > 0; d = +inf: 0; d < 0: NaN unless beta
// is an integer; beta = 0: 1, even for NaN d).
template <typename A>
FA_DEVICE A lrn_inv_pow(A d, const LrnCoeffs& p) {
  switch (p.beta_mode) {
    case 1:
      if (d > A(0)) {  // the square roots equal pow only there: pow(-inf, -0.75) = 0, pow(-0, -0.75) = +inf
        const A r = A(1) / sqrt(d);
        return r * sqrt(r);
      }
      return pow(d, A(-0.75));
    case 2:
      return A(1) / sqrt(d);
    case 3:
      return A(1) / d;
    case 4:
      return sqrt(d);
    default:
      return pow(d, -A(p.beta));
  }
}

// x * x rounded to A, as torch rounds it, and never fused into a following add (the window
// must add, and later subtract, the same value).
FA_DEVICE float lrn_square(float v) { return __fmul_rn(v, v); }
FA_DEVICE double lrn_square(double v) { return __dmul_rn(v, v); }

// A running sum of nonzero finite squares in double, compensated: two-sum keeps the rounding
// error of every add exactly in `err`, so a value entering and later leaving leaves no drift
// as long as the sum spans at most two scales. With more (say squares near 1e140, 1e80 and
// 1 in one window) `err` itself rounds, and can keep an error of a small multiple of 2^-106
// times the largest sum it has held; that matters only once the sum has cancelled far below
// that, so cancelled() asks for it to be recomputed from the window once it has dropped
// below 2^-40 of that peak (rare: a value ~10^6 times its neighbours leaving). The sum is zeroed
// whenever its last nonzero square leaves (all-zero windows, frequent after a ReLU, cost
// no recompute and come back exactly zero).
struct LrnSum {
  double s = 0.0, err = 0.0;  // the sum is s + err
  double peak = 0.0;          // the largest s since the sum was last zeroed or recomputed
  int n = 0;                  // nonzero squares in the sum

  FA_DEVICE void add(double v) {
    const double t = s + v, bp = t - s;
    err += (s - (t - bp)) + (v - bp);
    s = t;
  }
  FA_DEVICE void enter(double v) {
    if (v == 0.0) return;
    add(v);
    ++n;
    if (s > peak) peak = s;
  }
  FA_DEVICE void leave(double v) {
    if (v == 0.0) return;
    add(-v);
    if (--n == 0) s = err = peak = 0.0;
  }
  FA_DEVICE void clear() { s = err = peak = 0.0, n = 0; }
  FA_DEVICE bool cancelled() const { return s + err < peak * 0x1p-40; }
  FA_DEVICE double value() const { return s + err; }
};

// The running sum of the squares in the window.
//  - NaN and infinite squares are only counted: while any is in the window the sum is NaN,
//    else +inf, and one leaving restores exactly the sum without it (adding it would leave
//    NaN for good: inf - inf).
//  - Finite squares below kHuge (2^64 for float, 2^512 for double) go to `lo`; larger ones,
//    scaled by 1/kHuge, to `hi`. `lo` never sees a huge value, so one leaving leaves `lo`
//    exactly as if it had never been there, and double squares summing past DBL_MAX do not
//    overflow the accumulator.
//  - sum() rounds the total to A, where it can overflow to +inf as torch's sum does.
template <typename A>
struct LrnWindow {
  static constexpr double kHuge = sizeof(A) == sizeof(double) ? 0x1p512 : 0x1p64;
  LrnSum lo, hi;
  int n_inf = 0, n_nan = 0;

  // A square entering (leaving = false) or leaving (leaving = true) the window.
  FA_DEVICE void update(A sq, bool leaving) {
    const int step = leaving ? -1 : 1;
    if (sq != sq) {
      n_nan += step;
    } else if (sq == A(INFINITY)) {  // squares are never -inf
      n_inf += step;
    } else if (double(sq) >= kHuge) {
      if (leaving) hi.leave(double(sq) * (1.0 / kHuge)); else hi.enter(double(sq) * (1.0 / kHuge));
    } else {
      if (leaving) lo.leave(double(sq)); else lo.enter(double(sq));
    }
  }

  // After the updates of a channel: recomputes a cancelled part from the squares of the
  // channels [first, last] now in the window (load(j) gives x[j] in A).
  template <typename Load>
  FA_DEVICE void renew(const Load& load, int64_t first, int64_t last) {
    const bool redo_lo = lo.cancelled(), redo_hi = hi.cancelled();
    if (!redo_lo && !redo_hi) return;
    if (redo_lo) lo.clear();
    if (redo_hi) hi.clear();
    for (int64_t j = first; j <= last; ++j) {
      const A sq = lrn_square(load(j));
      if (!(sq < A(INFINITY))) continue;  // NaN and inf stay counted
      if (double(sq) >= kHuge) {
        if (redo_hi) hi.enter(double(sq) * (1.0 / kHuge));
      } else if (redo_lo) {
        lo.enter(double(sq));
      }
    }
  }

  FA_DEVICE A sum() const {
    if (n_nan != 0) return A(NAN);
    if (n_inf != 0) return A(INFINITY);
    // Rounding can leave the compensated sums slightly below zero; the true sum cannot be.
    const double s = lo.value() + hi.value() * kHuge;
    return A(s > 0.0 ? s : 0.0);
  }
};

// One pixel's walk down the channels c = 0, 1, ..., C - 1. value(j) gives channel j's input
// value in A (a load for the LRN, a pooled window for max_pool2d_lrn); with kRing, the values
// in the window wait at ring[slot * ring_stride], slot = j % size, so each is asked for once.
template <typename A, bool kRing>
struct LrnSweep {
  LrnWindow<A> window;
  FA_SHARED_PTR(A) ring = nullptr;
  int ring_stride = 0;

  // Enters the channels [0, post): the window of channel 0.
  template <typename Value>
  FA_DEVICE void start(const LrnCoeffs& p, const Value& value) {
    for (int64_t c = 0; c < p.post && c < p.channels; ++c) {
      const A v = value(c);
      window.update(lrn_square(v), false);
      if (kRing) ring[int(c % p.size) * ring_stride] = v;
    }
  }

  // Moves the window on to channel c (the channel after the last call's) and returns y[c] in A.
  template <typename Value>
  FA_DEVICE A next(int64_t c, const LrnCoeffs& p, const Value& value) {
    const int64_t C = p.channels;
    const int size = p.size;
    // The leaving value goes first: a part it empties is zeroed before the next value enters.
    const int64_t enter = c + p.post, leave = c - p.pre - 1;
    A v_c;
    if (kRing) {
      // `enter` and `leave` differ by size: they share a slot.
      const int slot = int(enter % size);
      if (leave >= 0) window.update(lrn_square(ring[slot * ring_stride]), true);
      if (enter < C) {
        const A v_in = value(enter);
        window.update(lrn_square(v_in), false);
        ring[slot * ring_stride] = v_in;
      }
      v_c = ring[int(c % size) * ring_stride];
    } else {
      if (leave >= 0) window.update(lrn_square(value(leave)), true);
      if (enter < C) window.update(lrn_square(value(enter)), false);
      v_c = value(c);
    }
    const int64_t first = c > p.pre ? c - p.pre : 0, last = enter < C ? enter : C - 1;
    if (kRing) {
      window.renew([&](int64_t j) { return A(ring[int(j % size) * ring_stride]); }, first, last);
    } else {
      window.renew(value, first, last);
    }
    const A d = A(p.k + p.alpha_over_size * double(window.sum()));
    return v_c * lrn_inv_pow(d, p);
  }
};

}  // namespace cuda
}  // namespace fastalex
