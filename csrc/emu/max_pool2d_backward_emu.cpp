// The CUDA max_pool2d_backward (host code and device code) built for the emulator: see cuda/host_glue.h.
#include "cuda/max_pool2d_backward_cuda.cu"
