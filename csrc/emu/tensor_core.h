// fastalex's SIMT emulator (see runtime.h): the tensor-core primitives that
// csrc/cuda/mma_primitives.cuh calls under FASTALEX_EMU, with the PTX ISA's semantics:
//  - cp.async: the source is read when the copy is issued (a bad address faults at the
//    issuing line), the destination is poisoned (0xFF) and marked in flight, and the data
//    lands when the issuing thread's cp_async_wait retires the copy's group. Reading or
//    writing an in-flight destination, by anyone, and a second cp.async into in-flight bytes
//    are errors; so is a read by another thread after the wait with no __syncthreads()
//    between (a race: the arrival counts as the issuing thread's write at its wait). Copies
//    still in flight when the block ends are dropped: that is fine if no one needs them.
//  - ldmatrix and mma.sync: warp-wide instructions that all 32 lanes must execute together
//    (warp.h parks each lane; the completion functions here run once all have arrived).
//    ldmatrix reads each 16-byte row as a read by the lane that gave its address.
//  - cvt.rna.tf32.f32, and st.shared / ld.shared at byte addresses.
// Every shared-memory byte they touch goes through the race detector (shared_race.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <sstream>
#include <string>

#include "emu/fibers.h"
#include "emu/shared_checks.h"
#include "emu/shared_race.h"
#include "emu/warp.h"

namespace fastalex_emu {

enum class MmaKind { kF16, kBF16, kTF32 };

// ---------------------------------------------------------------- shared byte addresses
// What mma_primitives.cuh's smem_addr makes of a shared-memory pointer: the byte address of
// the element (the checks happen where the address is used).
template <typename T>
inline char* byte_ptr(T* p) {
  return const_cast<char*>(reinterpret_cast<const char*>(p));
}
template <typename T>
inline char* shared_byte_address(const SharedPtr<T>& p) {
  return byte_ptr(p.p);
}
template <typename T, bool kDynamic>
inline char* shared_byte_address(const SharedRef<T, kDynamic>& r) {
  return byte_ptr(r.p);
}
template <typename T>
inline char* shared_byte_address(const SharedView<T>& v) {  // a row of a static array
  return byte_ptr(v.p);
}
template <typename T>
inline char* shared_byte_address(T* p) {  // e.g. &tile[r][c]
  return byte_ptr(p);
}

[[noreturn]] inline void fail_instruction(const std::string& what, const std::source_location& loc) {
  Worker& w = worker();
  std::ostringstream s;
  s << where_prefix(w) << ", thread " << fmt3(w.current->idx) << ": " << what << ", at " << loc.file_name() << ":"
    << loc.line();
  fail(s.str());
}

// ---------------------------------------------------------------- cp.async
inline void cp_async(char* dst, const void* src, int cp_bytes, int src_bytes, const std::source_location& loc) {
  Worker& w = worker();
  Fiber* f = w.current;
  if (cp_bytes != 4 && cp_bytes != 8 && cp_bytes != 16)
    fail_instruction("cp.async copies 4, 8 or 16 bytes, not " + std::to_string(cp_bytes), loc);
  if (src_bytes < 0 || src_bytes > cp_bytes)
    fail_instruction("cp.async source size " + std::to_string(src_bytes) + " is outside [0, " +
                         std::to_string(cp_bytes) + "]",
                     loc);
  if (reinterpret_cast<uintptr_t>(dst) % cp_bytes)
    fail_instruction("cp.async destination " + describe_shared(w, dst) + " is not " + std::to_string(cp_bytes) +
                         "-byte aligned",
                     loc);
  if (!in_shared_allocation(w, dst, cp_bytes))
    fail_instruction("cp.async destination " + describe_shared(w, dst) + " is not within the block's shared memory",
                     loc);
  // Only a source that is read must be aligned: src_bytes 0 (a padding chunk) reads nothing.
  if (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % cp_bytes) {
    std::ostringstream s;
    s << "cp.async source address " << src << " is not " << cp_bytes << "-byte aligned";
    fail_instruction(s.str(), loc);
  }
  AsyncCopy c;
  c.dst = dst;
  c.group = f->cp_committed;
  c.bytes = static_cast<uint32_t>(cp_bytes);
  c.loc = loc;
  if (src_bytes > 0) {
    // A fault in this read is reported at the issuing line (faults.h).
    w.fault_loc = &loc;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    std::memcpy(c.data, src, src_bytes);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    w.fault_loc = nullptr;
  }
  std::memset(c.data + src_bytes, 0, cp_bytes - src_bytes);
  // Issuing writes the destination (with poison) as far as the race detector is concerned,
  // and that write marks it in flight; a copy already in flight there is reported.
  shared_access(w, dst, cp_bytes, true, loc, Via::kCpAsyncIssue);
  std::memset(dst, 0xFF, cp_bytes);
  f->cp_pending.push_back(c);
}

inline void cp_async_commit(const std::source_location&) { ++worker().current->cp_committed; }

// cp.async.wait_group n: completes every copy of this thread's committed groups but the n
// most recent (copies not yet committed stay in flight).
inline void cp_async_wait(int n, const std::source_location& loc) {
  Worker& w = worker();
  Fiber* f = w.current;
  if (n < 0) fail_instruction("cp_async_wait<" + std::to_string(n) + ">: the group count must be >= 0", loc);
  f->cp_wait_n = n;
  f->cp_wait_committed = f->cp_committed;
  f->cp_wait_loc = loc;
  const uint32_t done = f->cp_committed > static_cast<uint32_t>(n) ? f->cp_committed - n : 0;  // groups [0, done)
  size_t k = 0;
  for (; k < f->cp_pending.size(); ++k) {
    const AsyncCopy& c = f->cp_pending[k];
    if (c.group >= done) break;  // pending copies are in issue order, so in group order
    // No longer in flight: the arrival is this thread's write, at its wait.
    const size_t first = static_cast<size_t>(c.dst - w.shared.usable) >> 1;
    for (size_t i = first; i < first + c.bytes / 2; ++i) w.shadow[i].w_via = Via::kPlain;
    shared_access(w, c.dst, c.bytes, true, loc, Via::kCpAsyncArrive);
    std::memcpy(c.dst, c.data, c.bytes);
  }
  f->cp_pending.erase(f->cp_pending.begin(), f->cp_pending.begin() + k);
}

// ---------------------------------------------------------------- warp-wide instructions
// "lane 3 (thread (3, 0, 0)): tile (element 8); lane 9 (...): ..." for the lanes in `bits`.
template <typename Address>
inline std::string list_lanes(const Worker& w, Fiber* const* lanes, unsigned bits, Address address) {
  std::ostringstream s;
  int n = 0;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(bits & (1u << l))) continue;
    if (n++) s << "; ";
    s << "lane " << l << " (thread " << fmt3(lanes[l]->idx) << "): " << describe_shared(w, address(l));
  }
  return s.str();
}

