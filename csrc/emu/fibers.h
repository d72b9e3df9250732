// fastalex's SIMT emulator (see runtime.h): the state of a running launch. Each thread of a
// block is a Fiber (a ucontext with its own guarded stack); a Worker is one OS thread running
// blocks, holding the block's fibers, its shared memory and the error being reported. Also
// what device code reaches through them (threadIdx, blockIdx, blockDim, gridDim,
// __syncthreads) and fail(), which abandons the running fiber with an error. The scheduler
// (scheduler.h), the warp collectives (warp.h), the shared-memory race detector
// (shared_race.h) and the tensor-core instructions (tensor_core.h) all work on these types.
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <source_location>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "emu/config.h"
#include "emu/guarded_memory.h"

namespace fastalex_emu {

constexpr size_t kFiberStack = 64 * 1024;
constexpr size_t kSharedCapacity = 227 * 1024;  // the most shared memory a block can have
constexpr size_t kStaticSharedLimit = 48 * 1024;
constexpr size_t kDefaultDynamicSharedLimit = 48 * 1024;

enum class WarpOp { kSync, kIdx, kUp, kDown, kXor, kBallot, kAny, kAll, kLdmatrix, kMma };

enum class FiberState { kReady, kAtBarrier, kAtWarp, kExited, kFailed };

struct Site {
  const char* file = "";
  int line = 0;
};

// A cp.async issued and not yet retired: its data is read at issue and lands at the wait
// that retires its group.
struct AsyncCopy {
  char* dst;
  uint32_t group;
  uint32_t bytes;
  unsigned char data[16];
  std::source_location loc;
};

struct Worker;
struct Fiber;
// Completes a warp-wide instruction (ldmatrix, mma) once all 32 lanes wait in it; returns
// false with Worker::error set.
using WarpCompletion = bool (*)(Worker&, Fiber* const* lanes);

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
  const void* payload = nullptr;  // a warp-wide instruction's operands (on this fiber's stack)
  WarpCompletion complete = nullptr;
  // cp.async (tensor_core.h): this thread's copies not yet retired by a wait, in issue order,
  // and the groups it has committed (copies issued now join group cp_committed).
  std::vector<AsyncCopy> cp_pending;
  uint32_t cp_committed = 0;
  // its last cp_async_wait<n> (for reports of copies read too early): n (-1: none yet in this
  // block), the groups committed then, and where
  int cp_wait_n = -1;
  uint32_t cp_wait_committed = 0;
  std::source_location cp_wait_loc{};
};

// How an access reached shared memory, for the race reports. A cell last written by a
// kCpAsyncIssue in the running block is the destination of a cp.async still in flight.
enum class Via : uint8_t { kPlain, kCpAsyncIssue, kCpAsyncArrive, kLdmatrix };

// Race-detection shadow of 2 bytes of the block's shared memory (the smallest element type is
// 2 bytes; a 1-byte access shares its cell with its neighbour): the last write, and the reads
// since it, each with the barrier interval (and warp-sync count) it happened in. Barrier
// epochs only grow during a launch, so cells left by an earlier block are stale without being
// cleared, and the all-zero cell of fresh (mmap'ed) memory means "never touched". The source
// lines of the accesses live apart, in ShadowSites, which only recording an access touches:
// the cells every access checks stay small (24 bytes per 2 bytes of shared memory).
struct ShadowCell {
  uint32_t w_epoch, r_epoch;    // barrier interval (Worker::barrier_epoch); 0: none
  uint32_t w_wsync, r_wsync;    // warp-sync count of the accessing thread's warp then
  uint16_t w_thread, r_thread;  // linear thread index (of the first reader)
  Via w_via, r_via;
  bool r_many;                  // other threads read it too
};
struct ShadowSites {
  std::source_location w_loc, r_loc;
};
static_assert(std::is_trivially_copyable_v<ShadowCell> && std::is_trivially_copyable_v<ShadowSites>,
              "shadow cells live in zero-filled mmap'ed memory");

struct SharedAlloc {
  const void* key;
  char* ptr;
  size_t bytes;
  size_t elem_bytes;  // of the array's scalar type (race reports name element indices)
  const char* name;
};

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
  // race detection (shared_race.h); both counters grow over the whole launch
  uint32_t barrier_epoch = 0;   // block starts and __syncthreads releases so far
  uint32_t block_epoch = 0;     // barrier_epoch when the running block started
  std::vector<uint32_t> warp_syncs;  // completed warp collectives per warp in this block
  GuardedRegion shadow_region, sites_region;  // zero-filled on first touch
  ShadowCell* shadow = nullptr;       // one per 2 bytes of shared.usable
  ShadowSites* shadow_sites = nullptr;  // likewise
  // shared memory of the running block
  GuardedRegion shared;  // static arrays from the front, dynamic memory flush with the end
  size_t static_used = 0;
  std::vector<SharedAlloc> static_allocs;
  char* dynamic_shared = nullptr;
  // errors
  std::string error;
  const std::source_location* fault_loc = nullptr;  // set while device memory is read on a
                                                     // kernel line's behalf (cp.async source)
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

// threadIdx of the block's thread with linear index `linear`.
inline uint3 thread_of(const Worker& w, uint32_t linear) {
  const dim3& bd = w.launch->block;
  return uint3{linear % bd.x, (linear / bd.x) % bd.y, linear / (bd.x * bd.y)};
}

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

}  // namespace fastalex_emu
