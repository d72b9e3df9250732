// fastalex's SIMT emulator (see runtime.h): warp collectives. __syncwarp, __shfl*_sync,
// __ballot_sync and __any/__all_sync park the calling fiber with its operation, mask and
// value; the warp-wide tensor-core instructions (ldmatrix, mma: tensor_core.h) park it with
// a pointer to their operands and a completion function. try_complete_warp, called by the
// scheduler (scheduler.h) each time a fiber parks, completes the collective once every lane
// named in the mask has arrived at the same call with the same mask, and reports lanes that
// never can (exited, or waiting elsewhere: a deadlock the scheduler reports).
#pragma once

#include <ucontext.h>

#include <cstdint>
#include <cstring>
#include <source_location>
#include <sstream>
#include <vector>

#include "emu/fibers.h"

namespace fastalex_emu {

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
  f->payload = nullptr;
  f->complete = nullptr;
  swapcontext(&f->ctx, &w.sched_ctx);
  return f->result;
}

// Parks the calling fiber in a warp-wide instruction that all 32 lanes must execute together
// (mask 0xffffffff); `complete` runs once they all wait in it, with each lane's `payload`.
inline void warp_instruction(const std::source_location& loc, WarpOp op, const void* payload,
                             WarpCompletion complete) {
  Worker& w = worker();
  Fiber* f = w.current;
  f->state = FiberState::kAtWarp;
  f->site = Site{loc.file_name(), static_cast<int>(loc.line())};
  f->op = op;
  f->mask = 0xffffffffu;
  f->payload = payload;
  f->complete = complete;
  swapcontext(&f->ctx, &w.sched_ctx);
  f->payload = nullptr;
  f->complete = nullptr;
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
    case WarpOp::kLdmatrix: return "ldmatrix";
    case WarpOp::kMma: return "mma.sync";
  }
  return "?";
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
  // ldmatrix and mma.sync compute here, for the whole warp at once. They do not count as warp
  // synchronisation for the race detector: unlike __syncwarp, the PTX ISA promises no memory
  // ordering among the lanes of a .sync.aligned instruction.
  if (f->complete) {
    if (!f->complete(w, lanes)) return false;
    for (unsigned l = 0; l < 32; ++l) {
      lanes[l]->state = FiberState::kReady;
      woken.push_back(lanes[l]);
    }
    return true;
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

}  // namespace fastalex_emu
