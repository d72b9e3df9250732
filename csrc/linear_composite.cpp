// linear (+ ReLU) on every device without a kernel of its own (CUDA included): the vendor GEMM
// (cuBLAS through at::addmm) followed by an in-place ReLU. At the networks' FC shapes the GEMM
// library is what a hand-written kernel would have to beat, and the ReLU pass touches only the
// N x out_features output. The CPU kernel (cpu/linear_cpu.cpp) replaces this on the CPU.
// These are the calls F.linear makes (addmm with a bias, mm without), so the precision is
// torch's: cuBLAS(Lt) multiplies float32 in TF32 exactly when torch.backends.cuda.matmul.allow_tf32
// (float32Precision(CUDA, MATMUL) == TF32) is set, and tests/test_linear.py checks the results
// equal F.linear's bit for bit under either setting on a GPU.
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include "common/op_checks.h"

namespace fastalex {
namespace {

at::Tensor linear_composite(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                            bool relu) {
  check_linear(input, weight, bias);
  check_float_dtype("linear", "input", input, /*half_ok=*/true);
  at::Tensor y = bias.has_value() && bias->defined() ? at::addmm(*bias, input, weight.t()) : at::mm(input, weight.t());
  if (relu) y.clamp_min_(0);
  return y;
}

}  // namespace
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CompositeExplicitAutograd, m) {
  m.impl("linear", &fastalex::linear_composite);
}
