// fastalex's SIMT emulator (see runtime.h): checked shared memory. FA_SHARED_ARRAY
// (device_common.cuh) declares a static array through block_shared, which gives each block
// its own poisoned copy with every subscript bounds-checked; FA_DYNAMIC_SHARED gives a
// SharedPtr to the dynamic shared memory, whose every element access is bounds-checked (and
// which ends at a guard page besides). Every element read and write of either goes through
// the race detector (shared_race.h).
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <source_location>
#include <sstream>
#include <type_traits>

#include "emu/fibers.h"
#include "emu/guarded_memory.h"
#include "emu/shared_race.h"

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

// The bytes [p, p + bytes) must lie within the dynamic shared memory of the launch (the
// guard page after it catches only what passes its 16-byte rounding; this catches all, and
// what falls before it).
[[noreturn, gnu::cold]] inline void fail_dynamic_access(Worker& w, const char* a, size_t bytes, bool write,
                                                        const std::source_location& loc) {
  const size_t n = w.launch->dynamic_shared;
  std::ostringstream s;
  s << where_prefix(w) << ", thread " << fmt3(w.current->idx) << ": out-of-bounds shared-memory "
    << (write ? "write" : "read") << " (dynamic shared memory is " << n << " bytes), at " << loc.file_name() << ":"
    << loc.line() << " (bytes [" << (a - w.dynamic_shared) << ", " << (a + bytes - w.dynamic_shared) << "))";
  fail(s.str());
}
inline void check_dynamic_access(Worker& w, const void* p, size_t bytes, bool write, const std::source_location& loc) {
  const char* a = static_cast<const char*>(p);
  if (a < w.dynamic_shared || a + bytes > w.dynamic_shared + w.launch->dynamic_shared) [[unlikely]]
    fail_dynamic_access(w, a, bytes, write, loc);
}

// One element of shared memory (of a static array, or of the dynamic memory: kDynamic, whose
// bounds it checks): reads and writes go through the race detector.
template <typename T, bool kDynamic = false>
struct SharedRef {
  T* p;
  std::source_location loc;
  void check(bool write) const {
    Worker& w = worker();
    if constexpr (kDynamic) check_dynamic_access(w, p, sizeof(T), write, loc);
    shared_access(w, p, sizeof(T), write, loc);
  }
  operator T() const {
    check(false);
    return *p;
  }
  const SharedRef& operator=(const T& v) const {
    check(true);
    *p = v;
    return *this;
  }
  const SharedRef& operator=(const SharedRef& o) const { return *this = static_cast<T>(o); }
  const SharedRef& operator+=(const T& v) const { return *this = static_cast<T>(static_cast<T>(*this) + v); }
  const SharedRef& operator-=(const T& v) const { return *this = static_cast<T>(static_cast<T>(*this) - v); }
  const SharedRef& operator*=(const T& v) const { return *this = static_cast<T>(static_cast<T>(*this) * v); }
  T* operator&() const { return p; }  // escapes the checks (the tensor-core primitives take it)
};

// A bounds-checked view of a static shared array (each subscript checks its extent).
template <typename T>
struct SharedView;
template <typename E, size_t N>
struct SharedView<E[N]> {
  E* p;
  const char* name;
  auto operator[](Index i) const {
    if (i.v < 0 || i.v >= static_cast<long long>(N)) fail_shared_index(name, i.v, N, i.loc);
    if constexpr (std::is_array_v<E>) {
      return SharedView<E>{p[i.v], name};
    } else {
      return SharedRef<E>{&p[i.v], i.loc};
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
    if (a.key == key) return SharedView<T>{reinterpret_cast<E*>(a.ptr), name};
  const size_t offset = round_up(w.static_used, 16);
  if (offset + sizeof(T) > kStaticSharedLimit || w.shared.usable + offset + sizeof(T) > w.dynamic_shared) {
    std::ostringstream s;
    s << where_prefix(w) << ": static shared memory exceeds " << kStaticSharedLimit
      << " bytes, or static plus dynamic shared memory exceeds " << kSharedCapacity << " bytes, with " << name;
    fail(s.str());
  }
  char* ptr = w.shared.usable + offset;
  w.static_used = offset + sizeof(T);
  w.static_allocs.push_back(SharedAlloc{key, ptr, sizeof(T), sizeof(std::remove_all_extents_t<T>), name});
  return SharedView<T>{reinterpret_cast<E*>(ptr), name};
}

// A pointer into the dynamic shared memory (what FA_DYNAMIC_SHARED declares, and
// FA_SHARED_PTR names): pointer arithmetic and comparisons as on a T*; each element access
// (p[i], *p) is bounds-checked and race-checked. p[i] reports the line of the subscript; *p,
// having no argument to carry one, the line where p was last moved (p + i, p += i).
template <typename T>
struct SharedPtr {
  T* p = nullptr;
  std::source_location loc{};

  SharedPtr() = default;
  SharedPtr(std::nullptr_t) {}
  SharedPtr(T* q, const std::source_location& l) : p(q), loc(l) {}
  template <typename U, typename = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  SharedPtr(const SharedPtr<U>& o) : p(o.p), loc(o.loc) {}  // to const T, as T* does

  SharedRef<T, true> operator[](Index i) const { return SharedRef<T, true>{p + i.v, i.loc}; }
  SharedRef<T, true> operator*() const { return SharedRef<T, true>{p, loc}; }

  SharedPtr operator+(Index i) const { return SharedPtr(p + i.v, i.loc); }
  friend SharedPtr operator+(Index i, const SharedPtr& s) { return SharedPtr(s.p + i.v, i.loc); }
  SharedPtr operator-(Index i) const { return SharedPtr(p - i.v, i.loc); }
  template <typename U, typename = std::enable_if_t<std::is_same_v<std::remove_cv_t<U>, std::remove_cv_t<T>>>>
  std::ptrdiff_t operator-(const SharedPtr<U>& o) const {
    return p - o.p;
  }
  SharedPtr& operator+=(Index i) {
    p += i.v;
    loc = i.loc;
    return *this;
  }
  SharedPtr& operator-=(Index i) {
    p -= i.v;
    loc = i.loc;
    return *this;
  }
  SharedPtr& operator++() {
    ++p;
    return *this;
  }
  SharedPtr& operator--() {
    --p;
    return *this;
  }
  SharedPtr operator++(int) {
    SharedPtr old = *this;
    ++p;
    return old;
  }
  SharedPtr operator--(int) {
    SharedPtr old = *this;
    --p;
    return old;
  }
  friend bool operator==(const SharedPtr& a, const SharedPtr& b) { return a.p == b.p; }
  friend auto operator<=>(const SharedPtr& a, const SharedPtr& b) { return a.p <=> b.p; }
  explicit operator bool() const { return p != nullptr; }
};

// The block's dynamic shared memory as a T array (FA_DYNAMIC_SHARED).
template <typename T>
inline SharedPtr<T> dynamic_shared(const std::source_location& loc = std::source_location::current()) {
  return SharedPtr<T>(reinterpret_cast<T*>(worker().dynamic_shared), loc);
}

}  // namespace fastalex_emu