// "kernel k, block (0, 0, 0), warp 1: ldmatrix.x4 at f.cuh:12"
inline std::string warp_prefix(const Worker& w, Fiber* const* lanes, const std::string& what) {
  std::ostringstream s;
  s << where_prefix(w) << ", warp " << lanes[0]->linear / 32 << ": " << what << " at " << lanes[0]->site.file << ":"
    << lanes[0]->site.line;
  return s.str();
}

struct LdmatrixOperands {
  uint32_t* regs;
  int count;
  bool trans;
  const char* row;
  const std::source_location* loc;
};

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 for the whole warp: lanes 8j..8j+7
// give the row addresses of matrix j; register j of lane l gets row l/4, b16 columns 2(l%4)
// and 2(l%4)+1 of matrix j (.trans: rows 2(l%4) and 2(l%4)+1 of column l/4), the lower
// column (row) in the low half.
inline bool complete_ldmatrix(Worker& w, Fiber* const* lanes) {
  const LdmatrixOperands* ops[32];
  for (int l = 0; l < 32; ++l) ops[l] = static_cast<const LdmatrixOperands*>(lanes[l]->payload);
  const LdmatrixOperands& o = *ops[0];
  auto form = [](const LdmatrixOperands& p) {
    return "ldmatrix.x" + std::to_string(p.count) + (p.trans ? ".trans" : "");
  };
  for (int l = 1; l < 32; ++l)
    if (ops[l]->count != o.count || ops[l]->trans != o.trans) {
      w.error = warp_prefix(w, lanes, form(o)) + ": lanes execute different forms of it: lane 0 " + form(o) +
                ", lane " + std::to_string(l) + " " + form(*ops[l]);
      return false;
    }
  const int rows = 8 * o.count;  // the other lanes' addresses are not used
  unsigned misaligned = 0, outside = 0;
  for (int l = 0; l < rows; ++l) {
    const char* a = ops[l]->row;
    if (reinterpret_cast<uintptr_t>(a) % 16)
      misaligned |= 1u << l;
    else if (!in_shared_allocation(w, a, 16))
      outside |= 1u << l;
  }
  if (misaligned | outside) {
    auto row = [&](unsigned l) { return ops[l]->row; };
    w.error = warp_prefix(w, lanes, form(o)) + ": " +
              (misaligned ? "row addresses not 16-byte aligned: " + list_lanes(w, lanes, misaligned, row)
                          : "row addresses not within the block's shared memory: " + list_lanes(w, lanes, outside, row));
    return false;
  }
  uint16_t m[4][8][8];
  for (int s = 0; s < rows; ++s) {
    if (!shared_access_by(w, lanes[s]->linear, ops[s]->row, 16, false, Via::kLdmatrix, *ops[s]->loc)) return false;
    std::memcpy(m[s / 8][s % 8], ops[s]->row, 16);
  }
  for (int l = 0; l < 32; ++l) {
    const int r = l / 4, c = 2 * (l % 4);
    for (int j = 0; j < o.count; ++j) {
      const uint16_t lo = o.trans ? m[j][c][r] : m[j][r][c];
      const uint16_t hi = o.trans ? m[j][c + 1][r] : m[j][r][c + 1];
      ops[l]->regs[j] = lo | (static_cast<uint32_t>(hi) << 16);
    }
  }
  return true;
}

