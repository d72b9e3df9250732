"""Bugs planted in the real tensor-core conv kernel, each of which the emulator must catch.

Each mutant is the shipped csrc/cuda/conv2d_relu_mma_kernel.cuh with one line changed, the way
a developer might get it wrong; it is compiled with the host compiler next to a small torch-free
runner (tests/conv_mutants/runner.cpp: float16, the 64x64 tile, the 16-byte loader, a 3x3 conv
whose 5 K tiles wrap the 4-stage pipeline) and run on the emulator. The unmutated kernel is the
control: it must match a float64 reference under three schedules, bit for bit.
A mutant is caught either with an emulator error naming the lines involved, or -- a swapped
fragment register, which no checker can see -- by its wrong result."""
import ctypes
import glob
import os
import re

import host_library
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = os.path.join(ROOT, "csrc", "cuda", "conv2d_relu_mma_kernel.cuh")
RUNNER = os.path.join(ROOT, "tests", "conv_mutants", "runner.cpp")
DEPS = [RUNNER, KERNEL] + glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cuh")) + glob.glob(
    os.path.join(ROOT, "csrc", "emu", "*.h"))
N, C, H, W, OC, K, STRIDE, PAD = 1, 16, 9, 9, 16, 3, 1, 1


# name -> (line to change, replacement of it, how it is caught)
MUTANTS = {
    # No barrier between this thread's wait and the other warps' ldmatrix of the same tile.
    "no_barrier_after_wait": ("__syncthreads();              // everyone's have", "", "race"),
    # Waits for one tile too few: the math reads a stage whose copies are still in flight.
    "wait_one_group_short": ("cp_async_wait<STAGES - 2>();", "cp_async_wait<STAGES - 1>();", "in_flight"),
    # Off-by-one pipeline stage: computes on the stage being filled instead of the landed one.
    "off_by_one_stage": ("smem_base + read_stage * Tile::kStageBytes;",
                         "smem_base + (read_stage + 1) % STAGES * Tile::kStageBytes;", "in_flight"),
    # Swapped fragment registers: the B fragment of the second n8 tile takes the first's k-half.
    "swapped_fragment": ("bf[2 * j + 1][0] = r[2];", "bf[2 * j + 1][0] = r[1];", "wrong"),
    # The epilogue reads the staging tile before the other warps finished writing it.
    "no_barrier_before_store": ("__syncthreads();  // the staging tile is complete", "", "race"),
}


def mutate(src, name):
    """src with the mutant's line changed (an empty replacement blanks the whole line), so every
    other line keeps its number."""
    old, new, _ = MUTANTS[name]
    lines = src.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if old in line]
    assert len(hits) == 1, f"mutant {name}: {old!r} found {len(hits)} times"
    lines[hits[0]] = lines[hits[0]].replace(old, new) if new else "\n"
    return "".join(lines)


def build(name):
    out_dir = os.path.join(ROOT, "build", "conv_mutants", name)
    lib = os.path.join(out_dir, "runner.so")
    header = os.path.join(out_dir, "cuda", "conv2d_relu_mma_kernel.cuh")
    src = open(KERNEL).read()
    if name != "control":
        src = mutate(src, name)
    os.makedirs(os.path.dirname(header), exist_ok=True)
    if not os.path.exists(header) or open(header).read() != src:
        with open(header, "w") as f:
            f.write(src)
    return host_library.build(lib, RUNNER, DEPS + [header], [out_dir, os.path.join(ROOT, "csrc")],
                              what=f"the conv mutant {name}"), header


def inputs():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, H, W, C)).astype(np.float16).astype(np.float32)
    wt = (rng.standard_normal((OC, K, K, C)) / np.sqrt(K * K * C)).astype(np.float16).astype(np.float32)
    b = (rng.standard_normal(OC) * 0.5).astype(np.float16).astype(np.float32)
    return x, wt, b


def reference(x, wt, b):
    xp = np.pad(x.astype(np.float64), ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    oh, ow = (H + 2 * PAD - K) // STRIDE + 1, (W + 2 * PAD - K) // STRIDE + 1
    y = np.zeros((N, oh, ow, OC))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * STRIDE:i * STRIDE + K, j * STRIDE:j * STRIDE + K, :]
            y[:, i, j, :] = np.tensordot(patch, wt.astype(np.float64), axes=([1, 2, 3], [1, 2, 3])) + b
    return np.maximum(y, 0)


def run(lib, schedule="ascending", seed=0):
    x, wt, b = inputs()
    oh, ow = (H + 2 * PAD - K) // STRIDE + 1, (W + 2 * PAD - K) // STRIDE + 1
    y = np.full((N, oh, ow, OC), np.nan, dtype=np.float32)
    err = ctypes.create_string_buffer(16384)
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))  # noqa: E731
    rc = lib.run_conv(ptr(x), ptr(wt), ptr(b), ptr(y), N, C, H, W, OC, K, STRIDE, PAD, schedule.encode(),
                      ctypes.c_uint64(seed), err, len(err))
    return rc, err.value.decode(), y, reference(x, wt, b)


def test_control_matches_the_reference_under_three_schedules():
    lib, _ = build("control")
    outs = []
    for schedule, seed in (("ascending", 0), ("descending", 0), ("warp_random", 7)):
        rc, err, y, ref = run(lib, schedule, seed)
        assert rc == 0, err
        # float16 output rounding plus float32 accumulation
        np.testing.assert_allclose(y, ref, rtol=2 ** -10, atol=1e-3)
        outs.append(y)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    lib, header = build(name)
    how = MUTANTS[name][2]
    caught = []
    for schedule, seed in (("ascending", 0), ("warp_random", 7)):
        rc, err, y, ref = run(lib, schedule, seed)
        if how == "wrong":
            assert rc == 0, err
            assert not np.allclose(y, ref, rtol=2 ** -10, atol=1e-3), "the swapped fragment went unnoticed"
            return
        assert rc == 1, f"{name} under {schedule}: not caught"
        caught.append(err)
        src = re.escape(os.path.join("cuda", "conv2d_relu_mma_kernel.cuh"))
        if how == "race":
            assert re.search(r"data race on (dynamic )?shared memory", err), err
            assert "with no __syncthreads() between" in err, err
            # both accesses are named, with their lines in the mutated kernel
            assert len(re.findall(src + r":\d+", err)) >= 2, err
        elif how == "in_flight":
            assert re.search(r"cp\.async", err) and re.search(r"before|in flight", err), err
            assert re.search(src + r":\d+", err), err
        assert "FASTALEX_EMU_SCHEDULE=" in err
    assert caught
