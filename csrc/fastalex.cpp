// The fastalex operator library: every schema lives here, in one TORCH_LIBRARY block.
// Backends register their kernels beside their code (cpu/*.cpp, cuda/*.cu) with
// TORCH_LIBRARY_IMPL; Python adds fake (meta) kernels and autograd in fastalex/ops/.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing fastalex._C runs the static registrations below; the module itself is empty.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "fastalex kernels (registered as torch.ops.fastalex.*)", -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(fastalex, m) {
  // relu(conv2d(input, weight, bias, stride, padding, dilation=1, groups)); output in the
  // input's memory format.
  m.def("conv2d_relu(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int groups) -> Tensor");
  // F.local_response_norm: input / (k + alpha / size * sum of squares over the channel window)^beta.
  m.def("local_response_norm(Tensor input, int size, float alpha, float beta, float k) -> Tensor");
  // F.max_pool2d with dilation 1 and no indices.
  m.def("max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode) -> Tensor");
  // Whether this build holds the CUDA kernels (they are compiled without needing a GPU).
  m.def("built_with_cuda() -> bool", []() -> bool {
#ifdef FASTALEX_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
