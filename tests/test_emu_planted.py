"""Planted bugs the SIMT emulator must catch, each with a message naming the kernel, the
threads and the source line of the bug; plus correct controls it must pass.

The planted kernels (tests/emu_planted/planted_kernels.cuh) are compiled here with the host
compiler into a small library without torch and run through ctypes."""
import ctypes
import glob
import math
import os
import re

import host_library
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_DIR = os.path.join(ROOT, "tests", "emu_planted")
KERNELS = os.path.join(SRC_DIR, "planted_kernels.cuh")
# Rebuilt when any of these changes: the runner, the kernels, every emulator header.
COMMON = [os.path.join(SRC_DIR, "runner_common.h"), os.path.join(ROOT, "csrc", "cuda", "device_common.cuh"),
          os.path.join(ROOT, "csrc", "cuda", "mma_primitives.cuh"), os.path.join(ROOT, "csrc", "cuda", "lrn_window.cuh")] + sorted(glob.glob(os.path.join(ROOT, "csrc", "emu", "*.h")))
SOURCES = [os.path.join(SRC_DIR, "runner.cpp"), KERNELS] + COMMON
LRN_KERNEL = os.path.join(ROOT, "csrc", "cuda", "local_response_norm_kernel.cuh")
LRN_RUNNER = os.path.join(SRC_DIR, "lrn_runner.cpp")
SCHEDULES = ["ascending", "descending", "random", "warp_random"]


def build(out, sources, defines=()):
    """Compiles sources[0] (which includes the rest) into the shared library `out`, unless it is newer than all."""
    return host_library.build(out, sources[0], sources[1:], [os.path.join(ROOT, "csrc"), SRC_DIR], defines,
                              what="the planted kernels")


@pytest.fixture(scope="module")
def lib():
    return build(os.path.join(ROOT, "build", "emu_planted.so"), SOURCES)


def line_of(marker):
    with open(KERNELS) as f:
        for i, line in enumerate(f, 1):
            if f"PLANTED: {marker}" in line:
                return i
    raise AssertionError(f"marker {marker} not found")


def at(marker):
    return rf"planted_kernels\.cuh:{line_of(marker)}\b"


def run(lib, name, schedule="ascending", seed=0, guard_at_start=False):
    out = (ctypes.c_float * 4096)()
    err = ctypes.create_string_buffer(16384)
    rc = lib.run_planted(name.encode(), schedule.encode(), ctypes.c_uint64(seed), int(guard_at_start), out, 4096, err, 16384)
    assert rc in (0, 1), err.value.decode()
    return rc, err.value.decode(), np.array(out[:], dtype=np.float32)


