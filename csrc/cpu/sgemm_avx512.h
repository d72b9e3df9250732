// A float32 GEMM micro-kernel (packed B panel, A read in place) for the CPU convolution, with the bias + ReLU epilogue
// fused into its final store. Compiled for AVX-512 with a target attribute and chosen at run
// time (cpu_has_avx512()); other CPUs keep the BLAS path.
#pragma once

#include <cstdint>

namespace fastalex {
namespace cpu {
namespace sgemm {

constexpr int kMR = 14;   // most rows of a C tile (one broadcast per row and k)
constexpr int kNR = 32;   // columns of a C tile (two 16-float vectors of the packed B panel)
// Reduction block: a 32 x 512 B sub-panel (64 KiB, in L2 beside a 48 KiB L1). Measured on one
// thread (GFLOP/s, AlexNet conv3 / GoogLeNet 4e 3x3 / conv2 3x3 at batch 16): 256 gave
// 134 / 145 / 117, 512 150 / 155 / 115, no blocking 154 / 159 / 115: fewer passes over the C
// tile (each reloads it from the output) matter more than keeping the slice in L1.
constexpr int kKC = 512;

// Splits m rows into ceil(m / kMR) panels whose heights differ by at most one (128 rows:
// 8 x 13 + 2 x 12 rather than 9 x 14 + 2, which would compute 140 rows). Returns the
// height of panel i.
int panel_count(int64_t m);
int panel_height(int64_t m, int i);
int64_t panel_row0(int64_t m, int i);

// C[mr x nr] (row stride ldc) = A[mr x kc] x B[kc][kNR] (+ C if accumulate). A is read in
// place, row-major with rows lda floats apart (the convolution's weight rows as the caller
// holds them): each step broadcasts one element of each of the mr rows, so A needs no packed
// copy -- nothing is prepared per call or cached between calls, and nothing can go stale. B's
// rows are ldb floats apart (kNR for a packed panel).
// On the last reduction block (`last`), multiplies by scale[row] (if scale: an eval-mode
// BatchNorm's per-channel factor), adds bias[row] (if bias) and clamps at zero (keeping NaN)
// before the store. 1 <= mr <= kMR, nr <= kNR; columns past nr are not stored (nor, for
// nr <= 16, computed: B's columns 16 .. 31 are then not read).
void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int mr,
                  int nr, bool accumulate, bool last, const float* bias_rows, const float* scale_rows = nullptr);

// The same with A packed: a[k * mr + m], the mr rows of each reduction step side by side (one
// sequential stream, for a transformed operand that is written anyway, as Winograd's is).
void micro_kernel_packed_a(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int mr,
                           int nr, bool accumulate, bool last, const float* bias_rows,
                           const float* scale_rows = nullptr);

}  // namespace sgemm
}  // namespace cpu
}  // namespace fastalex
