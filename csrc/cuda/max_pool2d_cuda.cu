// Host side of the CUDA max-pool: checks, device guard, stream, dispatch, launch.
// (Also compiled by the host compiler for the emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>

#include "common/op_checks.h"
#include "cuda/host_glue.h"
#include "cuda/lrn_pool_params.h"
#include "cuda/max_pool2d_kernel.cuh"

namespace fastalex {
namespace cuda {
namespace {

constexpr int kPoolThreads = 256;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

at::Tensor max_pool2d_cuda(const at::Tensor& input, c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                           c10::IntArrayRef padding, c10::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  check_float_dtype("max_pool2d", "input", input, /*half_ok=*/true);
  const DeviceScope scope(input);
  const auto fmt = kernel_memory_format(input);
  at::Tensor y = at::empty({g.batch, g.channels, g.out_h, g.out_w}, input.options().memory_format(fmt));
  if (y.numel() == 0) return y;

  PoolParams p{};
  fill_pool_geometry(p, "max_pool2d", g);

  const auto fits_int32 = [](const at::Tensor& t) {
    // Half the int32 range, so the grid-stride increment cannot overflow either.
    return t.numel() <= std::numeric_limits<int32_t>::max() / 2;
  };
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_max_pool2d_cuda", [&] {
    using T = device_t<scalar_t>;
    if (fmt == at::MemoryFormat::ChannelsLast && fits_int32(input) && fits_int32(y)) {
      const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
      constexpr int kVec = 16 / sizeof(T);
      const bool vec_ok = g.channels % kVec == 0 && aligned16(x.const_data_ptr()) && aligned16(y.const_data_ptr());
      const unsigned blocks = grid_stride_blocks(y.numel() / (vec_ok ? kVec : 1), kPoolThreads);
      if (vec_ok) {
        launch<max_pool2d_channels_last_kernel<T, kVec>>(dim3(blocks), dim3(kPoolThreads), 0, scope.stream(),
                                                         device_ptr<scalar_t>(x, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
      } else {
        launch<max_pool2d_channels_last_kernel<T, 1>>(dim3(blocks), dim3(kPoolThreads), 0, scope.stream(),
                                                      device_ptr<scalar_t>(x, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
      }
    } else if (fmt == at::MemoryFormat::Contiguous && input.is_contiguous() && fits_int32(input) && fits_int32(y)) {
      const unsigned blocks = grid_stride_blocks(y.numel(), kPoolThreads);
      launch<max_pool2d_nchw_kernel<T>>(dim3(blocks), dim3(kPoolThreads), 0, scope.stream(),
                                        device_ptr<scalar_t>(input, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    } else {
      // Any input strides, output in its own format, 64-bit indices.
      strides4(input, p.in_sn, p.in_sc, p.in_sh, p.in_sw);
      strides4(y, p.out_sn, p.out_sc, p.out_sh, p.out_sw);
      const unsigned blocks = grid_stride_blocks(y.numel(), kPoolThreads);
      launch<max_pool2d_strided_kernel<T>>(dim3(blocks), dim3(kPoolThreads), 0, scope.stream(),
                                           device_ptr<scalar_t>(input, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    }
  });
  return y;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("max_pool2d", &fastalex::cuda::max_pool2d_cuda);
}