def data(n, salt):
    i = np.arange(n)
    return (((i * 37 + salt * 11) % 23) - 11).astype(np.float32) / 8


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_correct_gemm_passes_every_schedule(lib, schedule):
    rc, err, out = run(lib, "gemm_correct", schedule, seed=3)
    assert rc == 0, err
    M, N, K = 37, 29, 45
    ref = data(M * K, 1).reshape(M, K).astype(np.float64) @ data(K * N, 2).reshape(K, N)
    np.testing.assert_allclose(out[: M * N].reshape(M, N), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", ["gemm_missing_first_sync", "gemm_missing_second_sync"])
def test_missing_syncthreads_is_a_reported_race(lib, name, schedule):
    rc, err, _ = run(lib, name, schedule, seed=5)
    assert rc == 1
    assert "kernel planted::tiled_gemm" in err
    assert re.search(r"(read-after-write|write-after-read|write-after-write) data race on shared memory (as|bs)", err), err
    assert "with no __syncthreads() between" in err
    # Both accesses are named: the tile store and the use in the inner product.
    assert re.search(r"planted_kernels\.cuh:2[0-9]\b", err) and re.search(at("gemm-use"), err), err
    assert f"FASTALEX_EMU_SCHEDULE={schedule}:5" in err


def test_barrier_in_divergent_branch(lib):
    rc, err, _ = run(lib, "divergent_barrier")
    assert rc == 1
    assert "threads wait at different __syncthreads() barriers" in err
    assert re.search(at("divergent-barrier") + r" <- threads \(0, 0, 0\)\.\.\(15, 0, 0\)", err), err
    assert re.search(at("common-barrier") + r" <- threads \(16, 0, 0\)\.\.\(63, 0, 0\)", err), err


def test_thread_returning_before_a_barrier(lib):
    rc, err, _ = run(lib, "early_return", "descending")
    assert rc == 1
    assert re.search(r"threads \(5, 0, 0\) exited while threads .* wait at __syncthreads\(\) at .*" + at("early-return-barrier"), err), err


def test_shared_memory_index_out_of_bounds(lib):
    rc, err, _ = run(lib, "shared_oob")
    assert rc == 1
    assert re.search(r"thread \(63, 0, 0\): shared-memory index 64 out of bounds for tile \(extent 64\), at .*" + at("shared-oob"), err), err


def test_global_read_past_the_end(lib):
    rc, err, _ = run(lib, "global_oob_past_end", guard_at_start=False)
    assert rc == 1
    assert re.search(r"out-of-bounds global read at byte offset 1200 of in \(1200 bytes\), at .*" + at("global-oob"), err), err


def test_global_read_before_the_start(lib):
    rc, err, _ = run(lib, "global_oob_before_start", guard_at_start=True)
    assert rc == 1
    assert re.search(r"thread \(0, 0, 0\): out-of-bounds global read at byte offset -4 of in \(1200 bytes\), at .*" + at("global-oob"), err), err


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_warp_shuffle_and_ballot(lib, schedule):
    rc, err, out = run(lib, "warp_sum", schedule, seed=1)
    assert rc == 0, err
    x = data(96, 5).reshape(3, 32)
    np.testing.assert_allclose(out[0:6:2], x.sum(1), rtol=1e-6)
    np.testing.assert_array_equal(out[1:6:2], (x > 0).sum(1))


def test_half_warp_shuffle(lib):
    rc, err, _ = run(lib, "warp_half_shuffle")
    assert rc == 1
    assert "lanes of warp 0 meet at different warp collectives" in err
    assert re.search(at("half-warp-shuffle"), err), err


def test_deadlock(lib):
    rc, err, _ = run(lib, "warp_deadlock")
    assert rc == 1
    assert "deadlock: no thread can proceed" in err
    assert re.search(r"__syncwarp at .*" + at("deadlock-syncwarp"), err), err
    assert re.search(r"__syncthreads at .*" + at("deadlock-barrier"), err), err


def test_dynamic_shared_memory_is_poisoned_per_block(lib):
    rc, err, out = run(lib, "dynamic_shared_poison")
    assert rc == 0, err
    assert np.isnan(out[:32]).all() and (out[:32].view(np.uint32) == 0xFFFFFFFF).all()
    rc, err, out = run(lib, "dynamic_shared_ok")
    assert rc == 0, err
    np.testing.assert_array_equal(out[:32], (np.arange(32) + 1) % 32)


def test_dynamic_shared_memory_out_of_bounds(lib):
    rc, err, _ = run(lib, "dynamic_shared_oob")
    assert rc == 1
    assert re.search(r"out-of-bounds shared-memory write \(dynamic shared memory is 128 bytes\), at .*" + at("dynamic-shared-oob"), err), err


def test_pointer_arithmetic_on_dynamic_shared_memory(lib):
    rc, err, out = run(lib, "shared_ptr_ok")
    assert rc == 0, err
    u = (np.arange(32) + 1) % 32  # each thread reads the pair of the next one through two pointers
    np.testing.assert_array_equal(out[:32], 191 * u + 1100)
    rc, err, _ = run(lib, "shared_ptr_before_start")
    assert rc == 1
    assert re.search(r"thread \(0, 0, 0\): out-of-bounds shared-memory read \(dynamic shared memory is 256 bytes\), at .*"
                     + at("shared-ptr-before-start") + r" \(bytes \[-4, 0\)\)", err), err


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("launch_1025_threads", r"more than 1024 threads per block"),
        ("launch_grid_y_65536", r"grid dimensions above \(2\^31-1, 65535, 65535\)"),
        ("launch_64k_dynamic_shared", r"dynamic shared memory above 48 KiB without cudaFuncSetAttribute"),
        ("launch_228k_dynamic_shared", r"dynamic shared memory above 227 KiB"),
    ],
)
def test_launch_limits(lib, name, pattern):
    rc, err, _ = run(lib, name)
    assert rc == 1
    assert re.search(r"invalid launch of planted::dynamic_shared .*" + pattern, err), err


