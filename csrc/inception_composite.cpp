// The Inception op on every device without a kernel of its own (CUDA, where the Inception
// module runs its Triton op instead, and the CPU paths the CPU kernel does not take): fastalex's
// conv2d_relu and max_pool2d through the dispatcher, then one cat. The CPU kernel
// (cpu/inception_cpu.cpp) replaces this on the CPU for float32 NCHW on AVX-512.
#include "inception_composite.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/cat.h>
#include <torch/library.h>

#include "common/op_checks.h"

namespace fastalex {

at::Tensor inception_composite(const at::Tensor& input, const at::Tensor& w1, const at::Tensor& b1,
                               const at::Tensor& w3_reduce, const at::Tensor& b3_reduce, const at::Tensor& w3,
                               const at::Tensor& b3, const at::Tensor& w5_reduce, const at::Tensor& b5_reduce,
                               const at::Tensor& w5, const at::Tensor& b5, const at::Tensor& w_pool,
                               const at::Tensor& b_pool) {
  const InceptionShape s = check_inception(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5,
                                           w_pool, b_pool);
  static auto conv = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("fastalex::conv2d_relu", "")
                         .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                           c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, int64_t)>();
  static auto pool = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("fastalex::max_pool2d", "")
                         .typed<at::Tensor(const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef,
                                           c10::IntArrayRef, bool)>();
  const int64_t one[2] = {1, 1}, zero[2] = {0, 0}, pad3[2] = {s.k3 / 2, s.k3 / 2}, pad5[2] = {s.k5 / 2, s.k5 / 2};
  const int64_t three[2] = {3, 3};
  auto relu_conv = [&](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const int64_t* pad) {
    return conv.call(x, w, b, one, c10::IntArrayRef(pad, 2), one, 1);
  };
  return at::cat({relu_conv(input, w1, b1, zero),
                  relu_conv(relu_conv(input, w3_reduce, b3_reduce, zero), w3, b3, pad3),
                  relu_conv(relu_conv(input, w5_reduce, b5_reduce, zero), w5, b5, pad5),
                  relu_conv(pool.call(input, three, one, one, one, false), w_pool, b_pool, zero)},
                 1);
}

}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CompositeExplicitAutograd, m) {
  m.impl("inception", &fastalex::inception_composite);
}
