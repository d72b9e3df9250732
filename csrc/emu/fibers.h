// fastalex's SIMT emulator (see runtime.h): the state of a running launch. Each thread of a
// block is a Fiber (a ucontext with its own guarded stack); a Worker is one OS thread running
// blocks, holding the block's fibers, its shared memory and the error being reported. Also
// what device code reaches through them (threadIdx, blockIdx, blockDim, gridDim,
// __syncthreads) and fail(), which abandons the running fiber with an error. The scheduler
// (scheduler.h), the warp collectives (warp.h) and the shared-memory checks (shared_checks.h)
// all work on these types.
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
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

}  // namespace fastalex_emu
