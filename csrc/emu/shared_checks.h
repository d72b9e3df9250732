// fastalex's SIMT emulator (see runtime.h): checked shared memory. FA_SHARED_ARRAY
// (device_common.cuh) declares a static array through block_shared, which gives each block
// its own poisoned copy; every subscript is bounds-checked, and every element access goes
// through a race detector that reports two threads touching one element, one of them
// writing, with no __syncthreads() (or, within a warp, no warp collective) between. Dynamic
// shared memory is a plain pointer whose end is a guard page (guarded_memory.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <source_location>
#include <sstream>
#include <type_traits>

#include "emu/fibers.h"
#include "emu/guarded_memory.h"

namespace fastalex_emu {

struct Index {
  long long v;
  std::source_location loc;
  template <typename I, typename = std::enable_if_t<std::is_integral_v<I>>>
  Index(I i, std::source_location l = std::source_location::current()) : v(static_cast<long long>(i)), loc(l) {}
};

[[noreturn]] inline void fail_shared_index(const char* name, long long i, size_t n, const std::source_location& loc) {
  Worker& w = worker();
  std::ostringstream s;
  s << where_prefix(w) << ", thread " << fmt3(w.current->idx) << ": shared-memory index " << i
    << " out of bounds for " << name << " (extent " << n << "), at " << loc.file_name() << ":" << loc.line();
  fail(s.str());
}

[[noreturn]] inline void fail_race(const char* name, long long flat, const char* kind, uint32_t other,
                                    const char* other_file, int other_line, const char* other_what,
                                    const std::source_location& loc, const char* what) {
  Worker& w = worker();
  const dim3& bd = w.launch->block;
  const uint3 o{other % bd.x, (other / bd.x) % bd.y, other / (bd.x * bd.y)};
  std::ostringstream s;
  s << where_prefix(w) << ": " << kind << " data race on shared memory " << name << " (element " << flat
    << "): thread " << fmt3(o) << " " << other_what << " it at " << other_file << ":" << other_line << " and thread "
    << fmt3(w.current->idx) << " " << what << " it at " << loc.file_name() << ":" << loc.line()
    << " with no __syncthreads() between";
  fail(s.str());
}

// Checks one access to a static shared-array element against the accesses before it in the
// same barrier interval: a different thread's write before a read or a write, or a different
// thread's read before a write, is a race unless both threads are lanes of one warp that
// synchronised (a warp collective) in between.
inline void shared_access(ShadowCell& c, bool write, const char* name, long long flat, const std::source_location& loc) {
  Worker& w = worker();
  const uint32_t t = w.current->linear, e = w.barrier_epoch, ws = w.warp_syncs[t / 32];
  auto ordered = [&](uint32_t other, uint32_t other_wsync) {
    return other == t || (other / 32 == t / 32 && other_wsync != ws);
  };
  if (c.w_epoch == e && !ordered(c.w_thread, c.w_wsync))
    fail_race(name, flat, write ? "write-after-write" : "read-after-write", c.w_thread, c.w_file, c.w_line, "writes",
              loc, write ? "writes" : "reads");
  if (write) {
    if (c.r_epoch == e && (c.r_thread == kManyReaders || !ordered(c.r_thread, c.r_wsync)))
      fail_race(name, flat, "write-after-read", c.r_thread == kManyReaders ? t : c.r_thread, c.r_file, c.r_line,
                c.r_thread == kManyReaders ? "(and others) read" : "reads", loc, "writes");
    c.w_thread = t;
    c.w_epoch = e;
    c.w_wsync = ws;
    c.w_file = loc.file_name();
    c.w_line = static_cast<int>(loc.line());
    c.r_epoch = 0;
  } else {
    if (c.r_epoch != e) {
      c.r_thread = t;
      c.r_epoch = e;
      c.r_wsync = ws;
      c.r_file = loc.file_name();
      c.r_line = static_cast<int>(loc.line());
    } else if (c.r_thread != t) {
      c.r_thread = kManyReaders;
    }
  }
}

// One element of a static shared array: reads and writes go through the race detector.
template <typename T>
struct SharedRef {
  T* p;
  ShadowCell* cell;
  const char* name;
  long long flat;
  std::source_location loc;
  operator T() const {
    shared_access(*cell, false, name, flat, loc);
    return *p;
  }
  const SharedRef& operator=(const T& v) const {
    shared_access(*cell, true, name, flat, loc);
    *p = v;
    return *this;
  }
  const SharedRef& operator=(const SharedRef& o) const { return *this = static_cast<T>(o); }
  const SharedRef& operator+=(const T& v) const { return *this = static_cast<T>(static_cast<T>(*this) + v); }
  const SharedRef& operator-=(const T& v) const { return *this = static_cast<T>(static_cast<T>(*this) - v); }
  const SharedRef& operator*=(const T& v) const { return *this = static_cast<T>(static_cast<T>(*this) * v); }
  T* operator&() const { return p; }  // escapes the checks
};

// A bounds-checked view of a static shared array (each subscript checks its extent).
template <typename T>
struct SharedView;
template <typename E, size_t N>
struct SharedView<E[N]> {
  using Scalar = std::remove_all_extents_t<E>;
  static constexpr size_t kInner = sizeof(E) / sizeof(Scalar);
  E* p;
  ShadowCell* shadow;
  const char* name;
  long long base = 0;  // flat index of p[0]
  auto operator[](Index i) const {
    if (i.v < 0 || i.v >= static_cast<long long>(N)) fail_shared_index(name, i.v, N, i.loc);
    if constexpr (std::is_array_v<E>) {
      return SharedView<E>{p[i.v], shadow + i.v * kInner, name, base + i.v * static_cast<long long>(kInner)};
    } else {
      return SharedRef<E>{&p[i.v], shadow + i.v, name, base + i.v, i.loc};
    }
  }
};

// The block's copy of a static shared array, allocated (and poisoned) on first use in the block.
template <typename T>
inline SharedView<T> block_shared(const void* key, const char* name) {
  static_assert(std::is_array_v<T>, "FA_SHARED_ARRAY declares arrays");
  using E = std::remove_extent_t<T>;
  Worker& w = worker();
  for (const SharedAlloc& a : w.static_allocs)
    if (a.key == key) return SharedView<T>{reinterpret_cast<E*>(a.ptr), a.shadow.get(), name};
  const size_t offset = round_up(w.static_used, 16);
  if (offset + sizeof(T) > kStaticSharedLimit || w.shared.usable + offset + sizeof(T) > w.dynamic_shared) {
    std::ostringstream s;
    s << where_prefix(w) << ": static shared memory exceeds " << kStaticSharedLimit
      << " bytes, or static plus dynamic shared memory exceeds " << kSharedCapacity << " bytes, with " << name;
    fail(s.str());
  }
  char* ptr = w.shared.usable + offset;
  w.static_used = offset + sizeof(T);
  const size_t cells = sizeof(T) / sizeof(std::remove_all_extents_t<T>);
  w.static_allocs.push_back(SharedAlloc{key, ptr, sizeof(T), std::unique_ptr<ShadowCell[]>(new ShadowCell[cells])});
  return SharedView<T>{reinterpret_cast<E*>(ptr), w.static_allocs.back().shadow.get(), name};
}

inline void* dynamic_shared_memory() { return worker().dynamic_shared; }

}  // namespace fastalex_emu
