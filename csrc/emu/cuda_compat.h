// The CUDA C++ surface that fastalex's device code uses, for compiling that code with the host
// compiler and running it on the emulator (runtime.h). Included instead of the CUDA headers
// when FASTALEX_EMU is defined; nothing here is needed, or included, by nvcc builds.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <math.h>  // float overloads of sqrt/pow/... in the global namespace, as CUDA has them

#include "emu/runtime.h"

// Function-space qualifiers and attributes mean nothing on the host.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// A raw __shared__ declaration would be one array for every block on an OS thread, and
// unchecked: device code must use FA_SHARED_ARRAY / FA_DYNAMIC_SHARED (device_common.cuh).
#define __shared__ static_assert(false, "fastalex device code: declare shared memory with FA_SHARED_ARRAY or FA_DYNAMIC_SHARED");

using fastalex_emu::dim3;
using fastalex_emu::uint3;

#define threadIdx (::fastalex_emu::thread_idx())
#define blockIdx (::fastalex_emu::block_idx())
#define blockDim (::fastalex_emu::block_dim())
#define gridDim (::fastalex_emu::grid_dim())
#define warpSize 32

#define __syncthreads() ::fastalex_emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::fastalex_emu::syncwarp(__FILE__, __LINE__ __VA_OPT__(,) __VA_ARGS__)
#define __shfl_sync(mask, v, src, ...) ::fastalex_emu::shfl(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kIdx, mask, v, src __VA_OPT__(,) __VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) ::fastalex_emu::shfl(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kUp, mask, v, d __VA_OPT__(,) __VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) ::fastalex_emu::shfl(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kDown, mask, v, d __VA_OPT__(,) __VA_ARGS__)
#define __shfl_xor_sync(mask, v, m, ...) ::fastalex_emu::shfl(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kXor, mask, v, m __VA_OPT__(,) __VA_ARGS__)
#define __ballot_sync(mask, pred) ::fastalex_emu::ballot(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kBallot, mask, pred)
#define __any_sync(mask, pred) (::fastalex_emu::ballot(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kAny, mask, pred) != 0u)
#define __all_sync(mask, pred) (::fastalex_emu::ballot(__FILE__, __LINE__, ::fastalex_emu::WarpOp::kAll, mask, pred) != 0u)

// Memory fences order nothing among fibers of one OS thread; across OS threads (blocks) a
// sequentially consistent fence is at least as strong as the GPU's.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
// Products rounded on their own, never fused with a following add (the volatile store keeps
// the host compiler from contracting them into an FMA where the target has one).
inline float __fmul_rn(float a, float b) {
  volatile float r = a * b;
  return r;
}
inline double __dmul_rn(double a, double b) {
  volatile double r = a * b;
  return r;
}
template <typename T>
inline T __ldg(const T* p) { return *p; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }

// ---- atomics (blocks may run on different OS threads: real atomics) ----
template <typename T>
inline T fa_emu_atomic_update(T* addr, T (*f)(T, T), T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- or 8-byte types");
  using Bits = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  Bits* p = reinterpret_cast<Bits*>(addr);
  Bits old_bits = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (true) {
    T old_val, new_val;
    std::memcpy(&old_val, &old_bits, sizeof(T));
    new_val = f(old_val, v);
    Bits new_bits;
    std::memcpy(&new_bits, &new_val, sizeof(T));
    if (__atomic_compare_exchange_n(p, &old_bits, new_bits, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old_val;
  }
}
template <typename T>
inline T atomicAdd(T* addr, T v) {
  return fa_emu_atomic_update<T>(addr, [](T a, T b) { return T(a + b); }, v);
}
template <typename T>
inline T atomicSub(T* addr, T v) {
  return fa_emu_atomic_update<T>(addr, [](T a, T b) { return T(a - b); }, v);
}
template <typename T>
inline T atomicMax(T* addr, T v) {
  return fa_emu_atomic_update<T>(addr, [](T a, T b) { return a < b ? b : a; }, v);
}
template <typename T>
inline T atomicMin(T* addr, T v) {
  return fa_emu_atomic_update<T>(addr, [](T a, T b) { return b < a ? b : a; }, v);
}
template <typename T>
inline T atomicExch(T* addr, T v) {
  return fa_emu_atomic_update<T>(addr, [](T, T b) { return b; }, v);
}
template <typename T>
inline T atomicCAS(T* addr, T compare, T v) {
  __atomic_compare_exchange_n(addr, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value either way
}

// ---- half precision: storage types with the CUDA conversion functions ----
// float16 conversions go through the compiler's _Float16 (IEEE round-to-nearest-even);
// bfloat16 is the top half of a float32, rounded to nearest even.
struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __half2float(__half h) {
  _Float16 f;
  std::memcpy(&f, &h.bits, 2);
  return static_cast<float>(f);
}
inline __half __float2half_rn(float v) {
  _Float16 f = static_cast<_Float16>(v);
  __half h;
  std::memcpy(&h.bits, &f, 2);
  return h;
}
inline __half __float2half(float v) { return __float2half_rn(v); }
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = uint32_t(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  __nv_bfloat16 b;
  if (std::isnan(v)) {
    b.bits = uint16_t((u >> 16) | 0x40);  // keep the sign, force a quiet NaN
  } else {
    u += 0x7FFFu + ((u >> 16) & 1u);
    b.bits = uint16_t(u >> 16);
  }
  return b;
}
inline __nv_bfloat16 __float2bfloat16(float v) { return __float2bfloat16_rn(v); }

// ---- the runtime API calls host code may make ----
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
template <typename F>
inline cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize)
    ::fastalex_emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
  return cudaSuccess;
}
