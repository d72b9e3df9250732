// Helpers for fastalex device code. Kernel headers (*_kernel.cuh) include only CUDA headers
// and this file -- never torch -- so the same device source also compiles with the host
// compiler for the SIMT emulator (FASTALEX_EMU, csrc/emu/), which runs it on the CPU.
#pragma once

#ifdef FASTALEX_EMU
#include "emu/cuda_compat.h"
#else
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#include <cstdint>

#define FA_DEVICE __device__ __forceinline__
#define FA_HOST_DEVICE __host__ __device__ __forceinline__

// Shared memory is declared only through these macros, so the emulator can give each block
// its own poisoned, bounds-checked and race-checked copy:
//   FA_SHARED_ARRAY(float, tile, [16][64]);   // static: __shared__ float tile[16][64];
//   FA_DYNAMIC_SHARED(float, smem);           // dynamic: float* smem (size set at launch)
//   FA_SHARED_PTR(float) p = smem + 4;        // a variable pointing into dynamic shared memory
// (Under the emulator the dynamic pointer is a SharedPtr<float>, which checks every access.)
#ifdef FASTALEX_EMU
#define FA_SHARED_ARRAY(type, name, dims)            \
  static const char fa_shared_key_##name = 0;        \
  const auto name = ::fastalex_emu::block_shared<type dims>(&fa_shared_key_##name, #name)
#define FA_DYNAMIC_SHARED(type, name) ::fastalex_emu::SharedPtr<type> name = ::fastalex_emu::dynamic_shared<type>()
#define FA_SHARED_PTR(type) ::fastalex_emu::SharedPtr<type>
#else
#define FA_SHARED_ARRAY(type, name, dims) __shared__ type name dims
#define FA_DYNAMIC_SHARED(type, name)                                \
  extern __shared__ __align__(16) unsigned char fa_dynamic_smem_[]; \
  type* name = reinterpret_cast<type*>(fa_dynamic_smem_)
#define FA_SHARED_PTR(type) type*
#endif

namespace fastalex {
namespace cuda {

// Accumulation type: float for float/half/bfloat16, double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

// Explicit conversions: torch builds extensions with __CUDA_NO_HALF_CONVERSIONS__.
FA_DEVICE float to_acc(float v) { return v; }
FA_DEVICE double to_acc(double v) { return v; }
FA_DEVICE float to_acc(__half v) { return __half2float(v); }
FA_DEVICE float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

// from_acc<T>(a): round the accumulator back to the storage type.
template <typename T>
struct FromAcc;
template <>
struct FromAcc<float> {
  static FA_DEVICE float cvt(float v) { return v; }
};
template <>
struct FromAcc<double> {
  static FA_DEVICE double cvt(double v) { return v; }
};
template <>
struct FromAcc<__half> {
  static FA_DEVICE __half cvt(float v) { return __float2half_rn(v); }
};
template <>
struct FromAcc<__nv_bfloat16> {
  static FA_DEVICE __nv_bfloat16 cvt(float v) { return __float2bfloat16_rn(v); }
};
template <typename T, typename A>
FA_DEVICE T from_acc(A v) {
  return FromAcc<T>::cvt(v);
}

// max that lets NaN win, as torch's pooling does (`v > m || isnan(v)`).
template <typename A>
FA_DEVICE A nan_max(A m, A v) {
  return (v > m || v != v) ? v : m;
}

// relu(v) that keeps NaN, like torch.relu.
template <typename A>
FA_DEVICE A relu_keep_nan(A v) {
  return v < A(0) ? A(0) : v;
}

FA_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace fastalex
