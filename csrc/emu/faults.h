// fastalex's SIMT emulator (see runtime.h): memory faults in device code. While a fiber
// runs, SIGSEGV/SIGBUS jump back to its worker (on_fault), and describe_fault names what
// was hit (a global buffer's guard page and offset, dynamic shared memory, a fiber's stack
// guard) and the source line of the faulting instruction (addr2line), or of the kernel line
// the emulator was reading for (Worker::fault_loc).
#pragma once

#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>

#include "emu/fibers.h"
#include "emu/guarded_memory.h"

namespace fastalex_emu {

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
  if (w.fault_loc) {
    // The emulator read memory for a kernel line (a cp.async's source): name that line, not
    // the emulator's own.
    s << ", at " << w.fault_loc->file_name() << ":" << w.fault_loc->line() << " (the source of a cp.async)";
    return s.str();
  }
  const std::string line = source_line(w.fault_pc);
  if (!line.empty()) s << ", at " << line;
  return s.str();
}

}  // namespace fastalex_emu
