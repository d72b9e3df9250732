// C entry points that run the planted kernels on the emulator (loaded with ctypes by
// tests/test_emu_planted.py; built by that test with the host compiler, no torch needed).
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
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

// Raw bytes of a launch's input (operands as f16/bf16/tf32 bits).
template <typename B>
const uint8_t* bits_buf(const std::vector<B>& v, const char* name) {
  return static_cast<const uint8_t*>(device_copy(v.data(), v.size() * sizeof(B), false, name));
}

std::vector<float> data(int n, int salt) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(((i * 37 + salt * 11) % 23) - 11) / 8.f;
  return v;
}

// The operand bits of the values v for an mma of kind Tag.
template <typename Tag>
std::vector<uint32_t> operand_words(const std::vector<float>& v) {
  std::vector<uint32_t> out;
  if constexpr (std::is_same_v<Tag, fastalex::cuda::MmaTF32>) {
    for (float f : v) {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      out.push_back(u);
    }
  } else {
    // pairs of 16-bit elements, the first in the low half
    for (size_t i = 0; i < v.size(); i += 2) {
      uint16_t lo, hi;
      if constexpr (std::is_same_v<Tag, fastalex::cuda::MmaF16>) {
        lo = __float2half_rn(v[i]).bits;
        hi = __float2half_rn(v[i + 1]).bits;
      } else {
        lo = __float2bfloat16_rn(v[i]).bits;
        hi = __float2bfloat16_rn(v[i + 1]).bits;
      }
      out.push_back(lo | (uint32_t(hi) << 16));
    }
  }
  return out;
}

// mma_single<Tag>: A = data(16 K, 6) (16 x K), B(k, n) = data(K 8, 7)[k * 8 + n], C = data(128, 8);
// only mv rows of A, and kv rows (f16/bf16) or nv rows of B^T (tf32) are in the buffers.
template <typename Tag>
void run_mma(int bug, std::vector<float>& result) {
  constexpr bool tf32 = std::is_same_v<Tag, fastalex::cuda::MmaTF32>;
  constexpr int K = tf32 ? 8 : 16, mv = 13, kv = tf32 ? 7 : 11, nv = 7;
  std::vector<float> a = data(16 * K, 6), b = data(K * 8, 7), c = data(128, 8);
  a.resize(mv * K);
  std::vector<float> b_stored;
  if (tf32) {
    for (int n = 0; n < nv; ++n)
      for (int k = 0; k < K; ++k) b_stored.push_back(b[k * 8 + n]);
  } else {
    b_stored.assign(b.begin(), b.begin() + kv * 8);
  }
  const std::vector<uint32_t> aw = operand_words<Tag>(a), bw = operand_words<Tag>(b_stored);
  result.assign(128, 0.f);
  launch<planted::mma_single<Tag>>(dim3(1), dim3(32), 256, bits_buf(aw, "a"), bits_buf(bw, "b"), in_buf(c, "c"),
                                   out_buf(result, "d"), mv, kv, nv, bug);
}

}  // namespace

// float32 bits -> TF32 bits through mma_primitives.cuh's to_tf32 (cvt.rna.tf32.f32).
extern "C" uint32_t planted_to_tf32(uint32_t bits) { return fastalex::cuda::to_tf32(bits); }

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
    } else if (n.rfind("mma_", 0) == 0) {
      // mma_{f16,bf16,tf32}[_<bug>]
      const std::string kind = n.substr(4, n.find('_', 4) == std::string::npos ? std::string::npos : n.find('_', 4) - 4);
      const std::string bug_name = n.size() > 4 + kind.size() ? n.substr(5 + kind.size()) : "";
      const int bug = bug_name == ""               ? planted::kMmaCorrect
                      : bug_name == "swap"         ? planted::kSwapFragment
                      : bug_name == "lane_missing" ? planted::kLaneMissing
                      : bug_name == "misaligned"   ? planted::kMisalignedRow
                      : bug_name == "outside"      ? planted::kRowOutside
                      : bug_name == "no_wait"      ? planted::kNoWait
                      : bug_name == "no_barrier"   ? planted::kNoBarrier
                      : bug_name == "lane_at_barrier"  ? planted::kLaneAtBarrier
                      : bug_name == "lane_at_syncwarp" ? planted::kLaneAtSyncwarp
                                                   : -1;
      if (bug < 0 || (kind != "f16" && kind != "bf16" && kind != "tf32")) {
        std::snprintf(err, errlen, "unknown planted case %s", name);
        return 2;
      }
      if (kind == "f16") run_mma<fastalex::cuda::MmaF16>(bug, result);
      if (kind == "bf16") run_mma<fastalex::cuda::MmaBF16>(bug, result);
      if (kind == "tf32") run_mma<fastalex::cuda::MmaTF32>(bug, result);
    } else if (n.rfind("copy_", 0) == 0) {
      const int bug = n == "copy_no_wait"           ? planted::kCopyNoWait
                      : n == "copy_overlap"         ? planted::kCopyOverlap
                      : n == "copy_source_past_end" ? planted::kCopySourcePastEnd
                      : n == "copy_left_in_flight"  ? planted::kCopyLeftInFlight
                      : n == "copy_misaligned"      ? planted::kCopyMisaligned
                                                    : planted::kCopyCorrect;
      std::vector<float> in = data(128, 9);
      result.assign(128, 0.f);
      launch<planted::cp_async_basics>(dim3(1), dim3(32), 1024, in_buf(in, "in"), out_buf(result, "out"), bug);
    } else if (n.rfind("pipe_", 0) == 0) {
      // pipelined_gemm on 2 warps (pipe_ok) or 1 (pipe_ok_1warp and the bugs: one warp makes
      // which of two errors comes first independent of the schedule)
      const int M = 45, N = 24, K = 88;
      const int bug = n == "pipe_stage"   ? planted::kStageOffByOne
                      : n == "pipe_wait"  ? planted::kWaitTooFew
                      : n == "pipe_early" ? planted::kIssueBeforeBarrier
                                          : planted::kPipelineCorrect;
      const int warps = n == "pipe_ok" ? 2 : 1, bm = 16 * warps;
      std::vector<__half> a, b;
      for (float v : data(M * K, 10)) a.push_back(__float2half_rn(v));
      for (float v : data(K * N, 11)) b.push_back(__float2half_rn(v));
      result.assign(M * N, 0.f);
      const size_t smem = planted::kStages * (bm * 32 + 16 * 32);
      launch<planted::pipelined_gemm>(dim3((N + 15) / 16, (M + bm - 1) / bm), dim3(32 * warps), smem,
                                      static_cast<const __half*>(device_copy(a.data(), a.size() * 2, false, "a")),
                                      static_cast<const __half*>(device_copy(b.data(), b.size() * 2, false, "b")),
                                      out_buf(result, "c"), M, N, K, bug);
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
