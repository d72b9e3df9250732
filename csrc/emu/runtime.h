// fastalex's SIMT emulator: runs CUDA kernels' device code, compiled by the host compiler,
// on the CPU with the checks a GPU does not give.
//
//  - Each thread of a block is a fiber (ucontext) with its own 64 KiB stack above a guard
//    page; the fibers of a block run on one OS thread and switch only at barriers and warp
//    collectives; blocks run in parallel on worker OS threads.
//  - __syncthreads() is a counting barrier over the live threads of the block. Threads
//    waiting at different barriers, a thread exiting while others wait, and deadlocks are
//    errors that name the kernel, block, threads and file:line of each barrier.
//  - Warp collectives (__syncwarp, __shfl*_sync, __ballot_sync, __any/__all_sync) are
//    rendezvous of the lanes named in the mask, which must all arrive at the same call with
//    the same mask.
//  - The order in which threads start and resume after each barrier is a schedule
//    (ascending, descending, seeded random, random by warp); block order is shuffled by the
//    seed. Running a kernel under several schedules and comparing the results bit for bit
//    exposes order-dependent races such as a missing __syncthreads.
//  - Shared memory is per block and filled with 0xFF (NaN for every float type) at each block
//    start; static arrays (FA_SHARED_ARRAY) are bounds-checked at every index, dynamic shared
//    memory (FA_DYNAMIC_SHARED) ends at a guard page. Launch limits are those of the GPU.
//  - Global buffers passed to a kernel (device_copy) are copied next to guard pages, so an
//    out-of-bounds access faults; the fault is reported with the kernel, thread, buffer and
//    source line (addr2line on the faulting instruction).
//
// Header-only; the host code of a kernel includes it through cuda/host_glue.h.
#pragma once

#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace fastalex_emu {

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

class KernelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Schedule { kAscending, kDescending, kRandom, kWarpRandom };

struct Config {
  Schedule schedule = Schedule::kAscending;
  uint64_t seed = 0;
  bool guard_at_start = false;  // global buffers flush against a leading (else trailing) guard
  int workers = 2;              // OS threads running blocks
  int sm_count = 1;             // what host code sees as the SM count (sizes grid-stride grids)
};

inline Config& config() {
  static Config c;
  return c;
}

inline const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kAscending: return "ascending";
    case Schedule::kDescending: return "descending";
    case Schedule::kRandom: return "random";
    case Schedule::kWarpRandom: return "warp_random";
  }
  return "?";
}

// ---------------------------------------------------------------- launch records
struct Registry {
  std::mutex mu;
  std::set<std::string> launched;                 // kernel names run so far
  std::map<const void*, int> max_dynamic_shared;  // cudaFuncSetAttribute opt-ins
};
inline Registry& registry() {
  static Registry r;
  return r;
}
inline void set_max_dynamic_shared(const void* kernel, int bytes) {
  std::lock_guard<std::mutex> g(registry().mu);
  registry().max_dynamic_shared[kernel] = bytes;
}

// ---------------------------------------------------------------- guarded memory
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

// ---------------------------------------------------------------- fibers and blocks
constexpr size_t kFiberStack = 64 * 1024;
constexpr size_t kSharedCapacity = 227 * 1024;  // the most shared memory a block can have
constexpr size_t kStaticSharedLimit = 48 * 1024;
constexpr size_t kDefaultDynamicSharedLimit = 48 * 1024;

enum class WarpOp { kSync, kIdx, kUp, kDown, kXor, kBallot, kAny, kAll };

enum class FiberState { kReady, kAtBarrier, kAtWarp, kExited, kFailed };

struct Site {
  const char* file = "";
  int line = 0;
};

struct Fiber {
  ucontext_t ctx;
  GuardedRegion stack;
  uint3 idx{0, 0, 0};
  unsigned linear = 0;
  FiberState state = FiberState::kReady;
  Site site;
  // warp collective in progress
  WarpOp op = WarpOp::kSync;
  unsigned mask = 0;
  uint64_t value = 0;
  int arg = 0;
  int width = 32;
  uint64_t result = 0;
};

