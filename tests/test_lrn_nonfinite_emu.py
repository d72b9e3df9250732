"""The CUDA LRN kernel (run on the SIMT emulator) with NaN, +-inf and values whose squares
overflow or are huge, against torch's F.local_response_norm.

Torch is the reference in the kernel's accumulation precision (float32 for float16/bfloat16
inputs): NaN and infinities must appear exactly where torch's do; every finite value must be
within the dtype's tolerance of the float64 reference or of torch in that precision (a
float32 square above FLT_MAX is +inf there, and y = 0 around it, where the float64 reference
is finite). Once such a value has left the window the running sum must be exactly as if it
had never been there: channels outside its reach are bit-identical to a run with a zero in
its place. Every case runs under four schedules and must give bit-identical results."""
import itertools
import re

import pytest
import torch
import torch.nn.functional as F

import contract as ct
from conftest import randn, to_format
import fastalex.emu as emu

NAN, INF = float("nan"), float("inf")
C = 40  # with size 5, a value at the first or an interior channel leaves the window
FIRST, INTERIOR, LAST = 0, 17, C - 1
# Channels of one pixel that hold the planted value.
PATTERNS = [(FIRST,), (INTERIOR,), (LAST,), (FIRST, INTERIOR, LAST), (INTERIOR, INTERIOR + 1)]

