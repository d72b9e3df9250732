// Host side of the CUDA LRN: checks, device guard, stream, dispatch, launch.
// (Also compiled by the host compiler for the emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

#include "common/op_checks.h"
#include "cuda/host_glue.h"
#include "cuda/local_response_norm_kernel.cuh"
#include "cuda/lrn_pool_params.h"

namespace fastalex {
namespace cuda {
namespace {

constexpr int kLrnThreads = 256;

at::Tensor local_response_norm_cuda(const at::Tensor& input, int64_t size, double alpha, double beta,
                                    double k) {
  check_local_response_norm(input, size, alpha, beta, k);
  check_float_dtype("local_response_norm", "input", input, /*half_ok=*/true);
  const DeviceScope scope(input);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(fmt));
  if (x.numel() == 0) return y;

  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  LrnParams p{};
  fill_lrn_coeffs(p, "local_response_norm", C, size, alpha, beta, k);
  p.pixels_per_sample = S;
  p.total_pixels = N * S;
  const bool channels_last = fmt == at::MemoryFormat::ChannelsLast;
  p.stride_n = C * S;
  p.stride_c = channels_last ? 1 : S;
  p.stride_s = channels_last ? C : 1;

  const int64_t blocks = (p.total_pixels + kLrnThreads - 1) / kLrnThreads;
  TORCH_CHECK_VALUE(blocks <= std::numeric_limits<int>::max(), "fastalex.local_response_norm: input of shape ",
                    input.sizes(), " has too many pixels for one launch");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastalex_lrn_cuda", [&] {
    using T = device_t<scalar_t>;
    using A = typename Acc<T>::type;
    const size_t ring_bytes = static_cast<size_t>(size) * kLrnThreads * sizeof(A);
    const dim3 grid(static_cast<unsigned>(blocks)), block(kLrnThreads);
    if (ring_bytes <= kDefaultDynamicShared) {
      launch<local_response_norm_kernel<T, true>>(grid, block, ring_bytes, scope.stream(),
                                                  device_ptr<scalar_t>(x, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    } else {
      launch<local_response_norm_kernel<T, false>>(grid, block, 0, scope.stream(),
                                                   device_ptr<scalar_t>(x, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    }
  });
  return y;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("local_response_norm", &fastalex::cuda::local_response_norm_cuda);
}
