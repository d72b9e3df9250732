// The CPU's float32 FMA peak, measured: a loop of independent fused multiply-adds that stays in
// registers (12 accumulators: more than latency x FMA ports on any current core), run on every
// thread of torch's intra-op pool at once. The benchmark takes it as the CPU's compute ceiling
// (benchmarks/roofline.py): a library GEMM's rate is not the hardware's (it may run a narrower
// code path than the CPU has).
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

constexpr int kAccumulators = 12;

#if defined(__x86_64__)
// Returns a value depending on every accumulator, so the loop cannot be dropped.
__attribute__((target("avx512f"), noinline)) float fma_loop_avx512(int64_t iterations) {
  __m512 acc[kAccumulators];
  for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm512_set1_ps(1.0f + 1e-3f * j);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAccumulators; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) float fma_loop_avx2(int64_t iterations) {
  __m256 acc[kAccumulators];
  for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm256_set1_ps(1.0f + 1e-3f * j);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  alignas(32) float out[8];
  __m256 s = acc[0];
  for (int j = 1; j < kAccumulators; ++j) s = _mm256_add_ps(s, acc[j]);
  _mm256_store_ps(out, s);
  return out[0] + out[7];
}
#endif

// Scalar fallback: what the compiler makes of it (on other architectures, usually vectorized).
float fma_loop_scalar(int64_t iterations, int* lanes) {
  constexpr int kLanes = 4;
  *lanes = kLanes;
  float acc[kAccumulators][kLanes];
  for (int j = 0; j < kAccumulators; ++j)
    for (int l = 0; l < kLanes; ++l) acc[j][l] = 1.0f + 1e-3f * (j + l);
  for (int64_t i = 0; i < iterations; ++i)
    for (int j = 0; j < kAccumulators; ++j)
      for (int l = 0; l < kLanes; ++l) acc[j][l] = acc[j][l] * 0.999999f + 1e-7f;
  float s = 0;
  for (int j = 0; j < kAccumulators; ++j)
    for (int l = 0; l < kLanes; ++l) s += acc[j][l];
  return s;
}

// `iterations` trips of the widest loop this CPU runs; its float32 lanes in *lanes.
float fma_loop(int64_t iterations, int* lanes) {
#if defined(__x86_64__)
  if (cpu_has_avx512()) return *lanes = 16, fma_loop_avx512(iterations);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return *lanes = 8, fma_loop_avx2(iterations);
#endif
  return fma_loop_scalar(iterations, lanes);
}

// FLOPs of `iterations` trips on every thread at once, and the seconds they took.
double run(int64_t iterations, double* seconds) {
  const int threads = std::max(1, at::get_num_threads());
  std::atomic<int> lanes{0};
  std::atomic<int64_t> sink{0};
  const auto t0 = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int l = 0;
      sink.fetch_add(static_cast<int64_t>(fma_loop(iterations, &l)));
      lanes.store(l);
    }
  });
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * kAccumulators * lanes.load() * static_cast<double>(iterations) * threads + 0.0 * sink.load();
}

}  // namespace

// FLOP/s of the loop on torch's intra-op threads, over about `seconds`: the best of runs of
// ~5 ms each (short enough that some run is likely to see no other process preempt a thread,
// which stalls the whole parallel region).
double cpu_fma_peak(double seconds) {
  // Trips for ~5 ms, calibrated on this thread alone (a parallel region's start-up would count).
  double t = 0;
  int64_t iterations = 1 << 10;
  int lanes = 0;
  for (;; iterations *= 2) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile float keep = fma_loop(iterations, &lanes);
    (void)keep;
    t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t >= 0.002) break;
  }
  iterations = std::max<int64_t>(1, static_cast<int64_t>(iterations * 0.005 / t));
  const int reps = std::max(5, static_cast<int>(seconds / 0.005));
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const double flops = run(iterations, &t);
    best = std::max(best, flops / t);
  }
  return best;
}

}  // namespace cpu
}  // namespace fastalex
