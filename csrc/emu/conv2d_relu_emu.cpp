// The CUDA conv2d_relu (host code and device code) built for the emulator: see cuda/host_glue.h.
#include "cuda/conv2d_relu_cuda.cu"
