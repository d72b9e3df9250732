// C entry points that run the planted kernels on the emulator (loaded with ctypes by
// tests/test_emu_planted.py; built by that test with the host compiler, no torch needed).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "planted_kernels.cuh"
#include "runner_common.h"

namespace {

using fastalex_emu::device_copy;
using fastalex_emu::launch;
using planted_runner::configure;

float* in_buf(const std::vector<float>& v, const char* name) {
  return static_cast<float*>(device_copy(v.data(), v.size() * sizeof(float), false, name));
}
float* out_buf(std::vector<float>& v, const char* name) {
  return static_cast<float*>(device_copy(v.data(), v.size() * sizeof(float), true, name));
}

std::vector<float> data(int n, int salt) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(((i * 37 + salt * 11) % 23) - 11) / 8.f;
  return v;
}

}  // namespace

// Runs planted case `name`; its output goes to `out` (capacity `cap` floats). Returns 0, or 1
// with the emulator's error message in `err`.
extern "C" int run_planted(const char* name, const char* schedule, uint64_t seed, int guard_at_start, float* out,
                           int cap, char* err, int errlen) {
  configure(schedule, seed, guard_at_start);
  const std::string n = name;
  std::vector<float> result;
  try {
    if (n.rfind("gemm", 0) == 0) {
      const int M = 37, N = 29, K = 45;  // partial tiles everywhere
      const int bug = n == "gemm_missing_first_sync" ? 1 : n == "gemm_missing_second_sync" ? 2 : 0;
      std::vector<float> a = data(M * K, 1), b = data(K * N, 2);
      result.assign(M * N, 0.f);
      launch<planted::tiled_gemm>(dim3((N + 15) / 16, (M + 15) / 16), dim3(16, 16), 0, in_buf(a, "a"), in_buf(b, "b"),
                                  out_buf(result, "c"), M, N, K, bug);
    } else if (n == "divergent_barrier" || n == "early_return" || n == "shared_oob") {
      std::vector<float> in = data(64, 3);
      result.assign(64, 0.f);
      auto* k = n == "divergent_barrier" ? planted::divergent_barrier
                : n == "early_return"    ? planted::early_return
                                         : planted::shared_oob;
      if (k == planted::divergent_barrier)
        launch<planted::divergent_barrier>(dim3(1), dim3(64), 0, in_buf(in, "in"), out_buf(result, "out"), 64);
      else if (k == planted::early_return)
        launch<planted::early_return>(dim3(1), dim3(64), 0, in_buf(in, "in"), out_buf(result, "out"), 64);
      else
        launch<planted::shared_oob>(dim3(1), dim3(64), 0, in_buf(in, "in"), out_buf(result, "out"), 64);
    } else if (n == "global_oob_past_end" || n == "global_oob_before_start") {
      const int count = 300;
      std::vector<float> in = data(count, 4);
      result.assign(count, 0.f);
      const int shift = n == "global_oob_past_end" ? 1 : -1;
      launch<planted::global_oob_read>(dim3(3), dim3(128), 0, in_buf(in, "in"), out_buf(result, "out"), count, shift);
    } else if (n == "warp_sum" || n == "warp_half_shuffle") {
      std::vector<float> in = data(96, 5);
      result.assign(6, 0.f);
      launch<planted::warp_sum>(dim3(1), dim3(96), 0, in_buf(in, "in"), out_buf(result, "out"), n == "warp_sum" ? 0 : 1);
    } else if (n == "warp_deadlock") {
      result.assign(64, 0.f);
      launch<planted::warp_deadlock>(dim3(1), dim3(64), 0, out_buf(result, "out"));
    } else if (n.rfind("dynamic_shared", 0) == 0 || n.rfind("launch_", 0) == 0) {
      // dynamic_shared_{poison,oob,ok}: 32 threads, 32 floats of dynamic shared memory.
      // launch_*: launches a GPU would refuse.
      result.assign(32, 0.f);
      const int mode = n == "dynamic_shared_poison" ? 0 : n == "dynamic_shared_oob" ? 1 : 2;
      dim3 grid(1), block(32);
      size_t smem = 32 * sizeof(float);
      if (n == "launch_1025_threads") block = dim3(1025);
      if (n == "launch_grid_y_65536") grid = dim3(1, 65536);
      if (n == "launch_64k_dynamic_shared" || n == "launch_64k_dynamic_shared_opted_in") smem = 64 * 1024;
      if (n == "launch_228k_dynamic_shared") smem = 228 * 1024;
      // The opt-in persists per kernel, as on a GPU: set it for every case.
      const bool opt_in = n == "launch_64k_dynamic_shared_opted_in" || n == "launch_228k_dynamic_shared";
      cudaFuncSetAttribute(planted::dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, opt_in ? 228 * 1024 : 0);
      launch<planted::dynamic_shared>(grid, block, smem, out_buf(result, "out"), 32, mode);
    } else if (n == "shared_ptr_ok" || n == "shared_ptr_before_start") {
      result.assign(32, 0.f);
      launch<planted::shared_ptr_arithmetic>(dim3(1), dim3(32), 64 * sizeof(float), out_buf(result, "out"),
                                             n == "shared_ptr_ok" ? 0 : 1);
    } else {
      std::snprintf(err, errlen, "unknown planted case %s", name);
      return 2;
    }
  } catch (const std::exception& e) {
    std::snprintf(err, errlen, "%s", e.what());
    fastalex_emu::pending_buffers().buffers.clear();
    return 1;
  }
  const int m = static_cast<int>(result.size()) < cap ? static_cast<int>(result.size()) : cap;
  std::memcpy(out, result.data(), m * sizeof(float));
  return 0;
}