inline void ldmatrix(uint32_t* regs, int count, bool trans, const char* row, const std::source_location& loc) {
  if (count != 1 && count != 2 && count != 4)
    fail_instruction("ldmatrix loads 1, 2 or 4 matrices, not " + std::to_string(count), loc);
  const LdmatrixOperands op{regs, count, trans, row, &loc};
  warp_instruction(loc, WarpOp::kLdmatrix, &op, complete_ldmatrix);
}

// ---------------------------------------------------------------- mma.sync
// Operand values. Every product of two of them is exact in double (at most 11 + 11
// significant bits, exponents far inside double's range).
inline double f16_value(uint16_t h) {
  _Float16 v;
  std::memcpy(&v, &h, 2);
  return static_cast<double>(v);
}
inline double bf16_value(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
inline double tf32_value(uint32_t u) {  // the low 13 bits are not used
  u &= 0xFFFFE000u;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

struct MmaOperands {
  MmaKind kind;
  float* d;
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
};

inline const char* mma_form(MmaKind k) {
  switch (k) {
    case MmaKind::kF16: return "mma.sync.m16n8k16.row.col.f32.f16.f16.f32";
    case MmaKind::kBF16: return "mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32";
    case MmaKind::kTF32: return "mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32";
  }
  return "?";
}

// D = A B + C for the whole warp. Lane l = 4 g + t (groupID g, threadID_in_group t) holds
//   m16n8k16 (f16, bf16; two elements per register, the lower-numbered one in the low half):
//     a[i]: row g + 8 (i & 1), columns 2t + 8 (i >> 1) and +1;  b[i]: rows 2t + 8i and +1, column g
//   m16n8k8 (tf32): a[0] (g, t), a[1] (g + 8, t), a[2] (g, t + 4), a[3] (g + 8, t + 4);
//     b[0] (t, g), b[1] (t + 4, g)
//   c, d: [0] (g, 2t), [1] (g, 2t + 1), [2] (g + 8, 2t), [3] (g + 8, 2t + 1).
// Arithmetic: the emulator's deterministic model, not the tensor core's. Each product is exact
// in double; their sum over k (in ascending k) plus C is formed in double and rounded once to
// float. The hardware adds in its own order with its own intermediate precision (and may
// flush subnormals), so results can differ from a GPU's in the last bits; NaN and infinity
// propagate as in IEEE arithmetic.
inline bool complete_mma(Worker& w, Fiber* const* lanes) {
  const MmaOperands* ops[32];
  for (int l = 0; l < 32; ++l) ops[l] = static_cast<const MmaOperands*>(lanes[l]->payload);
  const MmaKind kind = ops[0]->kind;
  for (int l = 1; l < 32; ++l)
    if (ops[l]->kind != kind) {
      w.error = warp_prefix(w, lanes, "mma.sync") + ": lanes execute different forms of it: lane 0 " + mma_form(kind) +
                ", lane " + std::to_string(l) + " " + mma_form(ops[l]->kind);
      return false;
    }
  const int K = kind == MmaKind::kTF32 ? 8 : 16;
  double A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    const MmaOperands& o = *ops[l];
    const int g = l / 4, t = l % 4;
    if (kind == MmaKind::kTF32) {
      for (int i = 0; i < 4; ++i) A[g + 8 * (i & 1)][t + 4 * (i >> 1)] = tf32_value(o.a[i]);
      for (int i = 0; i < 2; ++i) B[t + 4 * i][g] = tf32_value(o.b[i]);
    } else {
      auto value = kind == MmaKind::kF16 ? f16_value : bf16_value;
      for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i & 1), col = 2 * t + 8 * (i >> 1);
        A[row][col] = value(static_cast<uint16_t>(o.a[i]));
        A[row][col + 1] = value(static_cast<uint16_t>(o.a[i] >> 16));
      }
      for (int i = 0; i < 2; ++i) {
        B[2 * t + 8 * i][g] = value(static_cast<uint16_t>(o.b[i]));
        B[2 * t + 8 * i + 1][g] = value(static_cast<uint16_t>(o.b[i] >> 16));
      }
    }
    for (int i = 0; i < 4; ++i) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = o.c[i];
  }
  // All of C is gathered before any d is written: d may alias c.
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
      double sum = 0.0;
      for (int k = 0; k < K; ++k) sum += A[row][k] * B[k][col];
      ops[l]->d[i] = static_cast<float>(C[row][col] + sum);
    }
  }
  return true;
}

