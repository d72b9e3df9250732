// fastalex's SIMT emulator (see runtime.h): running one block. run_block starts the block's
// fibers on one OS thread in the order the schedule gives (ascending, descending, seeded
// random, random by warp), resumes them as barriers and warp collectives complete (in a new
// order each time), and reports threads at different barriers, threads that exit while
// others wait, and deadlocks, with the file:line of each wait.
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "emu/config.h"
#include "emu/fibers.h"
#include "emu/guarded_memory.h"
#include "emu/warp.h"

namespace fastalex_emu {

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

inline void fiber_main() {
  Worker& w = worker();
  w.launch->body();
  w.current->state = FiberState::kExited;
  swapcontext(&w.current->ctx, &w.sched_ctx);
}

// Runs one block to completion on this OS thread. Returns false with w.error set on failure.
inline bool run_block(Worker& w, uint64_t linear_block) {
  const Launch& L = *w.launch;
  const dim3 g = L.grid, b = L.block;
  w.block_linear = linear_block;
  w.block_idx = uint3{static_cast<unsigned>(linear_block % g.x), static_cast<unsigned>((linear_block / g.x) % g.y),
                      static_cast<unsigned>(linear_block / (uint64_t(g.x) * g.y))};
  w.epoch = 0;
  // A new barrier interval: the shadow cells of earlier blocks, and their in-flight cp.async
  // marks, are stale from here on without being cleared.
  w.block_epoch = ++w.barrier_epoch;
  w.warp_syncs.assign((w.fibers.size() + 31) / 32, 0);
  // Fresh, poisoned shared memory for the block.
  std::memset(w.shared.usable, 0xFF, w.shared.usable_bytes);
  w.static_used = 0;
  w.static_allocs.clear();
  w.dynamic_shared = w.shared.usable + w.shared.usable_bytes - round_up(L.dynamic_shared, 16);
  for (Fiber& f : w.fibers) {
    f.state = FiberState::kReady;
    f.cp_pending.clear();  // cp.async still in flight when the last block ended are dropped
    f.cp_committed = 0;
    f.cp_wait_n = -1;
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

}  // namespace fastalex_emu
