// fastalex._emu: the CUDA ops' host and device code (csrc/cuda/*.cu and *_kernel.cuh),
// compiled by the host compiler with FASTALEX_EMU and run on the SIMT emulator for CPU
// tensors, as torch.ops.fastalex_emu.<op> (same schemas as torch.ops.fastalex.<op>).
// Python front end: fastalex/emu.py.
#include <Python.h>
#include <torch/library.h>

#include <ATen/ops/empty.h>

#include <string>
#include <vector>

#include "common/op_checks.h"
#include "common/schemas.h"
#include "cuda/lrn_pool_params.h"
#include "cuda/lrn_pool_tiling.h"
#include "emu/runtime.h"

PyMODINIT_FUNC PyInit__emu(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_emu", "fastalex CUDA kernels on the CPU SIMT emulator (torch.ops.fastalex_emu.*)", -1,
      nullptr};
  return PyModule_Create(&module_def);
}

namespace {

void configure(const std::string& schedule, int64_t seed, const std::string& guard, int64_t workers,
               int64_t sm_count) {
  using fastalex_emu::Schedule;
  auto& c = fastalex_emu::config();
  if (schedule == "ascending") {
    c.schedule = Schedule::kAscending;
  } else if (schedule == "descending") {
    c.schedule = Schedule::kDescending;
  } else if (schedule == "random") {
    c.schedule = Schedule::kRandom;
  } else if (schedule == "warp_random") {
    c.schedule = Schedule::kWarpRandom;
  } else {
    TORCH_CHECK_VALUE(false, "fastalex.emu: schedule must be ascending, descending, random or warp_random, got '",
                      schedule, "'");
  }
  TORCH_CHECK_VALUE(guard == "start" || guard == "end", "fastalex.emu: guard must be 'start' or 'end', got '", guard,
                    "'");
  TORCH_CHECK_VALUE(workers >= 1 && workers <= 256, "fastalex.emu: workers must be in [1, 256], got ", workers);
  TORCH_CHECK_VALUE(sm_count >= 1 && sm_count <= 1024, "fastalex.emu: sm_count must be in [1, 1024], got ", sm_count);
  c.seed = static_cast<uint64_t>(seed);
  c.guard_at_start = guard == "start";
  c.workers = static_cast<int>(workers);
  c.sm_count = static_cast<int>(sm_count);
}

std::vector<std::string> launched_kernels() {
  auto& r = fastalex_emu::registry();
  std::lock_guard<std::mutex> g(r.mu);
  return std::vector<std::string>(r.launched.begin(), r.launched.end());
}

int64_t launch_count() {
  auto& r = fastalex_emu::registry();
  std::lock_guard<std::mutex> g(r.mu);
  return r.launches;
}

// The tile lrn_max_pool2d's host code chooses for an (H, W) input, and what its blocks read:
// [tile_h, tile_w, tiles_h, tiles_w, input pixels of the largest tile, input pixels read per
// sample and channel, output pixels per sample and channel]; tile_h == 0: no tile fits a block.
std::vector<int64_t> lrn_pool_tiling(c10::IntArrayRef input_hw, c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                     c10::IntArrayRef padding, bool ceil_mode) {
  TORCH_CHECK_VALUE(input_hw.size() == 2, "fastalex.emu.lrn_pool_tiling: input_hw must have 2 elements (h, w)");
  const at::Tensor shape_only = at::empty({1, 1, input_hw[0], input_hw[1]}, at::TensorOptions().device(at::kMeta));
  const int64_t no_dilation[2] = {1, 1};
  const fastalex::PoolGeometry g =
      fastalex::check_max_pool2d(shape_only, kernel_size, stride, padding, no_dilation, ceil_mode);
  fastalex::cuda::PoolParams q{};
  fastalex::cuda::fill_pool_geometry(q, "lrn_pool_tiling", g);
  const fastalex::cuda::LrnPoolTiling t = fastalex::cuda::choose_lrn_pool_tiling(q);
  return {t.tile_h, t.tile_w, t.tiles_h, t.tiles_w, t.tile_pixels, t.pixels_read, g.out_h * g.out_w};
}

}  // namespace

TORCH_LIBRARY(fastalex_emu, m) {
  fastalex::schemas::define_kernel_ops(m);
  m.def("configure(str schedule, int seed, str guard, int workers, int sm_count) -> ()", &configure);
  m.def("launched_kernels() -> str[]", &launched_kernels);
  m.def("launch_count() -> int", &launch_count);
  m.def("lrn_pool_tiling(int[2] input_hw, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode) -> int[]",
        &lrn_pool_tiling);
}
