// linear (+ ReLU) on the CPU for the networks' fully-connected layers. At inference batch
// sizes these layers stream their weights: AlexNet's FC6 reads 151 MB of weights for 16 input
// rows, about 16 multiply-adds per weight, so a GEMM tuned for square problems spends most of
// its time waiting on memory (see benchmarks/results/ for how a vendor sgemm fares at these
// shapes). Here every weight is read from memory once: each thread owns
// a range of output features, walks 4 weight rows in 1024-float chunks (16 KiB, kept in L1)
// and multiplies each chunk with the inputs 4 rows at a time, 16 vector accumulators in
// registers, so every loaded weight vector serves 4 inputs and every input vector 4 outputs.
// Bias and ReLU are applied when the 16 partial sums are reduced, and the output is written
// once. Each output is summed in a fixed order by one thread: results do not depend on the
// thread count. float32 on AVX-512 CPUs takes this path; other dtypes and CPUs use at::addmm.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

constexpr int64_t kRows = 4;      // weight rows (output features) per block
constexpr int64_t kInputs = 4;    // input rows per register block
constexpr int64_t kChunk = 1024;  // floats of each weight row per pass (4 rows = 16 KiB)
constexpr int64_t kSlice = 64;    // input rows per pass over the weights (their chunk stays in L2)

#if defined(__x86_64__)
// The weights of the block that comes next, brought into L1 while this one is multiplied.
// Every pass over the inputs prefetches its share of the lines (lines [lo, hi) of the next
// block's rows laid end to end), so memory is busy through the whole block rather than only
// during its first pass.
struct NextBlock {
  const float* rows[kRows];
  int64_t lines_per_row, lo, hi;
};

// acc[r * 4 + i] (16 floats each) += w[r][k0 .. k0+kc) * x[i][k0 .. k0+kc), lanewise.
__attribute__((target("avx512f"))) void dot_block(const float* const w[kRows], const float* const x[kInputs],
                                                  int64_t k0, int64_t kc, const NextBlock& next, float* acc) {
  const int64_t steps = std::max<int64_t>(1, kc / 16);
  const int64_t per_step = (next.hi - next.lo + steps - 1) / steps;
  int64_t line = next.lo, row = next.lo / std::max<int64_t>(1, next.lines_per_row);
  int64_t col = next.lo - row * next.lines_per_row;
  __m512 a[kRows * kInputs];
#pragma GCC unroll 16
  for (int j = 0; j < kRows * kInputs; ++j) a[j] = _mm512_loadu_ps(acc + 16 * j);
  int64_t k = k0;
  const int64_t end = k0 + kc;
  for (; k + 16 <= end; k += 16) {
    __m512 wv[kRows], xv[kInputs];
    for (int64_t q = 0; q < per_step && line < next.hi; ++q, ++line) {
      _mm_prefetch(reinterpret_cast<const char*>(next.rows[row] + col * 16), _MM_HINT_T0);
      if (++col == next.lines_per_row) col = 0, ++row;
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) wv[r] = _mm512_loadu_ps(w[r] + k);
#pragma GCC unroll 4
    for (int i = 0; i < kInputs; ++i) xv[i] = _mm512_loadu_ps(x[i] + k);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
      for (int i = 0; i < kInputs; ++i) a[r * kInputs + i] = _mm512_fmadd_ps(wv[r], xv[i], a[r * kInputs + i]);
    }
  }
  if (k < end) {  // the row's last partial vector; masked lanes read nothing and add zero
    const __mmask16 m = static_cast<__mmask16>(first_lanes(end - k));
    __m512 wv[kRows], xv[kInputs];
    for (int r = 0; r < kRows; ++r) wv[r] = _mm512_maskz_loadu_ps(m, w[r] + k);
    for (int i = 0; i < kInputs; ++i) xv[i] = _mm512_maskz_loadu_ps(m, x[i] + k);
    for (int r = 0; r < kRows; ++r) {
      for (int i = 0; i < kInputs; ++i) a[r * kInputs + i] = _mm512_fmadd_ps(wv[r], xv[i], a[r * kInputs + i]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < kRows * kInputs; ++j) _mm512_storeu_ps(acc + 16 * j, a[j]);
}

// Output features [4 * ob_begin, 4 * ob_end) of y for all N inputs; acc: scratch for the
// partial sums of one weight block (16 floats per accumulator).
__attribute__((target("avx512f"))) void linear_rows(const float* x, const float* w, const float* b, float* y,
                                                    int64_t N, int64_t K, int64_t O, bool relu, int64_t ob_begin,
                                                    int64_t ob_end, float* acc) {
  for (int64_t n0 = 0; n0 < N; n0 += kSlice) {
    const int64_t ns = std::min(kSlice, N - n0), iblocks = (ns + kInputs - 1) / kInputs;
    for (int64_t ob = ob_begin; ob < ob_end; ++ob) {
      const int64_t o0 = ob * kRows;
      // Rows past the end repeat the last one: computed, never stored.
      const float* wr[kRows];
      for (int r = 0; r < kRows; ++r) wr[r] = w + std::min(o0 + r, O - 1) * K;
      std::fill(acc, acc + iblocks * kRows * kInputs * 16, 0.f);
      for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
        const int64_t kc = std::min(kChunk, K - k0);
        // The next chunk of these rows, or the first chunk of the next block's rows.
        NextBlock next{};
        const bool last_chunk = k0 + kc >= K;
        if (!last_chunk || ob + 1 < ob_end) {
          const int64_t nk0 = last_chunk ? 0 : k0 + kc, no0 = last_chunk ? o0 + kRows : o0;
          for (int r = 0; r < kRows; ++r) next.rows[r] = w + std::min(no0 + r, O - 1) * K + nk0;
          next.lines_per_row = (std::min(kChunk, K - nk0) + 15) / 16;
          next.hi = kRows * next.lines_per_row;
        }
        for (int64_t ib = 0; ib < iblocks; ++ib) {
          const float* xr[kInputs];
          for (int i = 0; i < kInputs; ++i) xr[i] = x + (n0 + std::min(ib * kInputs + i, ns - 1)) * K;
          NextBlock share = next;
          share.lo = next.hi * ib / iblocks;
          share.hi = next.hi * (ib + 1) / iblocks;
          dot_block(wr, xr, k0, kc, share, acc + ib * kRows * kInputs * 16);
        }
      }
      for (int64_t ib = 0; ib < iblocks; ++ib) {
        for (int r = 0; r < kRows && o0 + r < O; ++r) {
          const float bias = b ? b[o0 + r] : 0.f;
          for (int i = 0; i < kInputs && ib * kInputs + i < ns; ++i) {
            float v = _mm512_reduce_add_ps(_mm512_loadu_ps(acc + (ib * kRows * kInputs + r * kInputs + i) * 16)) + bias;
            if (relu && v < 0.f) v = 0.f;  // NaN is kept: the compare is false for it
            y[(n0 + ib * kInputs + i) * O + o0 + r] = v;
          }
        }
      }
    }
  }
}

