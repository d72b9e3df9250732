// What the planted-kernel runners (runner.cpp, lrn_runner.cpp) share.
#pragma once

#include <cstdint>
#include <string>

#include "emu/runtime.h"

namespace planted_runner {

// The emulator's settings for the next launch.
inline void configure(const char* schedule, uint64_t seed, int guard_at_start) {
  auto& c = fastalex_emu::config();
  const std::string s = schedule;
  c.schedule = s == "descending" ? fastalex_emu::Schedule::kDescending
               : s == "random"   ? fastalex_emu::Schedule::kRandom
               : s == "warp_random" ? fastalex_emu::Schedule::kWarpRandom
                                    : fastalex_emu::Schedule::kAscending;
  c.seed = seed;
  c.guard_at_start = guard_at_start != 0;
  c.workers = 2;
}

}  // namespace planted_runner
