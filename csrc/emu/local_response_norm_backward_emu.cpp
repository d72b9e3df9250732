// The CUDA local_response_norm_backward (host code and device code) built for the emulator: see cuda/host_glue.h.
#include "cuda/local_response_norm_backward_cuda.cu"
