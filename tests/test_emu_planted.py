"""Planted bugs the SIMT emulator must catch, each with a message naming the kernel, the
threads and the source line of the bug; plus correct controls it must pass.

The planted kernels (tests/emu_planted/planted_kernels.cuh) are compiled here with the host
compiler into a small library without torch and run through ctypes."""
import ctypes
import glob
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_DIR = os.path.join(ROOT, "tests", "emu_planted")
KERNELS = os.path.join(SRC_DIR, "planted_kernels.cuh")
# Rebuilt when any of these changes: the runner, the kernels, every emulator header.
SOURCES = [os.path.join(SRC_DIR, "runner.cpp"), KERNELS, os.path.join(ROOT, "csrc", "cuda", "device_common.cuh")] + sorted(
    glob.glob(os.path.join(ROOT, "csrc", "emu", "*.h")))
SCHEDULES = ["ascending", "descending", "random", "warp_random"]


@pytest.fixture(scope="module")
def lib():
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler found to build the planted kernels (set CXX)")
    out = os.path.join(ROOT, "build", "emu_planted.so")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not os.path.exists(out) or os.path.getmtime(out) < max(os.path.getmtime(s) for s in SOURCES):
        cmd = [cxx, "-std=c++20", "-O1", "-g", "-fPIC", "-shared", "-DFASTALEX_EMU", "-U_FORTIFY_SOURCE", "-pthread",
               "-I", os.path.join(ROOT, "csrc"), "-I", SRC_DIR, SOURCES[0], "-o", out + ".tmp"]
        subprocess.run(cmd, check=True)
        os.replace(out + ".tmp", out)
    return ctypes.CDLL(out)


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
