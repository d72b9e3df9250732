// Host side of the CUDA max-pool gradient: checks, device guard, stream, dispatch, launch.
// (Also compiled by the host compiler for the emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/op_checks.h"
#include "cuda/host_glue.h"
#include "cuda/lrn_pool_params.h"
#include "cuda/max_pool2d_backward_kernel.cuh"

namespace fastalex {
namespace cuda {
namespace {

constexpr int kThreads = 256;

at::Tensor max_pool2d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                                    c10::IntArrayRef dilation, bool ceil_mode) {
  const char* op = "max_pool2d_backward";
  const PoolGeometry g =
      check_max_pool2d_backward(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode);
  check_float_dtype(op, "input", input, /*half_ok=*/true);
  const DeviceScope scope(input);
  // Every element is written (zero where no window takes it as its argmax).
  at::Tensor gx = at::empty(input.sizes(), input.options().memory_format(kernel_memory_format(input)));
  if (gx.numel() == 0) return gx;

  PoolBackwardParams p{};
  fill_pool_geometry(p, op, g);
  // Any input and grad_output strides.
  strides4(input, p.in_sn, p.in_sc, p.in_sh, p.in_sw);
  strides4(grad_output, p.out_sn, p.out_sc, p.out_sh, p.out_sw);
  strides4(gx, p.gin_sn, p.gin_sc, p.gin_sh, p.gin_sw);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_max_pool2d_backward_cuda",
                                  [&] {
    using T = device_t<scalar_t>;
    launch<max_pool2d_backward_kernel<T>>(dim3(grid_stride_blocks(gx.numel(), kThreads)), dim3(kThreads), 0,
                                          scope.stream(), device_ptr<scalar_t>(grad_output, "grad_output"),
                                          device_ptr<scalar_t>(input, "input"),
                                          device_mut_ptr<scalar_t>(gx, "grad_input"), p);
  });
  return gx;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("max_pool2d_backward", &fastalex::cuda::max_pool2d_backward_cuda);
}