def test_opted_in_dynamic_shared_memory_launches(lib):
    rc, err, _ = run(lib, "launch_64k_dynamic_shared_opted_in")
    assert rc == 0, err


# ---------------------------------------------------------------- tensor-core primitives
MMA_KINDS = ["f16", "bf16", "tf32"]


def mma_reference(kind):
    """D = A B + C of runner.cpp's run_mma: the zero-filled parts of A and B are zeros."""
    K = 8 if kind == "tf32" else 16
    mv, kv, nv = 13, (7 if kind == "tf32" else 11), 7
    a = np.zeros((16, K))
    a[:mv, :kv] = data(16 * K, 6).reshape(16, K)[:mv, :kv]
    b = np.zeros((K, 8))
    b[:kv, :nv] = data(K * 8, 7).reshape(K, 8)[:kv, :nv]
    return (a @ b + data(128, 8).reshape(16, 8)).astype(np.float32)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("kind", MMA_KINDS)
def test_mma_on_fragments_from_cp_async_and_ldmatrix(lib, kind, schedule):
    # Small multiples of 1/8: every operand is exact in f16, bf16 and tf32 and so is the result.
    rc, err, out = run(lib, f"mma_{kind}", schedule, seed=2)
    assert rc == 0, err
    np.testing.assert_array_equal(out[:128].reshape(16, 8), mma_reference(kind))


@pytest.mark.parametrize("kind", MMA_KINDS)
def test_swapped_fragment_registers_give_a_wrong_result(lib, kind):
    line_of("swapped-fragment")
    rc, err, out = run(lib, f"mma_{kind}_swap")
    assert rc == 0, err
    assert not np.array_equal(out[:128].reshape(16, 8), mma_reference(kind))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("kind", MMA_KINDS)
def test_lane_missing_from_mma(lib, kind, schedule):
    rc, err, _ = run(lib, f"mma_{kind}_lane_missing", schedule)
    assert rc == 1
    assert re.search(r"thread \(7, 0, 0\) \(lane 7\) exited while its warp waits in mma\.sync at .*" + at("mma-lane-missing"), err), err


def test_lane_waiting_at_a_barrier_instead_of_mma(lib):
    rc, err, _ = run(lib, "mma_bf16_lane_at_barrier")
    assert rc == 1
    assert "deadlock: no thread can proceed" in err
    assert re.search(r"mma\.sync at .*" + at("mma-lane-missing") + r" <- threads \(0, 0, 0\)\.\.\(6, 0, 0\), \(8, 0, 0\)\.\.\(31, 0, 0\)", err), err
    assert re.search(r"__syncthreads at .*" + at("mma-barrier") + r" <- threads \(7, 0, 0\)", err), err


def test_lane_in_another_collective_than_mma(lib):
    rc, err, _ = run(lib, "mma_tf32_lane_at_syncwarp")
    assert rc == 1
    assert re.search(r"lanes of warp 0 meet at different warp collectives: thread \(\d+, 0, 0\) in mma\.sync\(mask 0xffffffff\) at .*"
                     + at("mma-lane-missing") + r", thread \(7, 0, 0\) in __syncwarp\(mask 0xffffffff\) at .*" + at("mma-syncwarp"), err), err


def test_ldmatrix_row_not_16_byte_aligned(lib):
    rc, err, _ = run(lib, "mma_f16_misaligned")
    assert rc == 1
    assert re.search(r"kernel planted::mma_single<fastalex::cuda::MmaF16>, block \(0, 0, 0\), warp 0: ldmatrix\.x4 at .*"
                     + at("mma-ldmatrix-a") + r": row addresses not 16-byte aligned: lane 3 \(thread \(3, 0, 0\)\): as \(element 25\)", err), err


def test_ldmatrix_row_outside_shared_memory(lib):
    rc, err, _ = run(lib, "mma_bf16_outside")
    assert rc == 1
    assert re.search(r"warp 0: ldmatrix\.x4 at .*" + at("mma-ldmatrix-a") + r": row addresses not within the block's shared "
                     r"memory: lane 5 \(thread \(5, 0, 0\)\): no allocation \(byte 4256 of the block's shared memory", err), err