# Planted values per dtype, and whether the running sum must come back bit-exactly after
# each leaves (False only for float16's largest value: its square is an ordinary finite one).
SPECIALS = {
    # 3e19: square above FLT_MAX (+inf in float32); 1e19 and 1.5e19: huge finite squares
    # (two adjacent 1.5e19 sum past FLT_MAX).
    torch.float32: [(NAN, True), (INF, True), (-INF, True), (3e19, True), (-3e19, True), (1e19, True), (1.5e19, True)],
    # 1e160: square above DBL_MAX; 1e150: huge finite square; two adjacent 1.2e154 sum past DBL_MAX.
    torch.float64: [(NAN, True), (INF, True), (-INF, True), (1e160, True), (-1e160, True), (1e150, True),
                    (1.2e154, True)],
    torch.float16: [(NAN, True), (INF, True), (-INF, True), (65504.0, False), (-65504.0, False)],
    # bfloat16 has float32's range: its squares can overflow float32 too.
    torch.bfloat16: [(NAN, True), (INF, True), (-INF, True), (3e19, True), (1e19, True)],
}
# More pixels: {channel: value}, exact. Huge squares at three scales in overlapping windows
# (float32: 2^64 to 2^128, float64: 2^512 to 2^1000), and large squares that are still
# ordinary ones, alone or at three scales (within tolerance after they leave, not bit-exact);
# 1e5 in float64 leaves the running sum without recomputing it (see LrnSum).
MORE = {
    torch.float32: [({24: 1.8e19, 25: 2.7e14, 26: 4.4e9}, True), ({30: 3e9}, False)],
    torch.float64: [({24: 1.23456789e150, 25: 9.87654321e100, 26: 1.3e77}, True), ({30: 1e70}, False),
                    ({20: 1e70, 21: 1.2345678e40, 22: 3.3333333e39}, False), ({33: 1e5}, False)],
    torch.float16: [],
    torch.bfloat16: [({24: 1.7e19, 25: 2.7e14, 26: 4.4e9}, True), ({30: 3e9}, False)],
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# (schedule, seed, guard page at the buffers' start or end)
RUNS = [("ascending", 0, "end"), ("descending", 0, "start"), ("random", 5, "end"), ("warp_random", 6, "start")]


def run_every_schedule(x, size, alpha, beta, k):
    return ct.under_schedules(lambda **run: emu.local_response_norm(x, size, alpha, beta, k, **run), RUNS)


def check_against_torch(out, x, size, alpha, beta, k):
    """Non-finite pattern equal to torch's in the kernel's precision; finite values within
    tolerance of the float64 reference or of torch in that precision."""
    ct.assert_like_torch(out, F.local_response_norm, (x, size, alpha, beta, k),
                         what=f"emulated lrn(size={size}, alpha={alpha}, beta={beta}, k={k})")


def planted(dtype, n=2, h=9, w=17):
    """x with the dtype's special values planted in PATTERNS at distinct pixels (306 pixels:
    two blocks of 256 threads), x with zeros there instead, and [(pixel, channels, exact)]."""
    x = randn(n, C, h, w, dtype=torch.float64, scale=2.0)
    x0 = x.clone()
    pixels = iter(list(itertools.product(range(n), range(h), range(w)))[::5])
    plan = []
    for value, exact in SPECIALS[dtype]:
        for channels in PATTERNS:
            ni, hi, wi = next(pixels)
            for c in channels:
                x[ni, c, hi, wi] = value
                x0[ni, c, hi, wi] = 0.0
            plan.append(((ni, hi, wi), channels, exact))
    # NaN, +inf and the last special in overlapping windows, then all leaving; then MORE.
    for values, exact in [({10: NAN, 12: INF, 14: SPECIALS[dtype][-1][0]}, SPECIALS[dtype][-1][1])] + MORE[dtype]:
        ni, hi, wi = next(pixels)
        for c, value in values.items():
            x[ni, c, hi, wi] = value
            x0[ni, c, hi, wi] = 0.0
        plan.append(((ni, hi, wi), tuple(values), exact))
    return x.to(dtype), x0.to(dtype), plan


def check_left_nothing_behind(out, out0, plan, size):
    """Channels no planted value reaches must be bit-identical to the run with zeros there."""
    pre, post = size // 2, (size - 1) // 2
    for (ni, hi, wi), channels, exact in plan:
        if not exact:
            continue
        reached = set()
        for j in channels:  # y[c] sees x[j] for j in [c - pre, c + post]
            reached |= set(range(j - post, j + pre + 1))
        free = [c for c in range(C) if c not in reached]
        got, want = out[ni, free, hi, wi], out0[ni, free, hi, wi]
        assert torch.equal(ct.bits(got), ct.bits(want)), (
            f"pixel {(ni, hi, wi)}, value at channels {channels}: channels {free} differ from the run without it: "
            f"{got.tolist()} vs {want.tolist()}")


PARAMS = [(5, 5e-4, 0.75, 2.0), (4, 1e-2, 0.6, 1.0)]


@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nonfinite_and_overflowing_values(dtype, fmt):
    x, x0, plan = planted(dtype)
    for size, alpha, beta, k in PARAMS + ([(31, 1e-1, 0.75, 1.0)] if dtype == torch.float64 else []):
        xf, x0f = to_format(x, fmt), to_format(x0, fmt)
        out = run_every_schedule(xf, size, alpha, beta, k)
        check_against_torch(out, x, size, alpha, beta, k)
        check_left_nothing_behind(out, emu.local_response_norm(x0f, size, alpha, beta, k), plan, size)


def test_both_kernel_variants_ran():
    x, _, _ = planted(torch.float64)
    check_against_torch(emu.local_response_norm(x, 31, 1e-1, 0.75, 1.0), x, 31, 1e-1, 0.75, 1.0)
    check_against_torch(emu.local_response_norm(x, 5, 1e-1, 0.75, 1.0), x, 5, 1e-1, 0.75, 1.0)
    launched = {re.sub(r"\s", "", k) for k in emu.launched_kernels()}
    assert "fastalex::cuda::local_response_norm_kernel<double,false>" in launched, launched  # global re-reads
    assert "fastalex::cuda::local_response_norm_kernel<double,true>" in launched, launched  # shared-memory ring


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_special_d_and_beta(dtype):
    # d = +inf, NaN, -inf (alpha < 0 with an inf in the window), -0 (k = -0.0, alpha < 0, an
    # all-zero window), +0 (k = 0) and d < 0 (k = -1): torch takes beta 0.5 / -0.5 as sqrt /
    # rsqrt and every other beta as pow, and beta = 0 gives x even where d is NaN.
    x = randn(2, 12, 3, 3, dtype=torch.float64)
    x[0, 5, 0, 0] = INF
    x[0, 8, 1, 1] = NAN
    x[1, 3:9, 2, 2] = 0.0
    x[1, 6, 2, 1] = -INF
    x[1, 2:8, 0, 1] = 0.0
    x[1, 4, 0, 1] = 1e-200  # squares to 0 (is 0 in float32): x / 0 for k = 0
    x[1, 5, 0, 1] = -1e-200
    x = x.to(dtype)
    for beta in [0.75, 0.5, -0.5, 1.0, 0.0, 0.6, 2.0, -1.0]:
        for alpha, k in [(1e-4, 1.0), (-1e-4, 1.0), (0.0, 1.0), (-1e-4, -0.0), (1e-4, 0.0), (1e-4, -1.0)]:
            for size in (3, 4):
                out = emu.local_response_norm(x, size, alpha, beta, k)
                check_against_torch(out, x, size, alpha, beta, k)


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_zero_window_with_k_zero(fmt):
    # d = 0: y = x / 0 is NaN for x = 0 and +-inf for x whose square underflows to 0.
    x = randn(1, 16, 4, 4)
    x[0, 4:12, 1, 2] = 0.0
    x[0, 8, 1, 2] = 1e-30
    x[0, 9, 1, 2] = -1e-30
    x = to_format(x, fmt)
    out = run_every_schedule(x, 5, 1e-4, 0.75, 0.0)
    check_against_torch(out, x, 5, 1e-4, 0.75, 0.0)
    assert torch.isnan(out[0, 6, 1, 2]) and out[0, 8, 1, 2] == INF and out[0, 9, 1, 2] == -INF
