// Runs conv2d_relu_mma_kernel (float16, 64x64 tile, 16-byte loader) on the emulator without
// torch, for tests/test_conv2d_relu_mma_mutants.py. That test compiles this file once per
// mutant, with a mutated copy of the kernel header first on the include path.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

#include "cuda/conv2d_relu_mma_kernel.cuh"

using fastalex::cuda::MmaConvParams;
using fastalex::cuda::MmaTile64x64;

// x: NHWC [n][h][w][c], wt: [oc][kh][kw][c], bias: [oc]; y: NHWC [n][oh][ow][oc] (floats,
// rounded to float16 on the way in and widened on the way out). Returns 0, or 1 with the
// emulator's message in err.
extern "C" int run_conv(const float* x, const float* wt, const float* bias, float* y, int n, int c, int h, int w,
                        int oc, int k, int stride, int pad, const char* schedule, uint64_t seed, char* err, int errlen) {
  auto& cfg = fastalex_emu::config();
  cfg.schedule = std::strcmp(schedule, "descending") == 0    ? fastalex_emu::Schedule::kDescending
                 : std::strcmp(schedule, "warp_random") == 0 ? fastalex_emu::Schedule::kWarpRandom
                 : std::strcmp(schedule, "random") == 0      ? fastalex_emu::Schedule::kRandom
                                                             : fastalex_emu::Schedule::kAscending;
  cfg.seed = seed;
  cfg.workers = 2;
  const int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const int K = k * k * c;
  std::vector<__half> hx(size_t(n) * h * w * c), hw(size_t(oc) * K), hb(oc), hy(size_t(n) * oh * ow * oc);
  for (size_t i = 0; i < hx.size(); ++i) hx[i] = __float2half_rn(x[i]);
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = __float2half_rn(wt[i]);
  for (int i = 0; i < oc; ++i) hb[i] = __float2half_rn(bias[i]);
  MmaConvParams p{};
  p.batch = n;
  p.in_h = h;
  p.in_w = w;
  p.out_h = oh;
  p.out_w = ow;
  p.in_channels_per_group = c;
  p.out_channels_per_group = oc;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = 1;
  p.K = p.K_padded = K;
  p.pixels = int64_t(n) * oh * ow;
  p.in_sn = int64_t(h) * w * c;
  p.in_sc = 1;
  p.in_sh = int64_t(w) * c;
  p.in_sw = c;
  p.out_sn = int64_t(oh) * ow * oc;
  p.out_sc = 1;
  p.out_sh = int64_t(ow) * oc;
  p.out_sw = oc;
  p.vector_store = oc % 8 == 0;
  using Tile = MmaTile64x64;
  constexpr auto kernel = fastalex::cuda::conv2d_relu_mma_kernel<__half, Tile, true>;
  const int smem = fastalex::cuda::mma_conv_smem_bytes<Tile, __half>();
  const dim3 grid(unsigned((p.pixels + Tile::BM - 1) / Tile::BM), unsigned((oc + Tile::BN - 1) / Tile::BN), 1);
  try {
    fastalex_emu::launch<kernel>(
        grid, dim3(Tile::kThreads), smem,
        static_cast<const __half*>(fastalex_emu::device_copy(hx.data(), hx.size() * 2, false, "input")),
        static_cast<const __half*>(fastalex_emu::device_copy(hw.data(), hw.size() * 2, false, "weight")),
        static_cast<const __half*>(fastalex_emu::device_copy(hb.data(), hb.size() * 2, false, "bias")),
        static_cast<__half*>(fastalex_emu::device_copy(hy.data(), hy.size() * 2, true, "output")), p);
  } catch (const std::exception& e) {
    std::snprintf(err, errlen, "%s", e.what());
    fastalex_emu::pending_buffers().buffers.clear();
    return 1;
  }
  for (size_t i = 0; i < hy.size(); ++i) y[i] = __half2float(hy[i]);
  return 0;
}
