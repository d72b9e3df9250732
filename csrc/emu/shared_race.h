// fastalex's SIMT emulator (see runtime.h): the race detector of shared memory. Every access
// to a block's shared memory -- static arrays and dynamic memory (shared_checks.h), cp.async
// issue and arrival, ldmatrix rows and the raw shared loads and stores (tensor_core.h) -- goes
// through shared_access, which checks it against a shadow of the whole shared region (one
// ShadowCell per 2 bytes, fibers.h) and reports
//  - two threads touching the same bytes, one of them writing, with no __syncthreads()
//    between (or, within a warp, no warp collective), and
//  - any access to bytes that a cp.async is still copying into: the data lands only at the
//    issuing thread's cp_async_wait that retires its group.
// Fibers switch only at barriers and warp collectives, so a race never changes what a run
// computes; it is found from the order of accesses within one barrier interval instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <sstream>
#include <string>

#include "emu/fibers.h"

namespace fastalex_emu {

// Where in the block's shared memory `a` lies, for messages: "tile (element 5)", "dynamic
// shared memory (byte offset 20)", or what it misses.
inline std::string describe_shared(const Worker& w, const char* a) {
  std::ostringstream s;
  for (const SharedAlloc& al : w.static_allocs)
    if (a >= al.ptr && a < al.ptr + al.bytes) {
      s << al.name << " (element " << (a - al.ptr) / static_cast<long long>(al.elem_bytes) << ")";
      return s.str();
    }
  const char* dyn = w.dynamic_shared;
  if (a >= dyn && a < dyn + w.launch->dynamic_shared) {
    s << "dynamic shared memory (byte offset " << (a - dyn) << ")";
    return s.str();
  }
  const char* lo = w.shared.usable;
  if (a >= lo && a < lo + w.shared.usable_bytes) {
    s << "no allocation (byte " << (a - lo) << " of the block's shared memory: its static arrays take bytes [0, "
      << w.static_used << "), its " << w.launch->dynamic_shared << " bytes of dynamic shared memory start at byte "
      << (dyn - lo) << ")";
  } else {
    s << "address " << static_cast<const void*>(a) << ", outside the block's shared memory";
  }
  return s.str();
}

// Whether [a, a + bytes) lies within one static array or within the dynamic shared memory.
inline bool in_shared_allocation(const Worker& w, const char* a, size_t bytes) {
  const char* dyn = w.dynamic_shared;
  if (a >= dyn && a + bytes <= dyn + w.launch->dynamic_shared) return true;
  for (const SharedAlloc& al : w.static_allocs)
    if (a >= al.ptr && a + bytes <= al.ptr + al.bytes) return true;
  return false;
}

// "shared memory tile (element 5)", "dynamic shared memory (byte offset 20)": what
// describe_shared gives, as a noun.
inline std::string shared_noun(const std::string& where) {
  return where.rfind("dynamic ", 0) == 0 ? where : "shared memory " + where;
}

enum class Clash : uint8_t { kNone, kReadAfterWrite, kWriteAfterWrite, kWriteAfterRead, kInFlight };

// Checks one access of thread t (whose warp has completed `ws` warp collectives) to cell c
// in barrier interval e of the block that started at interval e0, and records it when it
// does not clash: a different thread's write before a read or a write, or a different
// thread's read before a write, is a race unless both threads are lanes of one warp that
// synchronised (a warp collective) in between; any access to a cell whose last write is a
// cp.async issued in this block is too early (the copy's arrival rewrites the cell).
inline Clash access_cell(ShadowCell& c, ShadowSites& sites, uint32_t e0, uint32_t e, uint32_t t, uint32_t ws,
                         bool write, Via via, const std::source_location& loc) {
  auto ordered = [&](uint32_t other, uint32_t other_wsync) {
    return other == t || (other / 32 == t / 32 && other_wsync != ws);
  };
  if (c.w_epoch >= e0) {
    if (c.w_via == Via::kCpAsyncIssue) return Clash::kInFlight;
    if (c.w_epoch == e && !ordered(c.w_thread, c.w_wsync))
      return write ? Clash::kWriteAfterWrite : Clash::kReadAfterWrite;
  }
  if (write) {
    if (c.r_epoch == e && (c.r_many || !ordered(c.r_thread, c.r_wsync))) return Clash::kWriteAfterRead;
    c.w_thread = static_cast<uint16_t>(t);
    c.w_epoch = e;
    c.w_wsync = ws;
    c.w_via = via;
    sites.w_loc = loc;
    c.r_epoch = 0;
  } else if (c.r_epoch != e) {
    c.r_thread = static_cast<uint16_t>(t);
    c.r_epoch = e;
    c.r_wsync = ws;
    c.r_via = via;
    c.r_many = false;
    sites.r_loc = loc;
  } else if (c.r_thread != t && !c.r_many) {
    c.r_many = true;
  }
  return Clash::kNone;
}

// "thread (1, 0, 0) reads it with ldmatrix at f.cuh:12"
inline std::string describe_access(const Worker& w, uint32_t thread, bool write, Via via, bool others,
                                   const std::source_location& loc) {
  std::ostringstream s;
  s << "thread " << fmt3(thread_of(w, thread)) << " ";
  switch (via) {
    case Via::kCpAsyncIssue: s << "issues a cp.async into it"; break;
    case Via::kCpAsyncArrive: s << "completes a cp.async into it (its cp_async_wait)"; break;
    case Via::kLdmatrix: s << "reads it with ldmatrix"; break;
    case Via::kPlain: s << (write ? "writes it" : "reads it"); break;
  }
  s << " at " << loc.file_name() << ":" << loc.line();
  if (others) s << " (and so do other threads)";
  return s.str();
}

// Why the cp.async `cp` of thread `issuer` is still in flight, as its thread's waits see it.
inline std::string why_in_flight(const Worker& w, uint32_t issuer, const AsyncCopy& cp) {
  const Fiber& f = w.fibers[issuer];
  const std::string who = "thread " + fmt3(thread_of(w, issuer));
  std::ostringstream s;
  if (cp.group >= f.cp_committed) {
    s << "its group is not committed: no cp_async_commit since it was issued";
  } else if (f.cp_wait_n >= 0 && cp.group < f.cp_wait_committed) {
    s << who << "'s last cp_async_wait<" << f.cp_wait_n << ">, at " << f.cp_wait_loc.file_name() << ":"
      << f.cp_wait_loc.line() << ", leaves its " << f.cp_wait_n
      << " most recent groups in flight, and this copy's is one of them";
  } else {
    s << who << " has not waited since committing its group";
  }
  return s.str();
}

// The report of a clash found by access_cell (cell c, for the bytes at `a`), for an access by
// thread t. Cold: only built for the error.
[[gnu::cold]] inline std::string clash_message(const Worker& w, Clash k, const ShadowCell& c, const ShadowSites& sites,
                                               const char* a, uint32_t t, bool write, Via via,
                                               const std::source_location& loc) {
  std::ostringstream s;
  s << where_prefix(w) << ": ";
  const std::string where = shared_noun(describe_shared(w, a));
  const std::string me = "thread " + fmt3(thread_of(w, t));
  if (k == Clash::kInFlight) {
    const std::string issuer = fmt3(thread_of(w, c.w_thread));
    const std::source_location& issued = sites.w_loc;
    if (via == Via::kCpAsyncIssue) {
      s << me << " issues a cp.async into " << where << " at " << loc.file_name() << ":" << loc.line()
        << " while the cp.async that thread " << issuer << " issued into the same bytes at " << issued.file_name()
        << ":" << issued.line() << " is still in flight";
      return s.str();
    }
    const std::string verb = via == Via::kLdmatrix ? "reads (ldmatrix)" : write ? "writes" : "reads";
    s << me << " " << verb << " " << where << " at " << loc.file_name() << ":" << loc.line()
      << " while the cp.async that thread " << issuer << " issued into it at " << issued.file_name() << ":"
      << issued.line() << " is still in flight";
    for (const AsyncCopy& cp : w.fibers[c.w_thread].cp_pending)
      if (a >= cp.dst && a < cp.dst + cp.bytes) {
        s << " (" << why_in_flight(w, c.w_thread, cp) << ")";
        break;
      }
    return s.str();
  }
  const char* kind = k == Clash::kReadAfterWrite    ? "read-after-write"
                     : k == Clash::kWriteAfterWrite ? "write-after-write"
                                                    : "write-after-read";
  const std::string first = k == Clash::kWriteAfterRead
                                ? describe_access(w, c.r_thread, false, c.r_via, c.r_many, sites.r_loc)
                                : describe_access(w, c.w_thread, true, c.w_via, false, sites.w_loc);
  s << kind << " data race on " << where << ": " << first << " and " << describe_access(w, t, write, via, false, loc)
    << " with no __syncthreads() between";
  return s.str();
}

// Checks and records an access of `bytes` bytes at `a` by thread t. On a clash, sets w.error
// and returns false. The caller has checked that the bytes lie in the block's shared memory.
[[gnu::always_inline]] inline bool shared_access_by(Worker& w, uint32_t t, const void* a, size_t bytes, bool write,
                                                    Via via, const std::source_location& loc) {
  const char* p = static_cast<const char*>(a);
  const size_t first = static_cast<size_t>(p - w.shared.usable) >> 1;
  const size_t last = static_cast<size_t>(p + bytes - 1 - w.shared.usable) >> 1;
  const uint32_t e0 = w.block_epoch, e = w.barrier_epoch, ws = w.warp_syncs[t / 32];
  for (size_t i = first; i <= last; ++i) {
    const Clash k = access_cell(w.shadow[i], w.shadow_sites[i], e0, e, t, ws, write, via, loc);
    if (k != Clash::kNone) [[unlikely]] {
      w.error = clash_message(w, k, w.shadow[i], w.shadow_sites[i], w.shared.usable + 2 * i, t, write, via, loc);
      return false;
    }
  }
  return true;
}

// The same for the running thread, which fails on a clash.
[[gnu::always_inline]] inline void shared_access(Worker& w, const void* a, size_t bytes, bool write,
                                                 const std::source_location& loc, Via via = Via::kPlain) {
  if (!shared_access_by(w, w.current->linear, a, bytes, write, via, loc)) [[unlikely]]
    fail(w.error);
}
inline void shared_access(const void* a, size_t bytes, bool write, const std::source_location& loc,
                          Via via = Via::kPlain) {
  shared_access(worker(), a, bytes, write, loc, via);
}

}  // namespace fastalex_emu