// Race-detection shadow of one element of a static shared array: the last write, and the
// reads since it, each with the barrier interval (and warp-sync count) it happened in.
struct ShadowCell {
  uint32_t w_thread = 0, w_epoch = 0, w_wsync = 0;  // epoch 0: never written
  uint32_t r_thread = 0, r_epoch = 0, r_wsync = 0;  // r_thread kManyReaders: several
  const char* w_file = nullptr;
  const char* r_file = nullptr;
  int w_line = 0, r_line = 0;
};
constexpr uint32_t kManyReaders = 0xFFFFFFFFu;

struct SharedAlloc {
  const void* key;
  char* ptr;
  size_t bytes;
  std::unique_ptr<ShadowCell[]> shadow;
};

struct Worker;
inline thread_local Worker* tls_worker = nullptr;

struct Launch {
  std::string kernel;
  dim3 grid, block;
  size_t dynamic_shared = 0;
  std::function<void()> body;  // runs the kernel for the current fiber
  Schedule schedule;
  uint64_t seed;
  std::vector<GlobalBuffer*> buffers;
};

struct Worker {
  const Launch* launch = nullptr;
  std::vector<Fiber> fibers;
  ucontext_t sched_ctx;
  Fiber* current = nullptr;
  uint3 block_idx{0, 0, 0};
  uint64_t block_linear = 0;
  uint64_t epoch = 0;           // wake-ups so far in this block (seeds the resume order)
  uint32_t barrier_epoch = 1;   // __syncthreads releases so far, + 1 (race detection)
  std::vector<uint32_t> warp_syncs;  // completed warp collectives per warp (race detection)
  // shared memory of the running block
  GuardedRegion shared;  // static arrays from the front, dynamic memory flush with the end
  size_t static_used = 0;
  std::vector<SharedAlloc> static_allocs;
  char* dynamic_shared = nullptr;
  // errors
  std::string error;
  sigjmp_buf fault_jmp;
  volatile bool in_kernel = false;
  void* fault_addr = nullptr;
  uintptr_t fault_pc = 0;
  int fault_write = -1;  // 1 write, 0 read, -1 unknown
  std::vector<char> altstack;
};

inline Worker& worker() { return *tls_worker; }

inline std::string fmt3(const uint3& v) {
  std::ostringstream s;
  s << "(" << v.x << ", " << v.y << ", " << v.z << ")";
  return s.str();
}
inline std::string fmt3(const dim3& v) { return fmt3(uint3{v.x, v.y, v.z}); }

inline std::string where_prefix(const Worker& w) {
  std::ostringstream s;
  s << "kernel " << w.launch->kernel << ", block " << fmt3(w.block_idx);
  return s.str();
}

// Abandons the running fiber with an error (never returns).
[[noreturn]] inline void fail(const std::string& msg) {
  Worker& w = worker();
  w.error = msg;
  w.current->state = FiberState::kFailed;
  swapcontext(&w.current->ctx, &w.sched_ctx);
  std::abort();  // a failed fiber is never resumed
}

inline const uint3& thread_idx() { return worker().current->idx; }
inline const uint3& block_idx() { return worker().block_idx; }
inline const dim3& block_dim() { return worker().launch->block; }
inline const dim3& grid_dim() { return worker().launch->grid; }

inline void syncthreads(const char* file, int line) {
  Worker& w = worker();
  Fiber* f = w.current;
  f->state = FiberState::kAtBarrier;
  f->site = Site{file, line};
  swapcontext(&f->ctx, &w.sched_ctx);
}

// ---- warp collectives
template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

inline uint64_t warp_collective(const char* file, int line, WarpOp op, unsigned mask, uint64_t value, int arg,
                                int width) {
  Worker& w = worker();
  Fiber* f = w.current;
  const unsigned lane = f->linear % 32;
  if (!(mask & (1u << lane))) {
    std::ostringstream s;
    s << where_prefix(w) << ", thread " << fmt3(f->idx) << ": lane " << lane
      << " calls a warp collective with mask 0x" << std::hex << mask << std::dec
      << " that does not include itself, at " << file << ":" << line;
    fail(s.str());
  }
  if (width <= 0 || width > 32 || (width & (width - 1))) {
    std::ostringstream s;
    s << where_prefix(w) << ": shuffle width " << width << " is not a power of two <= 32, at " << file << ":" << line;
    fail(s.str());
  }
  f->state = FiberState::kAtWarp;
  f->site = Site{file, line};
  f->op = op;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  f->width = width;
  swapcontext(&f->ctx, &w.sched_ctx);
  return f->result;
}

inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_collective(file, line, WarpOp::kSync, mask, 0, 0, 32);
}

template <typename T>
inline T shfl(const char* file, int line, WarpOp op, unsigned mask, T v, int arg, int width = 32) {
  return from_bits<T>(warp_collective(file, line, op, mask, to_bits(v), arg, width));
}

inline unsigned ballot(const char* file, int line, WarpOp op, unsigned mask, int pred) {
  return static_cast<unsigned>(warp_collective(file, line, op, mask, pred != 0, 0, 32));
}

// ---- shared memory
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

// ---------------------------------------------------------------- scheduling
inline std::vector<Fiber*> order_threads(std::vector<Fiber*> v, Schedule s, uint64_t seed, uint64_t block,
                                         uint64_t epoch) {
  std::sort(v.begin(), v.end(), [](Fiber* a, Fiber* b) { return a->linear < b->linear; });
  switch (s) {
    case Schedule::kAscending:
      break;
    case Schedule::kDescending:
      std::reverse(v.begin(), v.end());
      break;
    case Schedule::kRandom: {
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull ^ (block << 20) ^ epoch);
      std::shuffle(v.begin(), v.end(), rng);
      break;
    }
    case Schedule::kWarpRandom: {
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull ^ (block << 20) ^ epoch ^ 0x5151);
      std::vector<unsigned> warps;
      for (Fiber* f : v)
        if (warps.empty() || warps.back() != f->linear / 32) warps.push_back(f->linear / 32);
      std::shuffle(warps.begin(), warps.end(), rng);
      std::vector<Fiber*> out;
      for (unsigned wi : warps)
        for (Fiber* f : v)
          if (f->linear / 32 == wi) out.push_back(f);
      v = std::move(out);
      break;
    }
  }
  return v;
}

inline std::string thread_ranges(std::vector<unsigned> ids, const dim3& bd) {
  std::sort(ids.begin(), ids.end());
  std::ostringstream s;
  auto xyz = [&](unsigned l) {
    return fmt3(uint3{l % bd.x, (l / bd.x) % bd.y, l / (bd.x * bd.y)});
  };
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (i) s << ", ";
    s << xyz(ids[i]);
    if (j > i) s << ".." << xyz(ids[j]);
    i = j + 1;
  }
  return s.str();
}

inline const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kSync: return "__syncwarp";
    case WarpOp::kIdx: return "__shfl_sync";
    case WarpOp::kUp: return "__shfl_up_sync";
    case WarpOp::kDown: return "__shfl_down_sync";
    case WarpOp::kXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
    case WarpOp::kAny: return "__any_sync";
    case WarpOp::kAll: return "__all_sync";
  }
  return "?";
}

inline void fiber_main() {
  Worker& w = worker();
  w.launch->body();
  w.current->state = FiberState::kExited;
  swapcontext(&w.current->ctx, &w.sched_ctx);
}

