// A C entry point that runs the CUDA LRN kernel's device code in ring mode (the per-thread
// ring in dynamic shared memory) on the emulator, configured as csrc/cuda/local_response_norm_cuda.cu
// configures it for a contiguous NCHW float tensor. The kernel header is LRN_KERNEL (a quoted
// path given on the command line), so tests/test_emu_planted.py can build it from a mutated
// copy of csrc/cuda/local_response_norm_kernel.cuh as well as from the real one.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>

#include "cuda/device_common.cuh"
#include "runner_common.h"
#include LRN_KERNEL

// y = local_response_norm(x) for x of shape (n, c, s), contiguous. Returns 0, or 1 with the
// emulator's error message in `err`.
extern "C" int run_lrn(const char* schedule, uint64_t seed, int n, int c, int s, int size, double alpha, double beta,
                       double k, const float* x, float* y, char* err, int errlen) {
  planted_runner::configure(schedule, seed, 0);
  using fastalex::cuda::LrnParams;
  LrnParams p{};
  p.pixels_per_sample = s;
  p.total_pixels = int64_t(n) * s;
  p.channels = c;
  p.stride_n = int64_t(c) * s;
  p.stride_c = s;
  p.stride_s = 1;
  p.size = size;
  p.pre = size / 2;
  p.post = (size - 1) / 2;
  p.alpha_over_size = alpha / size;
  p.beta = beta;
  p.k = k;
  p.beta_mode = beta == 0.75 ? 1 : beta == 0.5 ? 2 : beta == 1.0 ? 3 : beta == -0.5 ? 4 : 0;
  constexpr int kThreads = 256;  // as local_response_norm_cuda.cu launches it
  const size_t bytes = size_t(n) * c * s * sizeof(float);
  try {
    fastalex_emu::launch<fastalex::cuda::local_response_norm_kernel<float, true>>(
        dim3(unsigned((p.total_pixels + kThreads - 1) / kThreads)), dim3(kThreads), size_t(size) * kThreads * sizeof(float),
        static_cast<const float*>(fastalex_emu::device_copy(x, bytes, false, "input")),
        static_cast<float*>(fastalex_emu::device_copy(y, bytes, true, "output")), p);
  } catch (const std::exception& e) {
    std::snprintf(err, errlen, "%s", e.what());
    fastalex_emu::pending_buffers().buffers.clear();
    return 1;
  }
  return 0;
}