void linear_avx512(const float* x, const float* w, const float* b, float* y, int64_t N, int64_t K, int64_t O,
                   bool relu) {
  const int64_t oblocks = (O + kRows - 1) / kRows;
  const size_t naccs = static_cast<size_t>(((std::min(N, kSlice) + kInputs - 1) / kInputs) * kRows * kInputs);
  // Each task owns a contiguous range of output features, so each weight row is read by one
  // thread, sequentially.
  at::parallel_for(0, oblocks, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(naccs * 16);
    linear_rows(x, w, b, y, N, K, O, relu, begin, end, acc.data());
  });
}
#endif

at::Tensor linear_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                      bool relu) {
  const int64_t O = check_linear(input, weight, bias);
  check_float_dtype("linear", "input", input, /*half_ok=*/false);
  const bool has_bias = bias.has_value() && bias->defined();
  const int64_t N = input.size(0), K = input.size(1);
  at::Tensor y = at::empty({N, O}, input.options());
  if (y.numel() == 0) return y;
#if defined(__x86_64__)
  if (input.scalar_type() == at::kFloat && use_avx512_path() && K > 0) {
    const at::Tensor x = input.contiguous(), w = weight.contiguous();
    const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
    linear_avx512(x.const_data_ptr<float>(), w.const_data_ptr<float>(), has_bias ? b.const_data_ptr<float>() : nullptr,
                  y.mutable_data_ptr<float>(), N, K, O, relu);
    return y;
  }
#endif
  if (has_bias) {
    at::addmm_out(y, *bias, input, weight.t());
  } else {
    at::mm_out(y, input, weight.t());
  }
  if (relu) y.clamp_min_(0);
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("linear", &fastalex::cpu::linear_cpu);
}
