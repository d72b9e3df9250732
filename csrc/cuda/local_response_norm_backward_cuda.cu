// Host side of the CUDA LRN gradient: checks, device guard, stream, dispatch, launch.
// (Also compiled by the host compiler for the emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

#include "common/op_checks.h"
#include "cuda/host_glue.h"
#include "cuda/local_response_norm_backward_kernel.cuh"
#include "cuda/lrn_pool_params.h"

namespace fastalex {
namespace cuda {
namespace {

constexpr int kMaxThreads = 256, kMinThreads = 32;

at::Tensor local_response_norm_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                             const at::Tensor& output, int64_t size, double alpha, double beta,
                                             double k) {
  const char* op = "local_response_norm_backward";
  check_local_response_norm_backward(grad_output, input, output, size, alpha, beta, k);
  check_float_dtype(op, "input", input, /*half_ok=*/true);
  const DeviceScope scope(input);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor g = grad_output.contiguous(fmt), x = input.contiguous(fmt), y = output.contiguous(fmt);
  at::Tensor dx = at::empty(x.sizes(), x.options().memory_format(fmt));
  if (x.numel() == 0) return dx;

  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  TORCH_CHECK_VALUE(C + size <= std::numeric_limits<int>::max(), "fastalex.", op, ": input of shape ", input.sizes(),
                    " has too many channels for the CUDA kernel's 32-bit channel indices");
  LrnBackwardParams p{};
  fill_lrn_coeffs(p, op, C, size, alpha, beta, k);
  p.coef = 2.0 * alpha * beta / static_cast<double>(size);
  p.pixels_per_sample = S;
  p.total_pixels = N * S;
  const bool channels_last = fmt == at::MemoryFormat::ChannelsLast;
  p.stride_n = C * S;
  p.stride_c = channels_last ? 1 : S;
  p.stride_s = channels_last ? C : 1;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastalex_lrn_backward_cuda", [&] {
    using T = device_t<scalar_t>;
    using acc_t = at::opmath_type<scalar_t>;  // float for half types, as Acc<T>
    using A = typename Acc<T>::type;
    // Three rings of `size` slots per thread; fewer threads per block where 256 threads' rings
    // do not fit in shared memory.
    int threads = kMaxThreads;
    const auto ring_bytes = [&](int n) { return 3 * static_cast<size_t>(size) * n * sizeof(A); };
    while (threads > kMinThreads && ring_bytes(threads) > kDefaultDynamicShared) threads /= 2;
    const int64_t blocks = (p.total_pixels + threads - 1) / threads;
    TORCH_CHECK_VALUE(blocks <= std::numeric_limits<int>::max(), "fastalex.", op, ": input of shape ",
                      input.sizes(), " has too many pixels for one launch");
    const dim3 grid(static_cast<unsigned>(blocks)), block(threads);
    if (ring_bytes(threads) <= kDefaultDynamicShared) {
      launch<local_response_norm_backward_kernel<T, true>>(
          grid, block, ring_bytes(threads), scope.stream(), device_ptr<scalar_t>(g, "grad_output"),
          device_ptr<scalar_t>(x, "input"), device_ptr<scalar_t>(y, "output"),
          device_mut_ptr<scalar_t>(dx, "grad_input"), static_cast<A*>(nullptr), p);
    } else {
      at::Tensor rings = at::empty({3 * size, p.total_pixels}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
      launch<local_response_norm_backward_kernel<T, false>>(
          grid, block, 0, scope.stream(), device_ptr<scalar_t>(g, "grad_output"), device_ptr<scalar_t>(x, "input"),
          device_ptr<scalar_t>(y, "output"), device_mut_ptr<scalar_t>(dx, "grad_input"),
          device_mut_ptr<acc_t>(rings, "the rings"), p);
    }
  });
  return dx;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("local_response_norm_backward", &fastalex::cuda::local_response_norm_backward_cuda);
}