@pytest.mark.parametrize("kind", MMA_KINDS)
def test_ldmatrix_before_cp_async_wait(lib, kind):
    rc, err, _ = run(lib, f"mma_{kind}_no_wait")
    assert rc == 1
    assert re.search(r"thread \(0, 0, 0\) reads \(ldmatrix\) shared memory as \(element 0\) at .*" + at("mma-ldmatrix-a")
                     + r" while the cp\.async that thread \(0, 0, 0\) issued into it at .*" + at("mma-cp-async-a")
                     + r" is still in flight \(thread \(0, 0, 0\) has not waited since committing its group\)", err), err


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("kind", MMA_KINDS)
def test_missing_barrier_between_cp_async_wait_and_ldmatrix(lib, kind, schedule):
    # Each lane waits for its own copies only: other lanes' rows need a barrier.
    rc, err, _ = run(lib, f"mma_{kind}_no_barrier", schedule, seed=4)
    assert rc == 1
    assert re.search(r"read-after-write data race on shared memory as \(element \d+\): thread \(\d+, 0, 0\) completes a "
                     r"cp\.async into it \(its cp_async_wait\) at .*" + at("mma-wait") + r" and thread \(\d+, 0, 0\) reads "
                     r"it with ldmatrix at .*" + at("mma-ldmatrix-a") + r" with no __syncthreads\(\) between", err), err


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", ["copy_ok", "copy_left_in_flight"])
def test_cp_async_st_ld_shared(lib, name, schedule):
    # copy_left_in_flight: a copy never waited for and never read is no error (as on a GPU).
    rc, err, out = run(lib, name, schedule, seed=6)
    assert rc == 0, err
    np.testing.assert_array_equal(out[:128], 3 * data(128, 9))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_cp_async_destination_read_before_wait(lib, schedule):
    rc, err, _ = run(lib, "copy_no_wait", schedule, seed=6)
    assert rc == 1
    assert re.search(r"thread \((\d+), 0, 0\) reads dynamic shared memory \(byte offset \d+\) at .*" + at("copy-read-own")
                     + r" while the cp\.async that thread \(\1, 0, 0\) issued into it at .*" + at("copy-issue")
                     + r" is still in flight", err), err


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_cp_async_into_bytes_already_in_flight(lib, schedule):
    rc, err, _ = run(lib, "copy_overlap", schedule, seed=6)
    assert rc == 1
    assert re.search(r"thread \(\d+, 0, 0\) issues a cp\.async into dynamic shared memory \(byte offset \d+\) at .*"
                     + at("copy-issue") + r" while the cp\.async that thread \(\d+, 0, 0\) issued into the same bytes at .*"
                     + at("copy-issue") + r" is still in flight", err), err


def test_cp_async_destination_not_16_byte_aligned(lib):
    rc, err, _ = run(lib, "copy_misaligned")
    assert rc == 1
    assert re.search(r"thread \(3, 0, 0\): cp\.async destination dynamic shared memory \(byte offset 52\) is not 16-byte "
                     r"aligned, at .*" + at("copy-issue"), err), err


def test_cp_async_source_out_of_bounds_faults_at_the_issue(lib):
    rc, err, _ = run(lib, "copy_source_past_end")
    assert rc == 1
    assert re.search(r"thread \(31, 0, 0\): out-of-bounds global read at byte offset 512 of in \(512 bytes\), at .*"
                     + at("copy-issue") + r" \(the source of a cp\.async\)", err), err


def gemm_reference(M=45, N=24, K=88):
    return (data(M * K, 10).reshape(M, K).astype(np.float64) @ data(K * N, 11).reshape(K, N)).astype(np.float32)