inline void mma(MmaKind kind, float* d, const uint32_t* a, const uint32_t* b, const float* c,
                const std::source_location& loc) {
  const MmaOperands op{kind, d, a, b, c};
  warp_instruction(loc, WarpOp::kMma, &op, complete_mma);
}

// cvt.rna.tf32.f32 on float32 bits: round to nearest, ties away from zero, to 10 mantissa
// bits, low 13 bits cleared. Adding half a TF32 unit to the magnitude bits and truncating
// does exactly that, carrying into the exponent where the mantissa overflows (the largest
// floats round to infinity). Infinity stays infinity; a NaN stays a (quiet) NaN even when its
// payload lies only in the low 13 bits, which plain truncation would turn into infinity.
inline uint32_t cvt_rna_tf32(uint32_t x) {
  if ((x & 0x7F800000u) == 0x7F800000u) {
    if ((x & 0x007FFFFFu) == 0) return x;
    return (x & 0xFFFFE000u) | 0x00400000u;
  }
  return (x + 0x1000u) & 0xFFFFE000u;
}

// ---------------------------------------------------------------- st.shared / ld.shared
inline void check_shared_vector(const char* what, const char* a, int bytes, const std::source_location& loc) {
  Worker& w = worker();
  if (reinterpret_cast<uintptr_t>(a) % bytes)
    fail_instruction(std::string(what) + " address " + describe_shared(w, a) + " is not " + std::to_string(bytes) +
                         "-byte aligned",
                     loc);
  if (!in_shared_allocation(w, a, bytes))
    fail_instruction(std::string(what) + " address " + describe_shared(w, a) + " is not within the block's shared memory",
                     loc);
}

inline void st_shared(char* dst, const void* v, int bytes, const std::source_location& loc) {
  check_shared_vector("st.shared", dst, bytes, loc);
  shared_access(dst, bytes, true, loc);
  std::memcpy(dst, v, bytes);
}

inline void ld_shared(void* v, const char* src, int bytes, const std::source_location& loc) {
  check_shared_vector("ld.shared", src, bytes, loc);
  shared_access(src, bytes, false, loc);
  std::memcpy(v, src, bytes);
}

}  // namespace fastalex_emu