// Completes the warp collective `f` waits in, if every lane of its mask has arrived.
// Returns false with w.error set on a mismatch.
inline bool try_complete_warp(Worker& w, Fiber* f, std::vector<Fiber*>& woken) {
  const unsigned warp = f->linear / 32, nthreads = static_cast<unsigned>(w.fibers.size());
  const unsigned mask = f->mask;
  Fiber* lanes[32] = {};
  for (unsigned l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    const unsigned t = warp * 32 + l;
    if (t >= nthreads) {
      std::ostringstream s;
      s << where_prefix(w) << ": " << op_name(f->op) << " at " << f->site.file << ":" << f->site.line << " names lane "
        << l << " in mask 0x" << std::hex << mask << std::dec << ", which does not exist in this block";
      w.error = s.str();
      return false;
    }
    Fiber* g = &w.fibers[t];
    if (g->state == FiberState::kExited) {
      std::ostringstream s;
      s << where_prefix(w) << ": thread " << fmt3(g->idx) << " (lane " << l << ") exited while its warp waits in "
        << op_name(f->op) << " at " << f->site.file << ":" << f->site.line;
      w.error = s.str();
      return false;
    }
    if (g->state != FiberState::kAtWarp) return true;  // not everyone is here yet
    lanes[l] = g;
  }
  for (unsigned l = 0; l < 32; ++l) {
    Fiber* g = lanes[l];
    if (!g) continue;
    if (g->op != f->op || g->mask != mask || g->site.line != f->site.line || std::strcmp(g->site.file, f->site.file)) {
      std::ostringstream s;
      s << where_prefix(w) << ": lanes of warp " << warp << " meet at different warp collectives: thread "
        << fmt3(f->idx) << " in " << op_name(f->op) << "(mask 0x" << std::hex << f->mask << std::dec << ") at "
        << f->site.file << ":" << f->site.line << ", thread " << fmt3(g->idx) << " in " << op_name(g->op) << "(mask 0x"
        << std::hex << g->mask << std::dec << ") at " << g->site.file << ":" << g->site.line;
      w.error = s.str();
      return false;
    }
  }
  unsigned votes = 0;
  for (unsigned l = 0; l < 32; ++l)
    if (lanes[l] && lanes[l]->value) votes |= 1u << l;
  for (unsigned l = 0; l < 32; ++l) {
    Fiber* g = lanes[l];
    if (!g) continue;
    const int width = g->width;
    const unsigned seg = l / width * width;
    unsigned src = l;
    switch (g->op) {
      case WarpOp::kSync: break;
      case WarpOp::kIdx: src = seg + (static_cast<unsigned>(g->arg) % width); break;
      case WarpOp::kUp: src = (l - seg) >= static_cast<unsigned>(g->arg) ? l - g->arg : l; break;
      case WarpOp::kDown: src = (l - seg) + g->arg < static_cast<unsigned>(width) ? l + g->arg : l; break;
      case WarpOp::kXor: {
        const unsigned t = l ^ static_cast<unsigned>(g->arg);
        src = (t / width * width == seg) ? t : l;
        break;
      }
      default: break;
    }
    if (g->op == WarpOp::kBallot) {
      g->result = votes;
    } else if (g->op == WarpOp::kAny) {
      g->result = (votes & mask) != 0;
    } else if (g->op == WarpOp::kAll) {
      g->result = (votes & mask) == mask;
    } else if (g->op != WarpOp::kSync) {
      if (!lanes[src]) {
        std::ostringstream s;
        s << where_prefix(w) << ": thread " << fmt3(g->idx) << " reads lane " << src << " in " << op_name(g->op)
          << " at " << g->site.file << ":" << g->site.line << ", but that lane is not in the mask 0x" << std::hex
          << mask;
        w.error = s.str();
        return false;
      }
      g->result = lanes[src]->value;
    }
  }
  for (unsigned l = 0; l < 32; ++l)
    if (lanes[l]) {
      lanes[l]->state = FiberState::kReady;
      woken.push_back(lanes[l]);
    }
  ++w.warp_syncs[warp];
  return true;
}

