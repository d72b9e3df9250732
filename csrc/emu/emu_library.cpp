// fastalex._emu: the CUDA ops' host and device code (csrc/cuda/*.cu and *_kernel.cuh),
// compiled by the host compiler with FASTALEX_EMU and run on the SIMT emulator for CPU
// tensors, as torch.ops.fastalex_emu.<op> (same schemas as torch.ops.fastalex.<op>).
// Python front end: fastalex/emu.py.
#include <Python.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "common/schemas.h"
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

}  // namespace

TORCH_LIBRARY(fastalex_emu, m) {
  fastalex::schemas::define_kernel_ops(m);
  m.def("configure(str schedule, int seed, str guard, int workers, int sm_count) -> ()", &configure);
  m.def("launched_kernels() -> str[]", &launched_kernels);
}
