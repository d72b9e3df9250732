// The fastalex operator library: every schema is defined here, in one TORCH_LIBRARY block
// (the strings live in common/schemas.h, shared with the emulator's library). Backends
// register their kernels beside their code (cpu/*.cpp, cuda/*.cu) with TORCH_LIBRARY_IMPL;
// Python adds fake (meta) kernels and autograd in fastalex/ops/.
#include <Python.h>
#include <torch/library.h>

#include "common/schemas.h"
#include "cpu/buffer_pool.h"
#include "cpu/conv2d_winograd_avx512.h"
#include "cpu/multiversion.h"

// Importing fastalex._C runs the static registrations below; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "fastalex kernels (registered as torch.ops.fastalex.*)", -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(fastalex, m) {
  fastalex::schemas::define_all_ops(m);
  // The CPU fast-path switch (cpu/multiversion.h): fastalex.cpu_fastpath() in Python.
  m.def("set_cpu_fastpath(bool enabled) -> bool", &fastalex::cpu::set_cpu_fastpath);
  m.def("cpu_fastpath_enabled() -> bool", &fastalex::cpu::cpu_fastpath_enabled);
  // The benchmark's CPU compute ceiling (cpu/fma_peak.cpp): float32 FLOP/s of a register-only
  // FMA loop on torch's intra-op threads, measured over about `seconds`.
  m.def("cpu_fma_peak(float seconds) -> float", &fastalex::cpu::cpu_fma_peak);
  // How many CPU convolutions Winograd has computed in this process (cpu/conv2d_winograd_avx512.h;
  // FASTALEX_CPU_CONV=direct|winograd chooses the algorithm).
  m.def("cpu_winograd_calls() -> int", &fastalex::cpu::winograd_calls);
  // The CPU ops' buffer pool (cpu/buffer_pool.h): bytes held for reuse, their release to the
  // OS, and a float32 tensor allocated as the ops allocate their outputs.
  m.def("cpu_pool_bytes() -> int", &fastalex::cpu::pool_cached_bytes);
  m.def("cpu_pool_release() -> int", &fastalex::cpu::pool_release);
  m.def("cpu_pool_empty(int[] size) -> Tensor", [](c10::IntArrayRef size) {
    return fastalex::cpu::pooled_empty(size, at::TensorOptions().dtype(at::kFloat));
  });
  // Whether this build holds the CUDA kernels (they are compiled without needing a GPU).
  m.def("built_with_cuda() -> bool", []() -> bool {
#ifdef FASTALEX_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
