// Function multiversioning for the CPU kernels' hot loops: the marked function is compiled
// for AVX-512, AVX2 and baseline x86-64, and the loader picks the best one for the CPU (ifunc),
// so one build runs everywhere and vectorizes 16 floats wide where it can. The loops
// themselves live in always-inline templates, compiled into each clone.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FA_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
// For loops of short rows with strided reads, where 16-wide vectors (gathers, masked tails)
// measured slower than 8-wide ones.
#define FA_CPU_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define FA_CPU_CLONES
#define FA_CPU_CLONES_AVX2
#endif
#define FA_ALWAYS_INLINE inline __attribute__((always_inline))

#include <cstdint>

namespace fastalex {
namespace cpu {

// Whether this CPU runs AVX-512 (the hand-written float32 paths); checked once.
inline bool cpu_has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  // (the hand-written paths are compiled for AVX-512 F, VL, BW and DQ together: Knights Landing's
  // F-only AVX-512 takes the portable ones)
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  return ok;
#else
  return false;
#endif
}

// The switch for every hand-written CPU fast path (AVX-512 conv, LRN, max-pool, linear): off,
// each op takes the portable path other machines take, so the tests run both on one machine.
// Starts from FASTALEX_CPU_FASTPATH (default 1); torch.ops.fastalex.set_cpu_fastpath changes it.
bool cpu_fastpath_enabled();
bool set_cpu_fastpath(bool enabled);  // returns the previous setting

// The float32 FLOP/s of a register-only FMA loop on torch's intra-op threads (fma_peak.cpp).
double cpu_fma_peak(double seconds);

// Whether a hand-written AVX-512 path may run: the CPU has it and the fast paths are on.
inline bool use_avx512_path() { return cpu_fastpath_enabled() && cpu_has_avx512(); }

// Bits 0 .. n-1 set, n clamped to [0, 32]: the lane masks of partial 16-float vectors (cast to
// __mmask16 for the first 16 lanes, shifted right by 16 for the next 16).
inline uint32_t first_lanes(int64_t n) {
  return n <= 0 ? 0u : n >= 32 ? 0xFFFFFFFFu : (uint32_t{1} << n) - 1u;
}

}  // namespace cpu
}  // namespace fastalex
