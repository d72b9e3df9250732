// fastalex's SIMT emulator (see runtime.h): the CUDA launch types (uint3, dim3), the
// emulator's error type, its settings (thread schedule, seed, guard placement, workers, SM
// count; set from Python through fastalex.emu) and the record of what launches
// have run and which kernels opted into more dynamic shared memory. Everything else in the
// emulator reads these, so they come first and depend on nothing else in it.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

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
  int64_t launches = 0;                            // kernel launches so far
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

}  // namespace fastalex_emu
