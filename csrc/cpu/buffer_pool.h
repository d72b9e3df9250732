// A caching pool for the CPU ops' large outputs and scratch buffers. A fresh multi-megabyte
// allocation comes from mmap and costs a page fault per 4 KiB page on first touch: at batch 16
// those faults took a third of GoogLeNet's 7x7 stem convolution and about 14% of the whole
// forward. Blocks of at least kPooledBytes freed by their tensors go back to the pool instead
// of the OS and serve later allocations of up to their size (a steady-state forward then
// allocates no fresh pages); smaller ones use torch's CPU allocator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

namespace fastalex {
namespace cpu {

constexpr size_t kPooledBytes = size_t{256} << 10;

// An uninitialised CPU tensor like at::empty(sizes, options.memory_format(fmt)), its storage
// from the pool (resizable; freed into the pool). With torch's deterministic algorithms and
// fill_uninitialized_memory on, it is filled with NaN as at::empty fills its outputs.
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options,
                        at::MemoryFormat fmt = at::MemoryFormat::Contiguous);

// A scratch buffer of n floats from the pool (uninitialised), returned to it on destruction.
class PooledFloats {
 public:
  explicit PooledFloats(int64_t n);
  ~PooledFloats();
  PooledFloats(const PooledFloats&) = delete;
  PooledFloats& operator=(const PooledFloats&) = delete;
  float* get() const { return data_; }

 private:
  void* block_;
  float* data_;
};

// Bytes the pool holds for reuse, and a release of all of them to the OS
// (torch.ops.fastalex.cpu_pool_bytes / cpu_pool_release). The pool keeps at most
// FASTALEX_CPU_POOL_MB MiB (default 2048; 0 turns pooling off).
int64_t pool_cached_bytes();
int64_t pool_release();

}  // namespace cpu
}  // namespace fastalex
