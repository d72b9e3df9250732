// fastalex's SIMT emulator (see runtime.h): kernel launches. launch<kernel>(grid, block,
// smem, args...) checks the launch against the GPU's limits, runs the blocks in seeded
// order on worker OS threads (each with its fibers, shared memory and signal stack), turns
// the first error into a KernelError naming the schedule to replay it with, and copies the
// writable global buffers back after checking their slack for stray writes.
#pragma once

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu/config.h"
#include "emu/faults.h"
#include "emu/fibers.h"
#include "emu/guarded_memory.h"
#include "emu/scheduler.h"

namespace fastalex_emu {

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
    ++registry().launches;
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
    // Shadow cells for every 2 bytes of it; mmap'ed zero pages, so only the cells of the
    // shared memory a kernel uses ever cost memory.
    w.shadow_region = GuardedRegion(sizeof(ShadowCell) * (w.shared.usable_bytes / 2));
    w.shadow = reinterpret_cast<ShadowCell*>(w.shadow_region.usable);
    w.sites_region = GuardedRegion(sizeof(ShadowSites) * (w.shared.usable_bytes / 2));
    w.shadow_sites = reinterpret_cast<ShadowSites*>(w.sites_region.usable);
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
