// fastalex's tensor-core primitives: the only way device code reaches mma.sync, ldmatrix,
// cp.async and raw shared-memory vector accesses. Under nvcc each is one inline PTX
// instruction; under the SIMT emulator (FASTALEX_EMU) each is a call into csrc/emu/tensor_core.h,
// which implements the PTX ISA's semantics (fragment layouts, ldmatrix's per-lane row
// addresses, cp.async groups completing at wait_group) and feeds every shared-memory byte it
// touches to the race detector. A later sm_90 path (wgmma + TMA) adds its primitives here.
//
// Shared memory is addressed by SmemAddr, a byte address: the 32-bit shared-window address the
// PTX instructions take under nvcc, a plain char* into the block's shared memory in the
// emulator. Both support `addr + bytes`.
#pragma once

#include "cuda/device_common.cuh"

#ifdef FASTALEX_EMU
#include <source_location>
#define FA_LOC_PARAM , const std::source_location& fa_loc = std::source_location::current()
#define FA_LOC_ONLY_PARAM const std::source_location& fa_loc = std::source_location::current()
#endif

namespace fastalex {
namespace cuda {

#ifdef FASTALEX_EMU
using SmemAddr = char*;
template <typename P>
FA_DEVICE SmemAddr smem_addr(const P& p) {
  return ::fastalex_emu::shared_byte_address(p);
}
#else
using SmemAddr = uint32_t;
FA_DEVICE SmemAddr smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
#endif

// ---------------------------------------------------------------- cp.async (sm_80+)
// Copies 16 bytes global -> shared without registers; bytes [src_bytes, 16) of the
// destination are zero-filled (src_bytes 0: padding and edges read nothing). The copy is
// complete only after a cp_async_wait<N>() that retires its group.
#ifdef FASTALEX_EMU
FA_DEVICE void cp_async_16(SmemAddr dst, const void* src, int src_bytes FA_LOC_PARAM) {
  ::fastalex_emu::cp_async(dst, src, 16, src_bytes, fa_loc);
}
FA_DEVICE void cp_async_commit(FA_LOC_ONLY_PARAM) { ::fastalex_emu::cp_async_commit(fa_loc); }
// Waits until at most N committed groups of this thread are still in flight.
template <int N>
FA_DEVICE void cp_async_wait(FA_LOC_ONLY_PARAM) {
  ::fastalex_emu::cp_async_wait(N, fa_loc);
}
#else
FA_DEVICE void cp_async_16(SmemAddr dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
FA_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
FA_DEVICE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#endif

// ---------------------------------------------------------------- ldmatrix
// Warp-wide: lanes 8j..8j+7 give the 16-byte-aligned row addresses of 8x8 b16 matrix j;
// register j of lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of matrix j (.trans: row
// 2(l%4) and 2(l%4)+1 of column l/4). All 32 lanes must call it together (addresses of
// lanes beyond the matrices used are ignored but the lanes must be there).
#ifdef FASTALEX_EMU
FA_DEVICE void ldmatrix_x4(uint32_t (&r)[4], SmemAddr row FA_LOC_PARAM) {
  ::fastalex_emu::ldmatrix(r, 4, false, row, fa_loc);
}
FA_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], SmemAddr row FA_LOC_PARAM) {
  ::fastalex_emu::ldmatrix(r, 4, true, row, fa_loc);
}
FA_DEVICE void ldmatrix_x2(uint32_t (&r)[2], SmemAddr row FA_LOC_PARAM) {
  ::fastalex_emu::ldmatrix(r, 2, false, row, fa_loc);
}
FA_DEVICE void ldmatrix_x2_trans(uint32_t (&r)[2], SmemAddr row FA_LOC_PARAM) {
  ::fastalex_emu::ldmatrix(r, 2, true, row, fa_loc);
}
#else
FA_DEVICE void ldmatrix_x4(uint32_t (&r)[4], SmemAddr row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(row));
}
FA_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], SmemAddr row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(row));
}
FA_DEVICE void ldmatrix_x2(uint32_t (&r)[2], SmemAddr row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(row));
}
FA_DEVICE void ldmatrix_x2_trans(uint32_t (&r)[2], SmemAddr row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(row));
}
#endif

