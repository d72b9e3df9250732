// The LRN + pooling pairs (lrn_max_pool2d, max_pool2d_lrn) on a device without a one-pass kernel
// of its own: fastalex's two ops one after the other (results are the unfused pair's exactly).
// The CPU kernel (cpu/lrn_pool_cpu.cpp) takes precedence over this composite.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "common/op_checks.h"

namespace fastalex {
namespace {

at::Tensor lrn(const at::Tensor& x, int64_t size, double alpha, double beta, double k) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastalex::local_response_norm", "")
                             .typed<at::Tensor(const at::Tensor&, int64_t, double, double, double)>();
  return op.call(x, size, alpha, beta, k);
}

at::Tensor pool(const at::Tensor& x, c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                bool ceil_mode) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastalex::max_pool2d", "")
                             .typed<at::Tensor(const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef,
                                               c10::IntArrayRef, c10::IntArrayRef, bool)>();
  const int64_t no_dilation[2] = {1, 1};
  return op.call(x, kernel_size, stride, padding, no_dilation, ceil_mode);
}

at::Tensor lrn_max_pool2d_composite(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                                    bool ceil_mode) {
  check_lrn_pool_input("lrn_max_pool2d", input);
  return pool(lrn(input, size, alpha, beta, k), kernel_size, stride, padding, ceil_mode);
}

at::Tensor max_pool2d_lrn_composite(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                                    bool ceil_mode) {
  check_lrn_pool_input("max_pool2d_lrn", input);
  return lrn(pool(input, kernel_size, stride, padding, ceil_mode), size, alpha, beta, k);
}

}  // namespace
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CompositeExplicitAutograd, m) {
  m.impl("lrn_max_pool2d", &fastalex::lrn_max_pool2d_composite);
  m.impl("max_pool2d_lrn", &fastalex::max_pool2d_lrn_composite);
}
