// Host-side glue for the .cu files: torch scalar types -> CUDA device types, launch helpers.
#pragma once

#include <ATen/cuda/CUDAContext.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

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

template <typename scalar_t>
const device_t<scalar_t>* device_ptr(const at::Tensor& t) {
  return reinterpret_cast<const device_t<scalar_t>*>(t.const_data_ptr<scalar_t>());
}
template <typename scalar_t>
device_t<scalar_t>* device_mut_ptr(at::Tensor& t) {
  return reinterpret_cast<device_t<scalar_t>*>(t.mutable_data_ptr<scalar_t>());
}

// Blocks for a grid-stride loop over `work` items: enough to fill the GPU, never more than
// the work needs, always a valid gridDim.x.
inline unsigned grid_stride_blocks(int64_t work, int threads) {
  const int64_t need = (work + threads - 1) / threads;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(need, sms * 32)));
}

}  // namespace cuda
}  // namespace fastalex
