// fastalex's SIMT emulator (see runtime.h): memory with guard pages. GuardedRegion is an
// mmap'ed region between two inaccessible pages; fiber stacks and each block's shared memory
// live in one, and device_copy puts each global buffer of a launch in one, flush against a
// guard page and surrounded by poisoned slack, so an out-of-bounds access faults (or, in the
// slack, is found after the launch) instead of silently reading a neighbour.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "emu/config.h"

namespace fastalex_emu {

inline size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}
inline size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

// A region [guard page][usable pages][guard page] from mmap.
struct GuardedRegion {
  char* base = nullptr;
  size_t total = 0;
  char* usable = nullptr;
  size_t usable_bytes = 0;
  GuardedRegion() = default;
  explicit GuardedRegion(size_t bytes) {
    const size_t ps = page_size();
    usable_bytes = round_up(std::max<size_t>(bytes, 1), ps);
    total = usable_bytes + 2 * ps;
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("fastalex emulator: mmap failed");
    base = static_cast<char*>(p);
    usable = base + ps;
    mprotect(base, ps, PROT_NONE);
    mprotect(usable + usable_bytes, ps, PROT_NONE);
  }
  GuardedRegion(const GuardedRegion&) = delete;
  GuardedRegion& operator=(const GuardedRegion&) = delete;
  GuardedRegion(GuardedRegion&& o) noexcept { *this = std::move(o); }
  GuardedRegion& operator=(GuardedRegion&& o) noexcept {
    std::swap(base, o.base);
    std::swap(total, o.total);
    std::swap(usable, o.usable);
    std::swap(usable_bytes, o.usable_bytes);
    return *this;
  }
  ~GuardedRegion() {
    if (base) munmap(base, total);
  }
  bool in_leading_guard(const void* a) const {
    return a >= base && a < usable;
  }
  bool in_trailing_guard(const void* a) const {
    return a >= usable + usable_bytes && a < base + total;
  }
};

// A global-memory buffer of one launch: a copy of host data beside a guard page.
struct GlobalBuffer {
  std::string name;
  void* host = nullptr;  // where the data lives between launches (copied back if writable)
  size_t bytes = 0;
  bool writable = false;
  GuardedRegion region;
  char* data = nullptr;
  char* slack_begin = nullptr;  // the usable pages around the data, poisoned: writes there
  char* slack_end = nullptr;    // are out of bounds even where no guard page catches them
};

struct LaunchBuffers {
  std::vector<std::unique_ptr<GlobalBuffer>> buffers;
};
inline LaunchBuffers& pending_buffers() {
  static thread_local LaunchBuffers b;  // filled by the host thread's device_copy calls
  return b;
}

// Copies `bytes` from `host` into a guarded region and returns the copy's address, which
// keeps the host pointer's alignment modulo 16 (what vectorized loads rely on). Writable
// buffers are copied back after the next launch. Call it in the launch's argument list.
inline void* device_copy(const void* host, size_t bytes, bool writable, const char* name) {
  if (host == nullptr) return nullptr;
  auto buf = std::make_unique<GlobalBuffer>();
  buf->name = name;
  buf->host = const_cast<void*>(host);
  buf->bytes = bytes;
  buf->writable = writable;
  buf->region = GuardedRegion(bytes + 32);
  const uintptr_t align = reinterpret_cast<uintptr_t>(host) % 16;
  char* lo = buf->region.usable;
  char* hi = buf->region.usable + buf->region.usable_bytes;
  std::memset(lo, 0xFF, buf->region.usable_bytes);
  if (config().guard_at_start) {
    buf->data = lo + align;
  } else {
    char* d = hi - bytes;
    d -= (reinterpret_cast<uintptr_t>(d) % 16 + 16 - align) % 16;
    buf->data = d;
  }
  buf->slack_begin = lo;  // [lo, data) and [data + bytes, hi) must stay poisoned
  buf->slack_end = hi;
  std::memcpy(buf->data, host, bytes);
  void* p = buf->data;
  pending_buffers().buffers.push_back(std::move(buf));
  return p;
}

}  // namespace fastalex_emu