// Runs one block to completion on this OS thread. Returns false with w.error set on failure.
inline bool run_block(Worker& w, uint64_t linear_block) {
  const Launch& L = *w.launch;
  const dim3 g = L.grid, b = L.block;
  w.block_linear = linear_block;
  w.block_idx = uint3{static_cast<unsigned>(linear_block % g.x), static_cast<unsigned>((linear_block / g.x) % g.y),
                      static_cast<unsigned>(linear_block / (uint64_t(g.x) * g.y))};
  w.epoch = 0;
  w.barrier_epoch = 1;
  w.warp_syncs.assign((w.fibers.size() + 31) / 32, 0);
  // Fresh, poisoned shared memory for the block.
  std::memset(w.shared.usable, 0xFF, w.shared.usable_bytes);
  w.static_used = 0;
  w.static_allocs.clear();
  w.dynamic_shared = w.shared.usable + w.shared.usable_bytes - round_up(L.dynamic_shared, 16);
  for (Fiber& f : w.fibers) {
    f.state = FiberState::kReady;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.usable;
    f.ctx.uc_stack.ss_size = f.stack.usable_bytes;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
  }
  if (sigsetjmp(w.fault_jmp, 1)) {
    w.in_kernel = false;
    return false;  // the fault handler's caller describes the fault
  }
  std::vector<Fiber*> all;
  for (Fiber& f : w.fibers) all.push_back(&f);
  std::vector<Fiber*> ready = order_threads(all, L.schedule, L.seed, linear_block, w.epoch++);
  size_t next = 0;
  while (true) {
    while (next < ready.size()) {
      Fiber* f = ready[next++];
      w.current = f;
      w.in_kernel = true;
      swapcontext(&w.sched_ctx, &f->ctx);
      w.in_kernel = false;
      if (f->state == FiberState::kFailed) return false;
      if (f->state == FiberState::kAtWarp) {
        std::vector<Fiber*> woken;
        if (!try_complete_warp(w, f, woken)) return false;
        if (!woken.empty()) {
          woken = order_threads(woken, L.schedule, L.seed, linear_block, w.epoch++);
          ready.insert(ready.end(), woken.begin(), woken.end());
        }
      }
    }
    ready.clear();
    next = 0;
    std::vector<Fiber*> live, at_barrier, at_warp;
    std::vector<unsigned> exited;
    for (Fiber& f : w.fibers) {
      if (f.state == FiberState::kExited) {
        exited.push_back(f.linear);
        continue;
      }
      live.push_back(&f);
      if (f.state == FiberState::kAtBarrier) at_barrier.push_back(&f);
      if (f.state == FiberState::kAtWarp) at_warp.push_back(&f);
    }
    if (live.empty()) return true;
    if (at_barrier.size() == live.size()) {
      // Every live thread waits at a barrier: they must all wait at the same one, and no
      // thread may have left the block (it would never arrive).
      std::map<std::pair<std::string, int>, std::vector<unsigned>> sites;
      for (Fiber* f : at_barrier) sites[{f->site.file, f->site.line}].push_back(f->linear);
      if (sites.size() > 1) {
        std::ostringstream s;
        s << where_prefix(w) << ": threads wait at different __syncthreads() barriers:";
        for (auto& kv : sites)
          s << "\n  " << kv.first.first << ":" << kv.first.second << " <- threads " << thread_ranges(kv.second, b);
        w.error = s.str();
        return false;
      }
      if (!exited.empty()) {
        std::ostringstream s;
        s << where_prefix(w) << ": threads " << thread_ranges(exited, b) << " exited while threads "
          << thread_ranges(sites.begin()->second, b) << " wait at __syncthreads() at " << sites.begin()->first.first
          << ":" << sites.begin()->first.second;
        w.error = s.str();
        return false;
      }
      for (Fiber* f : live) f->state = FiberState::kReady;
      ++w.barrier_epoch;
      ready = order_threads(live, L.schedule, L.seed, linear_block, w.epoch++);
      continue;
    }
    // Some threads wait in warp collectives that can never complete.
    std::ostringstream s;
    s << where_prefix(w) << ": deadlock: no thread can proceed";
    std::map<std::tuple<std::string, int, std::string>, std::vector<unsigned>> waits;
    for (Fiber* f : live)
      waits[{f->site.file, f->site.line, f->state == FiberState::kAtBarrier ? "__syncthreads" : op_name(f->op)}]
          .push_back(f->linear);
    for (auto& kv : waits)
      s << "\n  " << std::get<2>(kv.first) << " at " << std::get<0>(kv.first) << ":" << std::get<1>(kv.first)
        << " <- threads " << thread_ranges(kv.second, b);
    if (!exited.empty()) s << "\n  exited: threads " << thread_ranges(exited, b);
    w.error = s.str();
    return false;
  }
}

// ---------------------------------------------------------------- faults
struct FaultState {
  std::mutex mu;
  struct sigaction old_segv, old_bus;
};
inline FaultState& fault_state() {
  static FaultState s;
  return s;
}