@pytest.mark.parametrize("name", ["pipe_ok", "pipe_ok_1warp"])
def test_pipelined_gemm_passes_every_schedule_bit_identically(lib, name):
    outs = []
    for schedule in SCHEDULES:
        rc, err, out = run(lib, name, schedule, seed=8)
        assert rc == 0, err
        outs.append(out[: 45 * 24])
    np.testing.assert_array_equal(outs[0].reshape(45, 24), gemm_reference())
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pipeline_reading_the_next_stage(lib, schedule):
    line_of("pipe-stage")
    rc, err, _ = run(lib, "pipe_stage", schedule, seed=8)
    assert rc == 1
    assert re.search(r"reads \(ldmatrix\) dynamic shared memory \(byte offset \d+\) at .*" + at("pipe-ldmatrix-a")
                     + r" while the cp\.async that thread \(\d+, 0, 0\) issued into it at .*" + at("pipe-issue-a")
                     + r" is still in flight", err), err


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pipeline_waiting_for_one_group_too_few(lib, schedule):
    rc, err, _ = run(lib, "pipe_wait", schedule, seed=8)
    assert rc == 1
    assert re.search(r"reads \(ldmatrix\) dynamic shared memory \(byte offset \d+\) at .*" + at("pipe-ldmatrix-a")
                     + r" while the cp\.async that thread \(\d+, 0, 0\) issued into it at .*" + at("pipe-issue-a")
                     + r" is still in flight \(thread \(\d+, 0, 0\)'s last cp_async_wait<2>, at .*" + at("pipe-wait-too-few"),
                     err), err


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pipeline_refilling_a_stage_before_the_barrier(lib, schedule):
    rc, err, _ = run(lib, "pipe_early", schedule, seed=8)
    assert rc == 1
    assert re.search(r"write-after-read data race on dynamic shared memory \(byte offset \d+\): thread \(\d+, 0, 0\) reads it "
                     r"with ldmatrix at .*(" + at("pipe-ldmatrix-a") + "|" + at("pipe-ldmatrix-b") + r") and thread "
                     r"\(\d+, 0, 0\) issues a cp\.async into it at .*(" + at("pipe-issue-a") + "|" + at("pipe-issue-b")
                     + r") with no __syncthreads\(\) between", err), err


# ---------------------------------------------------------------- cvt.rna.tf32.f32
def tf32_rna(x):
    """float32 -> TF32 (as float), rounded to nearest with ties away from zero, from the values."""
    x = float(x)
    if math.isnan(x) or math.isinf(x) or x == 0:
        return x
    m, e = math.frexp(abs(x))  # |x| = m 2^e, m in [0.5, 1): 11 significant bits, or TF32's subnormal spacing 2^-136
    quantum = 2.0 ** max(e - 11, -136)
    v = math.floor(abs(x) / quantum + 0.5) * quantum
    if v >= 2.0 ** 128:
        v = math.inf
    return math.copysign(v, x)


def test_to_tf32_rounds_to_nearest_ties_away(lib):
    f = lib.planted_to_tf32
    f.restype = ctypes.c_uint32
    f.argtypes = [ctypes.c_uint32]

    def cvt(bits):
        return int(f(bits))

    def bits(v):
        return int(np.array(v, dtype=np.float32).view(np.uint32))

    one = 0x3F800000
    assert cvt(one + 0x1000) == one + 0x2000  # 1 + 2^-11, a tie: away from zero (even would give 1)
    assert cvt(0x80000000 | (one + 0x1000)) == 0x80000000 | (one + 0x2000)  # and for negatives
    assert cvt(one + 0x0FFF) == one  # just below the tie
    assert cvt(one + 0x3000) == one + 0x4000  # 1 + 3 2^-11: away from zero (even would agree here)
    assert cvt(0x3FFFF000) == 0x40000000  # the mantissa overflows into the exponent: 2.0
    assert cvt(0xBFFFF000) == 0xC0000000
    assert cvt(0x7F7FFFFF) == 0x7F800000  # the largest float rounds to infinity
    assert cvt(0xFF7FFFFF) == 0xFF800000
    assert cvt(0x7F7FEFFF) == 0x7F7FE000  # below the tie: the largest TF32
    assert cvt(0x7F800000) == 0x7F800000 and cvt(0xFF800000) == 0xFF800000
    assert cvt(0x00001000) == 0x00002000 and cvt(0x00000FFF) == 0  # subnormals
    assert cvt(0x80000000) == 0x80000000 and cvt(0) == 0
    for nan in [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800FFF, 0x7FBFFFFF, 0x7F801000]:
        r = cvt(nan)
        assert (r & 0x7F800000) == 0x7F800000 and (r & 0x007FFFFF) != 0, hex(nan)  # still NaN
        assert r & 0x1FFF == 0 and (r ^ nan) & 0x80000000 == 0, hex(nan)
    assert cvt(0x7FC00000) == 0x7FC00000
    rng = np.random.default_rng(0)
    samples = list(rng.integers(0, 2**32, 20000, dtype=np.uint64))
    samples += [bits(v) for v in rng.standard_normal(2000)]
    for b in samples:
        b = int(b)
        x = np.array(b, dtype=np.uint32).view(np.float32)
        if np.isnan(x):
            continue
        assert cvt(b) == bits(tf32_rna(x)), hex(b)


