// fastalex's SIMT emulator: runs CUDA kernels' device code, compiled by the host compiler,
// on the CPU with the checks a GPU does not give.
//
//  - Each thread of a block is a fiber (ucontext) with its own 64 KiB stack above a guard
//    page; the fibers of a block run on one OS thread and switch only at barriers and warp
//    collectives; blocks run in parallel on worker OS threads.
//  - __syncthreads() is a counting barrier over the live threads of the block. Threads
//    waiting at different barriers, a thread exiting while others wait, and deadlocks are
//    errors that name the kernel, block, threads and file:line of each barrier.
//  - Warp collectives (__syncwarp, __shfl*_sync, __ballot_sync, __any/__all_sync) are
//    rendezvous of the lanes named in the mask, which must all arrive at the same call with
//    the same mask.
//  - The order in which threads start and resume after each barrier is a schedule
//    (ascending, descending, seeded random, random by warp); block order is shuffled by the
//    seed. Running a kernel under several schedules and comparing the results bit for bit
//    exposes order-dependent races such as a missing __syncthreads.
//  - Shared memory is per block and filled with 0xFF (NaN for every float type) at each block
//    start; static arrays (FA_SHARED_ARRAY) are bounds-checked at every index, dynamic shared
//    memory (FA_DYNAMIC_SHARED, a SharedPtr) at every element access, and it ends at a guard
//    page. Every access to shared memory, by any path, feeds one race detector: two threads
//    touching the same bytes, one writing, with no __syncthreads() between are reported with
//    both lines. Launch limits are those of the GPU.
//  - The tensor-core primitives (cuda/mma_primitives.cuh: cp.async groups, ldmatrix,
//    mma.sync, cvt.rna.tf32) follow the PTX ISA: cp.async data lands at the wait that retires
//    its group, and touching it before that is an error; ldmatrix and mma.sync are warp-wide.
//  - Global buffers passed to a kernel (device_copy) are copied next to guard pages, so an
//    out-of-bounds access faults; the fault is reported with the kernel, thread, buffer and
//    source line (addr2line on the faulting instruction).
//
// Header-only; the host code of a kernel includes it through cuda/host_glue.h. This file only
// includes the parts, in dependency order:
//   config.h          launch types, error type, settings, launch records
//   guarded_memory.h  guard-paged regions and global buffers (device_copy)
//   fibers.h          fiber and worker state; threadIdx & co., __syncthreads, fail()
//   warp.h            warp collectives, and the parking of warp-wide instructions
//   shared_race.h     the race detector: a shadow of the block's whole shared memory
//   shared_checks.h   bounds-checked static shared arrays; SharedPtr to dynamic shared memory
//   tensor_core.h     cp.async, ldmatrix, mma.sync, cvt.rna.tf32, st/ld.shared
//   scheduler.h       running one block: schedules, barriers, deadlock reports
//   faults.h          fault handling and descriptions
//   launch.h          launch<kernel>(...): checks, worker threads, copy-back
#pragma once

#include "emu/config.h"
#include "emu/guarded_memory.h"
#include "emu/fibers.h"
#include "emu/warp.h"
#include "emu/shared_race.h"
#include "emu/shared_checks.h"
#include "emu/tensor_core.h"
#include "emu/scheduler.h"
#include "emu/faults.h"
#include "emu/launch.h"
