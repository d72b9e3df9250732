// The CPU fast-path switch (see multiversion.h).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {
namespace {

bool from_env() {
  const char* v = std::getenv("FASTALEX_CPU_FASTPATH");
  return !(v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0));
}

std::atomic<bool>& flag() {
  static std::atomic<bool> enabled{from_env()};
  return enabled;
}

}  // namespace

bool cpu_fastpath_enabled() { return flag().load(std::memory_order_relaxed); }

bool set_cpu_fastpath(bool enabled) { return flag().exchange(enabled); }

}  // namespace cpu
}  // namespace fastalex