# ---------------------------------------------------------------- the LRN kernel's ring
def lrn_reference(x, size, alpha, beta, k):
    sq = x.astype(np.float64) ** 2
    pre, post, C = size // 2, (size - 1) // 2, x.shape[1]
    sums = np.stack([sq[:, max(0, c - pre): min(C, c + post + 1)].sum(1) for c in range(C)], 1)
    return x / (k + alpha / size * sums) ** beta


def lrn_lib(kernel_path, tag):
    out = os.path.join(ROOT, "build", f"emu_lrn_{tag}.so")
    return build(out, [LRN_RUNNER, kernel_path] + COMMON, [f'-DLRN_KERNEL="{kernel_path}"'])


def run_lrn(lib, x, size, schedule="ascending", seed=0, alpha=0.5, beta=0.75, k=1.0):
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.zeros_like(x)
    err = ctypes.create_string_buffer(16384)
    fp = ctypes.POINTER(ctypes.c_float)
    rc = lib.run_lrn(schedule.encode(), ctypes.c_uint64(seed), *[ctypes.c_int(v) for v in (*x.shape, size)],
                     ctypes.c_double(alpha), ctypes.c_double(beta), ctypes.c_double(k), x.ctypes.data_as(fp),
                     y.ctypes.data_as(fp), err, 16384)
    return rc, err.value.decode(), y


LRN_X = np.random.default_rng(1).standard_normal((2, 7, 150)).astype(np.float32)  # 300 pixels: 2 blocks, one partial


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lrn_ring_in_dynamic_shared_memory_passes(schedule):
    rc, err, y = run_lrn(lrn_lib(LRN_KERNEL, "real"), LRN_X, 5, schedule, seed=3)
    assert rc == 0, err
    np.testing.assert_allclose(y, lrn_reference(LRN_X, 5, 0.5, 0.75, 1.0), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lrn_ring_shared_by_two_threads_is_a_reported_race(schedule):
    with open(LRN_KERNEL) as f:
        text = f.read()
    old, new = "ring = smem + threadIdx.x;", "ring = smem + threadIdx.x / 2;"
    assert text.count(old) == 1
    mutated = os.path.join(ROOT, "build", "emu_lrn_mutated", "local_response_norm_kernel.cuh")
    os.makedirs(os.path.dirname(mutated), exist_ok=True)
    mutated_text = text.replace(old, new)
    if not os.path.exists(mutated) or open(mutated).read() != mutated_text:
        with open(mutated, "w") as f:
            f.write(mutated_text)
    rc, err, _ = run_lrn(lrn_lib(mutated, "mutated"), LRN_X, 5, schedule, seed=3)
    assert rc == 1
    m = re.search(r"kernel fastalex::cuda::local_response_norm_kernel<float, true>, block \(\d+, 0, 0\): "
                  r"(read-after-write|write-after-write|write-after-read) data race on dynamic shared memory \(byte offset \d+\): "
                  r"thread \(\d+, 0, 0\) \w+ it at (\S+):(\d+) and thread \(\d+, 0, 0\) \w+ it at (\S+):(\d+) "
                  r"with no __syncthreads\(\) between", err)
    assert m, err
    # The ring is indexed in the kernel's sweep (lrn_window.cuh), from the pointer the kernel set.
    window = os.path.join(ROOT, "csrc", "cuda", "lrn_window.cuh")
    for file, line in [(m.group(2), m.group(3)), (m.group(4), m.group(5))]:
        assert os.path.realpath(file) == os.path.realpath(window), err
        src = open(window).read().splitlines()
        assert "ring[" in src[int(line) - 1], (line, src[int(line) - 1])
    assert f"FASTALEX_EMU_SCHEDULE={schedule}:3" in err
