// Host side of the CUDA max_pool2d_lrn (max-pool, then LRN, in one kernel): checks, device guard,
// stream, dispatch, launch. (Also compiled by the host compiler for the emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

#include "common/op_checks.h"
#include "cuda/host_glue.h"
#include "cuda/lrn_pool_params.h"
#include "cuda/max_pool2d_lrn_kernel.cuh"

namespace fastalex {
namespace cuda {
namespace {

constexpr int kThreads = 256;

at::Tensor max_pool2d_lrn_cuda(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                               c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                               bool ceil_mode) {
  const PoolGeometry g =
      check_lrn_pool(false, input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode, /*half_ok=*/true);
  const DeviceScope scope(input);
  const auto fmt = kernel_memory_format(input);
  at::Tensor y = at::empty({g.batch, g.channels, g.out_h, g.out_w}, input.options().memory_format(fmt));
  if (y.numel() == 0) return y;

  // Any input strides (the kernel reads each input through them), output in the input's format.
  PoolLrnParams p{};
  fill_pool_geometry(p.pool, "max_pool2d_lrn", g);
  strides4(input, p.pool.in_sn, p.pool.in_sc, p.pool.in_sh, p.pool.in_sw);
  strides4(y, p.pool.out_sn, p.pool.out_sc, p.pool.out_sh, p.pool.out_sw);
  fill_lrn_coeffs(p.lrn, "max_pool2d_lrn", g.channels, size, alpha, beta, k);
  p.total_pixels = g.batch * g.out_h * g.out_w;
  const int64_t blocks = (p.total_pixels + kThreads - 1) / kThreads;
  TORCH_CHECK_VALUE(blocks <= std::numeric_limits<int>::max(), "fastalex.max_pool2d_lrn: input of shape ",
                    input.sizes(), " has too many output pixels for one launch");

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_max_pool2d_lrn_cuda", [&] {
    using T = device_t<scalar_t>;
    using A = typename Acc<T>::type;
    const size_t ring_bytes = static_cast<size_t>(size) * kThreads * sizeof(A);
    const dim3 grid(static_cast<unsigned>(blocks)), block(kThreads);
    if (ring_bytes <= kDefaultDynamicShared) {
      launch<max_pool2d_lrn_kernel<T, true>>(grid, block, ring_bytes, scope.stream(),
                                             device_ptr<scalar_t>(input, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    } else {
      launch<max_pool2d_lrn_kernel<T, false>>(grid, block, 0, scope.stream(),
                                              device_ptr<scalar_t>(input, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    }
  });
  return y;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("max_pool2d_lrn", &fastalex::cuda::max_pool2d_lrn_cuda);
}
