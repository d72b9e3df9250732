// Host side of the CUDA lrn_max_pool2d (LRN, then max-pool): checks, device guard, stream, the
// route (this op's two kernels in turn by default, the one-kernel path on request: see
// fused_kernel_chosen), tiling, dispatch, launch. (Also compiled by the host compiler for the
// emulator: see host_glue.h.)
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>

#include "common/op_checks.h"
#include "cuda/host_glue.h"
#include "cuda/lrn_max_pool2d_kernel.cuh"
#include "cuda/lrn_pool_params.h"
#include "cuda/lrn_pool_tiling.h"

namespace fastalex {
namespace cuda {
namespace {

// The rings and LRN buffers of one block take at most this (double at the networks' size 5:
// 56 KiB, past the 48 KiB default, hence the opt-in), so that two blocks fit an sm_80 SM's
// 164 KiB; beyond it the kernel re-reads the old values from global memory instead.
constexpr size_t kRingSharedLimit = 80 * 1024;

// This op's LRN and max-pool kernels one after the other (two launches): the default (see
// fused_kernel_chosen), and for a pooling window of more than kLrnPoolTilePixels taps (never in
// the networks), which fits no block.
at::Tensor unfused(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                   c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding, bool ceil_mode) {
  static const auto lrn = c10::Dispatcher::singleton()
                              .findSchemaOrThrow((std::string(kOpLibrary) + "::local_response_norm").c_str(), "")
                              .typed<at::Tensor(const at::Tensor&, int64_t, double, double, double)>();
  static const auto pool = c10::Dispatcher::singleton()
                               .findSchemaOrThrow((std::string(kOpLibrary) + "::max_pool2d").c_str(), "")
                               .typed<at::Tensor(const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef,
                                                 c10::IntArrayRef, c10::IntArrayRef, bool)>();
  const int64_t no_dilation[2] = {1, 1};
  return pool.call(lrn.call(input, size, alpha, beta, k), kernel_size, stride, padding, no_dilation, ceil_mode);
}

// Whether the one-kernel path runs (FASTALEX_LRN_POOL_CUDA=fused) or this op's LRN and max-pool
// kernels one after the other (unset or "unfused": the default). Measured on an H200 (batch
// 128, NCHW, float16 and float32+TF32: benchmarks/results/README.md), the fused kernel took
// 4.6-5.3x as long as the two kernels in turn on all three LRN -> pool shapes of the networks
// (likely cause, not measured: 146-164 registers leave one block of 8 warps per SM, which waits
// at a barrier per channel). Both give the same results bit for bit (the fused kernel rounds
// the LRN to T before pooling). Read on every call, so that one process can time both (set it
// before a CUDA graph is captured: a replay keeps the captured route).
bool fused_kernel_chosen() {
  const char* v = std::getenv("FASTALEX_LRN_POOL_CUDA");
  if (v == nullptr || *v == '\0' || std::string(v) == "unfused") return false;
  TORCH_CHECK_VALUE(std::string(v) == "fused", "fastalex.lrn_max_pool2d: FASTALEX_LRN_POOL_CUDA must be \"fused\" or ",
                    "\"unfused\" (or unset), got \"", v, "\"");
  return true;
}

at::Tensor lrn_max_pool2d_cuda(const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                               c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                               bool ceil_mode) {
  const PoolGeometry g =
      check_lrn_pool(true, input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode, /*half_ok=*/true);
  const bool fused = fused_kernel_chosen();  // checked on every call, whatever the route
  const DeviceScope scope(input);
  const auto options = input.options().memory_format(kernel_memory_format(input));
  if (g.batch == 0 || g.channels == 0 || g.out_h == 0 || g.out_w == 0)
    return at::empty({g.batch, g.channels, g.out_h, g.out_w}, options);
  if (!fused) return unfused(input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode);

  LrnMaxPoolParams p{};
  fill_pool_geometry(p.pool, "lrn_max_pool2d", g);
  const LrnPoolTiling tiling = choose_lrn_pool_tiling(p.pool);
  if (tiling.tile_h == 0) return unfused(input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode);
  at::Tensor y = at::empty({g.batch, g.channels, g.out_h, g.out_w}, options);

  // Any input strides (each input is read through them), output in the input's format.
  strides4(input, p.pool.in_sn, p.pool.in_sc, p.pool.in_sh, p.pool.in_sw);
  strides4(y, p.pool.out_sn, p.pool.out_sc, p.pool.out_sh, p.pool.out_sw);
  fill_lrn_coeffs(p.lrn, "lrn_max_pool2d", g.channels, size, alpha, beta, k);
  p.tile_h = tiling.tile_h;
  p.tile_w = tiling.tile_w;
  p.tiles_w = tiling.tiles_w;
  p.tiles_per_sample = tiling.tiles_h * tiling.tiles_w;
  p.tile_pixels = static_cast<int>(tiling.tile_pixels);
  // One input pixel per thread up to kLrnPoolThreads, then up to kLrnPoolSlots each.
  const int threads = static_cast<int>(std::min<int64_t>(kLrnPoolThreads, (tiling.tile_pixels + 31) / 32 * 32));
  p.slots = (p.tile_pixels + threads - 1) / threads;
  const int64_t blocks = g.batch * p.tiles_per_sample;
  TORCH_CHECK_VALUE(blocks <= std::numeric_limits<int>::max(), "fastalex.lrn_max_pool2d: input of shape ",
                    input.sizes(), " has too many tiles for one launch");

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_lrn_max_pool2d_cuda", [&] {
    using T = device_t<scalar_t>;
    using A = typename Acc<T>::type;
    const size_t lrn_bytes = 2 * static_cast<size_t>(p.tile_pixels) * sizeof(A);
    const size_t ring_bytes = static_cast<size_t>(size) * p.slots * threads * sizeof(A);
    const dim3 grid(static_cast<unsigned>(blocks)), block(threads);
    if (lrn_bytes + ring_bytes <= kRingSharedLimit) {
      const size_t bytes = lrn_bytes + ring_bytes;
      set_max_dynamic_shared(lrn_max_pool2d_kernel<T, true>, static_cast<int>(bytes));
      launch<lrn_max_pool2d_kernel<T, true>>(grid, block, bytes, scope.stream(), device_ptr<scalar_t>(input, "input"),
                                             device_mut_ptr<scalar_t>(y, "output"), p);
    } else {
      launch<lrn_max_pool2d_kernel<T, false>>(grid, block, lrn_bytes, scope.stream(),
                                              device_ptr<scalar_t>(input, "input"), device_mut_ptr<scalar_t>(y, "output"), p);
    }
  });
  return y;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("lrn_max_pool2d", &fastalex::cuda::lrn_max_pool2d_cuda);
}