inline void on_fault(int sig, siginfo_t* si, void* uc) {
  Worker* w = tls_worker;
  if (w == nullptr || !w->in_kernel) {
    // Not ours: restore the previous handler and let the fault happen again.
    FaultState& fs = fault_state();
    sigaction(sig, sig == SIGSEGV ? &fs.old_segv : &fs.old_bus, nullptr);
    return;
  }
  w->in_kernel = false;
  w->fault_addr = si->si_addr;
#if defined(__x86_64__)
  const ucontext_t* u = static_cast<const ucontext_t*>(uc);
  w->fault_pc = static_cast<uintptr_t>(u->uc_mcontext.gregs[REG_RIP]);
  w->fault_write = (u->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
#elif defined(__aarch64__)
  const ucontext_t* u = static_cast<const ucontext_t*>(uc);
  w->fault_pc = static_cast<uintptr_t>(u->uc_mcontext.pc);
  w->fault_write = -1;
#else
  (void)uc;
#endif
  siglongjmp(w->fault_jmp, 1);
}

// file:line of a code address, from the debug information (addr2line), or "".
inline std::string source_line(uintptr_t pc) {
  Dl_info info;
  if (pc == 0 || !dladdr(reinterpret_cast<void*>(pc), &info) || !info.dli_fname) return "";
  const uintptr_t off = pc - reinterpret_cast<uintptr_t>(info.dli_fbase);
  std::ostringstream cmd;
  cmd << "addr2line -i -e '" << info.dli_fname << "' 0x" << std::hex << off << " 2>/dev/null";
  FILE* p = popen(cmd.str().c_str(), "r");
  if (!p) return "";
  char line[4096];
  std::string first;
  while (fgets(line, sizeof line, p)) {
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (s.rfind("??", 0) == 0) continue;
    if (first.empty()) first = s;  // innermost inlined frame first
  }
  pclose(p);
  return first;
}

inline std::string describe_fault(Worker& w) {
  std::ostringstream s;
  const char* a = static_cast<const char*>(w.fault_addr);
  const char* rw = w.fault_write == 1 ? "write" : w.fault_write == 0 ? "read" : "access";
  s << where_prefix(w) << ", thread " << fmt3(w.current->idx) << ": ";
  bool known = false;
  for (GlobalBuffer* buf : w.launch->buffers) {
    if (buf->region.in_trailing_guard(a) || buf->region.in_leading_guard(a)) {
      const long long off = a - buf->data;
      s << "out-of-bounds global " << rw << " at byte offset " << off << " of " << buf->name << " (" << buf->bytes
        << " bytes)";
      known = true;
      break;
    }
  }
  if (!known) {
    if (w.shared.in_trailing_guard(a) || w.shared.in_leading_guard(a)) {
      s << "out-of-bounds shared-memory " << rw << " (dynamic shared memory is " << w.launch->dynamic_shared
        << " bytes)";
      known = true;
    }
  }
  if (!known) {
    for (Fiber& f : w.fibers)
      if (f.stack.in_leading_guard(a)) {
        s << "stack overflow (" << kFiberStack / 1024 << " KiB per thread)";
        known = true;
        break;
      }
  }
  if (!known) s << "invalid memory " << rw << " at address " << static_cast<const void*>(a);
  const std::string line = source_line(w.fault_pc);
  if (!line.empty()) s << ", at " << line;
  return s.str();
}

// ---------------------------------------------------------------- launch
template <typename F>
struct KernelTraits;
template <typename... P>
struct KernelTraits<void (*)(P...)> {
  using Args = std::tuple<std::decay_t<P>...>;
};

template <auto Kernel>
inline std::string kernel_name() {
  // "... [with auto Kernel = fastalex::cuda::foo<float>; ...]" -> "fastalex::cuda::foo<float>"
  std::string s = __PRETTY_FUNCTION__;
  const std::string key = "Kernel = ";
  size_t b = s.find(key);
  if (b == std::string::npos) return s;
  b += key.size();
  int depth = 0;
  size_t e = b;
  for (; e < s.size(); ++e) {
    const char c = s[e];
    if (c == '<' || c == '(') ++depth;
    if (c == '>' || c == ')') --depth;
    if (depth == 0 && (c == ';' || c == ']')) break;
  }
  std::string name = s.substr(b, e - b);
  if (!name.empty() && name[0] == '&') name = name.substr(1);
  return name;
}

inline void check_launch(const std::string& name, dim3 grid, dim3 block, size_t smem, const void* kernel) {
  auto bad = [&](const std::string& why) {
    throw KernelError("fastalex emulator: invalid launch of " + name + " (grid " + fmt3(grid) + ", block " +
                      fmt3(block) + ", " + std::to_string(smem) + " bytes of dynamic shared memory): " + why);
  };
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) bad("empty grid or block");
  if (threads > 1024) bad("more than 1024 threads per block");
  if (block.x > 1024 || block.y > 1024 || block.z > 64) bad("block dimensions above (1024, 1024, 64)");
  if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) bad("grid dimensions above (2^31-1, 65535, 65535)");
  int opt_in = 0;
  {
    std::lock_guard<std::mutex> g(registry().mu);
    auto it = registry().max_dynamic_shared.find(kernel);
    if (it != registry().max_dynamic_shared.end()) opt_in = it->second;
  }
  if (smem > kSharedCapacity) bad("dynamic shared memory above 227 KiB");
  if (smem > kDefaultDynamicSharedLimit && smem > static_cast<size_t>(opt_in))
    bad("dynamic shared memory above 48 KiB without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
}

