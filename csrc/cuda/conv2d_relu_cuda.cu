// Host side of the CUDA conv2d + bias + ReLU: checks, device guard, stream, dispatch, launch.
// (Also compiled by the host compiler for the emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

#include "common/op_checks.h"
#include "cuda/conv2d_relu_kernel.cuh"
#include "cuda/host_glue.h"

namespace fastalex {
namespace cuda {
namespace {

at::Tensor conv2d_relu_cuda(const at::Tensor& input, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                            c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups) {
  const ConvGeometry g = check_conv2d_relu(input, weight, bias, stride, padding, dilation, groups);
  check_float_dtype("conv2d_relu", "input", input, /*half_ok=*/true);
  const DeviceScope scope(input);
  const auto fmt = kernel_memory_format(input);
  at::Tensor y = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, input.options().memory_format(fmt));
  if (y.numel() == 0) return y;

  const int64_t ocg = g.out_channels / groups, cg = g.in_channels / groups;
  const int64_t K = cg * g.kernel_h * g.kernel_w;
  const int64_t pixels = g.batch * g.out_h * g.out_w;
  const int64_t grid_x = (pixels + kConvBN - 1) / kConvBN, grid_y = (ocg + kConvBM - 1) / kConvBM;
  TORCH_CHECK_VALUE(K <= std::numeric_limits<int>::max() && ocg <= std::numeric_limits<int>::max(),
                    "fastalex.conv2d_relu: weight of shape ", weight.sizes(),
                    " is too large for the CUDA kernel (reduction length ", K, ")");
  TORCH_CHECK_VALUE(grid_x <= std::numeric_limits<int>::max() && grid_y <= 65535 && groups <= 65535,
                    "fastalex.conv2d_relu: problem too large for one launch (", pixels,
                    " output pixels, ", ocg, " channels per group, ", groups, " groups)");
  // The kernel reads the input through its strides (any layout); weight and bias are small.
  const at::Tensor w = weight.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();

  ConvParams p{};
  p.batch = g.batch;
  p.in_h = g.in_h;
  p.in_w = g.in_w;
  p.out_h = g.out_h;
  p.out_w = g.out_w;
  p.in_channels_per_group = static_cast<int>(cg);
  p.out_channels_per_group = static_cast<int>(ocg);
  p.kernel_h = static_cast<int>(g.kernel_h);
  p.kernel_w = static_cast<int>(g.kernel_w);
  p.stride_h = static_cast<int>(g.stride_h);
  p.stride_w = static_cast<int>(g.stride_w);
  p.pad_h = static_cast<int>(g.pad_h);
  p.pad_w = static_cast<int>(g.pad_w);
  TORCH_CHECK_VALUE(g.dilation_h <= std::numeric_limits<int>::max() && g.dilation_w <= std::numeric_limits<int>::max() &&
                        g.stride_h <= std::numeric_limits<int>::max() && g.stride_w <= std::numeric_limits<int>::max() &&
                        g.pad_h <= std::numeric_limits<int>::max() && g.pad_w <= std::numeric_limits<int>::max(),
                    "fastalex.conv2d_relu: stride, padding and dilation must each fit in 32 bits for the CUDA kernel");
  p.dilation_h = static_cast<int>(g.dilation_h);
  p.dilation_w = static_cast<int>(g.dilation_w);
  p.K = static_cast<int>(K);
  p.pixels = pixels;
  strides4(input, p.in_sn, p.in_sc, p.in_sh, p.in_sw);
  strides4(y, p.out_sn, p.out_sc, p.out_sh, p.out_sw);

  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y), static_cast<unsigned>(groups));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_conv2d_relu_cuda", [&] {
    launch<conv2d_relu_igemm_kernel<device_t<scalar_t>>>(
        grid, dim3(kConvThreads), 0, scope.stream(), device_ptr<scalar_t>(input, "input"),
        device_ptr<scalar_t>(w, "weight"), has_bias ? device_ptr<scalar_t>(b, "bias") : nullptr,
        device_mut_ptr<scalar_t>(y, "output"), p);
  });
  return y;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("conv2d_relu", &fastalex::cuda::conv2d_relu_cuda);
}