// ---------------------------------------------------------------- mma.sync
// D = A * B + C with float32 accumulators, warp-wide (lane = 4 * groupID + threadID_in_group).
//   m16n8k16 (f16, bf16): A 4 regs of 2 elements, B 2 regs, C/D 4 floats.
//   m16n8k8 (tf32):       A 4 regs of 1 element, B 2 regs, C/D 4 floats; operands must
//                         already be TF32 (to_tf32), their low 13 bits are not used.
// Tag types select the instruction.
struct MmaF16 {};
struct MmaBF16 {};
struct MmaTF32 {};

#ifdef FASTALEX_EMU
FA_DEVICE void mma(MmaF16, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2] FA_LOC_PARAM) {
  ::fastalex_emu::mma(::fastalex_emu::MmaKind::kF16, d, a, b, d, fa_loc);
}
FA_DEVICE void mma(MmaBF16, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2] FA_LOC_PARAM) {
  ::fastalex_emu::mma(::fastalex_emu::MmaKind::kBF16, d, a, b, d, fa_loc);
}
FA_DEVICE void mma(MmaTF32, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2] FA_LOC_PARAM) {
  ::fastalex_emu::mma(::fastalex_emu::MmaKind::kTF32, d, a, b, d, fa_loc);
}
#else
FA_DEVICE void mma(MmaF16, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
FA_DEVICE void mma(MmaBF16, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
FA_DEVICE void mma(MmaTF32, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// float32 bits -> TF32 bits, rounded to nearest with ties away from zero (cvt.rna.tf32.f32,
// what cuDNN and cuBLAS do); NaN and inf stay NaN and inf.
#ifdef FASTALEX_EMU
FA_DEVICE uint32_t to_tf32(uint32_t bits) { return ::fastalex_emu::cvt_rna_tf32(bits); }
#else
FA_DEVICE uint32_t to_tf32(uint32_t bits) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(bits)));
  return r;
}
#endif

// ---------------------------------------------------------------- plain shared accesses
// 4- and 16-byte shared-memory stores and loads at byte addresses (the epilogue's staging).
struct alignas(16) Vec16 {
  uint32_t w[4];
};
#ifdef FASTALEX_EMU
FA_DEVICE void st_shared_b32(SmemAddr a, uint32_t v FA_LOC_PARAM) { ::fastalex_emu::st_shared(a, &v, 4, fa_loc); }
FA_DEVICE Vec16 ld_shared_b128(SmemAddr a FA_LOC_PARAM) {
  Vec16 v;
  ::fastalex_emu::ld_shared(&v, a, 16, fa_loc);
  return v;
}
#else
FA_DEVICE void st_shared_b32(SmemAddr a, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a), "r"(v) : "memory");
}
FA_DEVICE Vec16 ld_shared_b128(SmemAddr a) {
  Vec16 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3])
               : "r"(a)
               : "memory");
  return v;
}
#endif

// ---------------------------------------------------------------- swizzle
// Tiles whose rows are 64 bytes (four 16-byte chunks): chunk c of row r is stored at chunk
// c ^ ((r >> 1) & 3). The 8 rows one ldmatrix phase reads (same logical chunk, rows r..r+7)
// then land in 8 distinct 16-byte bank groups, and so do the 16-byte cp.async writes of
// 8 consecutive threads (2 rows x 4 chunks).
FA_HOST_DEVICE int swizzle64(int row, int chunk) { return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4); }

}  // namespace cuda
}  // namespace fastalex

#ifdef FASTALEX_EMU
#undef FA_LOC_PARAM
#undef FA_LOC_ONLY_PARAM
#endif
