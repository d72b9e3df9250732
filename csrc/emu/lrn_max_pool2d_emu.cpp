// The CUDA lrn_max_pool2d (host code and device code) built for the emulator: see cuda/host_glue.h.
#include "cuda/lrn_max_pool2d_cuda.cu"
