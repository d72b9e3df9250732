// The CPU buffer pool (see buffer_pool.h). Each pooled block starts with a 64-byte header
// holding its usable size; the data follows it, 64-byte aligned. The tensors' DataPtr holds the
// data pointer as its context too (a "simple" data pointer, as torch's lazy clone requires): the
// deleter finds the header 64 bytes before it.
#include "cpu/buffer_pool.h"

#include <ATen/Context.h>
#include <ATen/EmptyTensor.h>
#include <ATen/native/TensorFactories.h>
#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <new>

#include <pthread.h>
#include <sys/mman.h>

namespace fastalex {
namespace cpu {
namespace {

constexpr size_t kHeader = 64;
constexpr size_t kGranule = size_t{64} << 10;  // sizes rounded up to 64 KiB

constexpr size_t kHugePage = size_t{2} << 20;

size_t cap_bytes() {
  static const size_t cap = [] {
    long mb = 2048;
    if (const char* v = std::getenv("FASTALEX_CPU_POOL_MB")) {
      char* end = nullptr;
      const long parsed = std::strtol(v, &end, 10);
      if (end != v && *end == '\0') mb = parsed;  // anything but a number keeps the default
    }
    return static_cast<size_t>(mb < 0 ? 0 : mb) << 20;
  }();
  return cap;
}

struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> free;  // usable size -> block
  size_t cached = 0;

  // A block with at least n usable bytes: the smallest free one up to twice n, or a new one.
  void* take(size_t n) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = free.lower_bound(n);
      if (it != free.end() && it->first <= 2 * n) {
        it = std::prev(free.upper_bound(it->first));  // of equal sizes the last freed: warmest in cache
        void* b = it->second;
        cached -= it->first;
        free.erase(it);
        return b;
      }
    }
    // Blocks of 2 MiB and more start on a huge-page boundary and ask for transparent huge pages
    // (where the kernel's mode is "madvise"): fewer faults and TLB misses.
    const bool huge = n >= kHugePage;
    const size_t align = huge ? kHugePage : kHeader, bytes = (kHeader + n + align - 1) / align * align;
    void* b = std::aligned_alloc(align, bytes);
    if (b == nullptr) return nullptr;
    if (huge) madvise(b, bytes, MADV_HUGEPAGE);  // advice only: a kernel without THP ignores it
    *static_cast<size_t*>(b) = n;
    return b;
  }

  void give(void* b) {
    const size_t n = *static_cast<size_t*>(b);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (cached + n <= cap_bytes()) {
        free.emplace(n, b);
        cached += n;
        return;
      }
    }
    std::free(b);
  }

  int64_t release() {
    std::multimap<size_t, void*> out;
    size_t bytes;
    {
      std::lock_guard<std::mutex> lock(mu);
      out.swap(free);
      bytes = cached;
      cached = 0;
    }
    for (auto& kv : out) std::free(kv.second);
    return static_cast<int64_t>(bytes);
  }
};

Pool& pool() {
  static Pool* p = [] {
    // A child forked while another thread held the lock (a DataLoader worker) gets a fresh one.
    pthread_atfork(nullptr, nullptr, [] { new (&pool().mu) std::mutex(); });
    return new Pool();  // never destroyed: tensors may be freed during interpreter exit
  }();
  return *p;
}

// A pool block for `bytes` (rounded up to the granule), or null where they go elsewhere: below
// kPooledBytes, with pooling off, or when the allocation fails.
void* pooled_block(size_t bytes) {
  if (bytes < kPooledBytes || cap_bytes() == 0) return nullptr;
  return pool().take((bytes + kGranule - 1) / kGranule * kGranule);
}

void delete_data(void* data) { pool().give(static_cast<char*>(data) - kHeader); }

// The pool for blocks of kPooledBytes and more, torch's CPU allocator otherwise.
struct PoolAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    void* b = pooled_block(n);
    if (b == nullptr) return c10::GetCPUAllocator()->allocate(n);  // (which reports a failure)
    void* data = static_cast<char*>(b) + kHeader;
    return {data, data, &delete_data, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
};

PoolAllocator& allocator() {
  static PoolAllocator a;
  return a;
}

}  // namespace

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options, at::MemoryFormat fmt) {
  at::Tensor t = at::detail::empty_generic(sizes, &allocator(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                           options.dtype().toScalarType(), fmt);
  // at::empty's own fill (NaN for floating types) where torch asks for it
  if (at::globalContext().deterministicAlgorithms() && at::globalContext().deterministicFillUninitializedMemory()) {
    at::native::fill_empty_deterministic_(t);
  }
  return t;
}

PooledFloats::PooledFloats(int64_t n) : block_(nullptr), data_(nullptr) {
  const size_t bytes = static_cast<size_t>(n < 1 ? 1 : n) * sizeof(float);
  block_ = pooled_block(bytes);
  if (block_ != nullptr) {
    data_ = reinterpret_cast<float*>(static_cast<char*>(block_) + kHeader);
  } else {
    data_ = static_cast<float*>(std::aligned_alloc(kHeader, (bytes + kHeader - 1) / kHeader * kHeader));
    if (data_ == nullptr) throw std::bad_alloc();
  }
}

PooledFloats::~PooledFloats() {
  if (block_ != nullptr) {
    pool().give(block_);
  } else {
    std::free(data_);
  }
}

int64_t pool_cached_bytes() {
  std::lock_guard<std::mutex> lock(pool().mu);
  return static_cast<int64_t>(pool().cached);
}

int64_t pool_release() { return pool().release(); }

}  // namespace cpu
}  // namespace fastalex
