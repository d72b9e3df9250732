// The Inception op from fastalex's own ops (see inception_composite.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace fastalex {

// cat(conv2d_relu branch1, conv2d_relu(conv2d_relu reduce) x 2, conv2d_relu(max_pool2d 3x3/1)),
// each op dispatched to the input's device; checks the arguments (check_inception) first.
at::Tensor inception_composite(const at::Tensor& input, const at::Tensor& w1, const at::Tensor& b1,
                               const at::Tensor& w3_reduce, const at::Tensor& b3_reduce, const at::Tensor& w3,
                               const at::Tensor& b3, const at::Tensor& w5_reduce, const at::Tensor& b5_reduce,
                               const at::Tensor& w5, const at::Tensor& b5, const at::Tensor& w_pool,
                               const at::Tensor& b_pool);

}  // namespace fastalex