// Runs kernel<<<grid, block, smem>>>(args...) and then copies the writable global buffers back.
template <auto Kernel, typename... A>
inline void launch(dim3 grid, dim3 block, size_t smem, A&&... args) {
  using Args = typename KernelTraits<decltype(Kernel)>::Args;
  LaunchBuffers mine;
  std::swap(mine, pending_buffers());
  const std::string name = kernel_name<Kernel>();
  check_launch(name, grid, block, smem, reinterpret_cast<const void*>(Kernel));
  {
    std::lock_guard<std::mutex> g(registry().mu);
    registry().launched.insert(name);
  }
  const Args params(std::forward<A>(args)...);
  Launch L;
  L.kernel = name;
  L.grid = grid;
  L.block = block;
  L.dynamic_shared = smem;
  L.body = [&params]() { std::apply(Kernel, params); };
  L.schedule = config().schedule;
  L.seed = config().seed;
  for (auto& b : mine.buffers) L.buffers.push_back(b.get());

  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::vector<uint64_t> order(nblocks);
  for (uint64_t i = 0; i < nblocks; ++i) order[i] = i;
  std::mt19937_64 rng(config().seed ^ 0xB10C5EEDull);
  std::shuffle(order.begin(), order.end(), rng);

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex err_mu;
  std::string first_error;
  const unsigned threads = block.x * block.y * block.z;

  FaultState& fs = fault_state();
  std::lock_guard<std::mutex> one_launch_at_a_time(fs.mu);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &fs.old_segv);
  sigaction(SIGBUS, &sa, &fs.old_bus);

  auto work = [&]() {
    Worker w;
    w.launch = &L;
    w.altstack.resize(64 * 1024);
    stack_t ss{}, old_ss{};
    ss.ss_sp = w.altstack.data();
    ss.ss_size = w.altstack.size();
    sigaltstack(&ss, &old_ss);
    tls_worker = &w;
    w.shared = GuardedRegion(kSharedCapacity);
    w.fibers.resize(threads);
    for (unsigned t = 0; t < threads; ++t) {
      Fiber& f = w.fibers[t];
      f.stack = GuardedRegion(kFiberStack);
      f.linear = t;
      f.idx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    }
    while (!failed.load()) {
      const uint64_t i = next.fetch_add(1);
      if (i >= nblocks) break;
      if (!run_block(w, order[i])) {
        if (w.error.empty()) w.error = describe_fault(w);
        std::lock_guard<std::mutex> g(err_mu);
        if (!failed.exchange(true)) first_error = w.error;
        break;
      }
    }
    tls_worker = nullptr;
    sigaltstack(&old_ss, nullptr);
  };
  const unsigned nworkers =
      static_cast<unsigned>(std::max<uint64_t>(1, std::min<uint64_t>(nblocks, std::max(1, config().workers))));
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < nworkers; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  sigaction(SIGSEGV, &fs.old_segv, nullptr);
  sigaction(SIGBUS, &fs.old_bus, nullptr);

  if (failed.load()) {
    std::ostringstream s;
    s << "fastalex emulator: " << first_error << "\n  (schedule " << schedule_name(L.schedule) << ", seed " << L.seed
      << "; replay with FASTALEX_EMU_SCHEDULE=" << schedule_name(L.schedule) << ":" << L.seed << ")";
    throw KernelError(s.str());
  }
  // Writes into the alignment slack beside a buffer are out of bounds too (the guard page
  // only catches them from the next page on).
  for (auto& buf : mine.buffers) {
    for (const char* p = buf->slack_begin; p < buf->slack_end; ++p)
      if ((p < buf->data || p >= buf->data + buf->bytes) && static_cast<unsigned char>(*p) != 0xFF)
        throw KernelError("fastalex emulator: kernel " + name + " wrote past the end of " + buf->name + " (" +
                          std::to_string(buf->bytes) + " bytes), at byte offset " +
                          std::to_string(p - buf->data));
    if (buf->writable) std::memcpy(buf->host, buf->data, buf->bytes);
  }
}

}  // namespace fastalex_emu
