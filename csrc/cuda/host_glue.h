// Host-side glue for the .cu files: torch scalar types -> device types, device pointers,
// the device scope (guard + stream), kernel launch and registration.
//
// Every .cu file is compiled twice: by nvcc into fastalex._C (the CUDA kernels, registered
// for the CUDA dispatch key), and by the host compiler with FASTALEX_EMU into
// fastalex._emu, where the same host code -- checks, launch configuration, dtype dispatch --
// runs the same device code on the SIMT emulator for CPU tensors (registered as
// fastalex_emu::<op> for the CPU key). Only what this header defines differs between the two.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>

#ifdef FASTALEX_EMU
#include "emu/cuda_compat.h"
#else
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace fastalex {
namespace cuda {

template <typename scalar_t>
struct DeviceType {
  using type = scalar_t;
};
template <>
struct DeviceType<c10::Half> {
  using type = __half;
};
template <>
struct DeviceType<c10::BFloat16> {
  using type = __nv_bfloat16;
};
template <typename scalar_t>
using device_t = typename DeviceType<scalar_t>::type;

// Elements a kernel may reach through t's strides, from its data pointer.
inline int64_t strided_extent(const at::Tensor& t) {
  if (t.numel() == 0) return 0;
  int64_t span = 1;
  for (int64_t d = 0; d < t.dim(); ++d) span += (t.size(d) - 1) * t.stride(d);
  return span;
}

// The element strides of a 4-D tensor into the kernels' parameter fields.
inline void strides4(const at::Tensor& t, int64_t& sn, int64_t& sc, int64_t& sh, int64_t& sw) {
  sn = t.stride(0);
  sc = t.stride(1);
  sh = t.stride(2);
  sw = t.stride(3);
}

#ifdef FASTALEX_EMU

using Stream = int;
// Emulated launches run on the calling thread's CPU tensors: no device, no stream.
struct DeviceScope {
  explicit DeviceScope(const at::Tensor&) {}
  Stream stream() const { return 0; }
};
inline int64_t sm_count() { return fastalex_emu::config().sm_count; }

// The emulator copies each buffer next to a guard page for the launch (and copies writable
// ones back after it), so these must be called in the launch's argument list.
template <typename scalar_t>
const device_t<scalar_t>* device_ptr(const at::Tensor& t, const char* name = "an input") {
  return static_cast<const device_t<scalar_t>*>(fastalex_emu::device_copy(
      t.const_data_ptr<scalar_t>(), strided_extent(t) * sizeof(scalar_t), false, name));
}
template <typename scalar_t>
device_t<scalar_t>* device_mut_ptr(at::Tensor& t, const char* name = "the output") {
  return static_cast<device_t<scalar_t>*>(fastalex_emu::device_copy(
      t.mutable_data_ptr<scalar_t>(), strided_extent(t) * sizeof(scalar_t), true, name));
}

template <auto Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, Stream, Args&&... args) {
  fastalex_emu::launch<Kernel>(grid, block, smem, std::forward<Args>(args)...);
}

#define FASTALEX_CUDA_IMPL(m) TORCH_LIBRARY_IMPL(fastalex_emu, CPU, m)
// The library whose ops host code calls when it runs another op (its own library's twin).
constexpr const char* kOpLibrary = "fastalex_emu";

// A kernel that takes more than 48 KiB of dynamic shared memory must opt in (the emulator
// checks the opt-in at launch as the GPU does).
template <typename Kernel>
void set_max_dynamic_shared(Kernel* kernel, int bytes) {
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

#else  // nvcc

using Stream = cudaStream_t;
struct DeviceScope {
  explicit DeviceScope(const at::Tensor& t) : guard_(t.device()) {}
  Stream stream() const { return at::cuda::getCurrentCUDAStream(); }

 private:
  c10::cuda::CUDAGuard guard_;
};
inline int64_t sm_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

template <typename scalar_t>
const device_t<scalar_t>* device_ptr(const at::Tensor& t, const char* = nullptr) {
  return reinterpret_cast<const device_t<scalar_t>*>(t.const_data_ptr<scalar_t>());
}
template <typename scalar_t>
device_t<scalar_t>* device_mut_ptr(at::Tensor& t, const char* = nullptr) {
  return reinterpret_cast<device_t<scalar_t>*>(t.mutable_data_ptr<scalar_t>());
}

// kernel<<<grid, block, smem, stream>>>(args...), then the launch check.
template <auto Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, Stream stream, Args&&... args) {
  Kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define FASTALEX_CUDA_IMPL(m) TORCH_LIBRARY_IMPL(fastalex, CUDA, m)
constexpr const char* kOpLibrary = "fastalex";

template <typename Kernel>
void set_max_dynamic_shared(Kernel* kernel, int bytes) {
  if (bytes > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

#endif

// Dynamic shared memory a kernel may take without opting in (set_max_dynamic_shared).
constexpr size_t kDefaultDynamicShared = 48 * 1024;

// Blocks for a grid-stride loop over `work` items: enough to fill the GPU, never more than
// the work needs, always a valid gridDim.x.
inline unsigned grid_stride_blocks(int64_t work, int threads) {
  const int64_t need = (work + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(need, sm_count() * 32)));
}

}  // namespace cuda
}  // namespace fastalex
