"""The CUDA kernels of csrc/cuda/, run on the CPU by the SIMT emulator (fastalex.emu), against
the torch reference. Every case runs under four thread schedules (with alternating guard-page
placement) and must give bit-identical results under all of them: a result that depends on
the order threads run in is a race."""
import os
import re

import pytest
import torch
import torch.nn.functional as F

import contract as ct
from conftest import ELEMENTWISE_TOL, assert_close, conv_tol, randn, to_format
import fastalex.emu as emu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA_DIR = os.path.join(ROOT, "csrc", "cuda")

# (schedule, seed, guard page flush with the buffers' start or end)
RUNS = [("ascending", 0, "end"), ("descending", 0, "start"), ("random", 11, "end"), ("warp_random", 12, "start")]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def under_every_schedule(fn):
    """fn(schedule=, seed=) under each run; asserts bit-identical results and returns one."""
    return ct.under_schedules(fn, RUNS)


# ---------------------------------------------------------------- conv2d + bias + ReLU
# (name, n, c, h, w, oc, k, stride, padding, groups): partial and edge tiles of the 64x64
# block tile, reduction lengths not a multiple of 16, groups, strides.
CONV = [
    ("partial_tiles", 1, 9, 11, 10, 67, 3, 2, 1, 1),
    ("edge_blocks", 2, 5, 13, 17, 70, 3, 1, 1, 1),
    ("groups2_5x5", 2, 8, 7, 7, 12, 5, 1, 2, 2),
    ("alexnet_conv1_like", 1, 3, 23, 23, 16, 11, 4, 0, 1),
    ("one_by_one", 3, 13, 1, 1, 5, 1, 1, 0, 1),
    ("nonsquare", 1, 6, 9, 8, 10, (3, 5), (2, 1), (1, 2), 2),
]


def conv_case(dtype, fmt, n, c, h, w, oc, k, s, p, g, bias=True):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = to_format(randn(n, c, h, w, dtype=dtype), fmt)
    wt = randn(oc, c // g, kh, kw, dtype=dtype, scale=(c // g * kh * kw) ** -0.5)
    b = randn(oc, dtype=dtype, scale=0.5) if bias else None
    out = under_every_schedule(lambda **kw_: emu.conv2d_relu(x, wt, b, s, p, 1, g, **kw_))
    ref = F.relu(F.conv2d(x.double(), wt.double(), None if b is None else b.double(), s, p, 1, g))
    assert_close(out, ref, conv_tol("emu", dtype))
    fmt_expected = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt_expected)


@pytest.mark.parametrize("case", CONV, ids=lambda c: c[0])
def test_conv2d_relu_float32_exact_kernel(case, monkeypatch):
    # Without TF32, float32 takes the FFMA kernel (the tensor-core kernel has its own file:
    # test_conv2d_relu_mma.py).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    conv_case(torch.float32, "nchw", *case[1:])


@pytest.mark.parametrize("fmt", ["nhwc", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_conv2d_relu_formats_dtypes(fmt, dtype):
    conv_case(dtype, fmt, *CONV[1][1:])


def test_conv2d_relu_no_bias_and_half_types_nchw():
    conv_case(torch.float16, "nchw", *CONV[2][1:], bias=False)
    conv_case(torch.bfloat16, "nchw", *CONV[0][1:])


# ---------------------------------------------------------------- LRN
def lrn_case(dtype, fmt, shape, size, alpha, beta, k):
    x = randn(*shape, dtype=dtype, scale=3.0)
    if len(shape) == 4:
        x = to_format(x, fmt)
    out = under_every_schedule(lambda **kw: emu.local_response_norm(x, size, alpha, beta, k, **kw))
    assert_close(out, F.local_response_norm(x.double(), size, alpha, beta, k), ELEMENTWISE_TOL[dtype])


@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_lrn(fmt, dtype):
    # 646 pixels: three blocks of 256 threads, the last one partial.
    for params in [(5, 5e-4, 0.75, 2.0), (4, 1e-2, 0.75, 1.0), (3, 2e-1, 0.6, 1.3)]:
        lrn_case(dtype, fmt, (2, 13, 17, 19), *params)


def test_lrn_ring_and_global_paths():
    # float: 31 * 256 * 4 bytes fits the shared-memory ring; double: 63 KiB does not.
    lrn_case(torch.float32, "nchw", (1, 40, 4, 4), 31, 1e-1, 0.75, 1.0)
    lrn_case(torch.float64, "nchw", (1, 40, 4, 4), 31, 1e-1, 0.75, 1.0)
    lrn_case(torch.float64, "nhwc", (1, 40, 4, 4), 31, 1e-1, 0.5, 1.0)


@pytest.mark.parametrize("shape", [(2, 11, 9), (2, 6, 3, 4, 5), (3, 1, 2, 2)], ids=["3d", "5d", "one_channel"])
def test_lrn_other_ranks(shape):
    lrn_case(torch.float32, "nchw", shape, 5, 1e-2, 1.0, 1.0)


# ---------------------------------------------------------------- max-pool
def pool_case(dtype, fmt, shape, k, s, p, ceil):
    x = to_format(randn(*shape, dtype=dtype), fmt)
    out = under_every_schedule(lambda **kw: emu.max_pool2d(x, k, s, p, 1, ceil, **kw))
    # torch has no CPU max-pool for half types; in float32 the maximum is the same value.
    ref = F.max_pool2d(x if dtype in (torch.float32, torch.float64) else x.float(), k, s, p, 1, ceil).to(dtype)
    assert torch.equal(ct.bits(out), ct.bits(ref.contiguous(memory_format=torch.channels_last if fmt == "nhwc" else torch.contiguous_format)))


@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_max_pool2d(fmt, dtype):
    pool_case(dtype, fmt, (2, 16, 13, 13), 3, 2, 0, False)   # 16 channels: vector loads in NHWC
    pool_case(dtype, fmt, (1, 13, 11, 9), 3, 2, 1, True)     # 13 channels: scalar path
    pool_case(dtype, fmt, (1, 6, 9, 8), (3, 2), (2, 1), (1, 1), True)


def test_max_pool2d_grid_stride_loop_and_nan():
    # 12800 outputs > 32 blocks x 256 threads for one emulated SM: the grid-stride loop loops.
    pool_case(torch.float32, "nchw", (2, 16, 41, 41), 3, 2, 0, False)
    pool_case(torch.float32, "nhwc", (2, 64, 41, 41), 3, 2, 0, False)
    x = randn(1, 8, 7, 7)
    x[0, 3, 2, 2] = float("nan")
    for fmt in ("nchw", "nhwc"):
        out = emu.max_pool2d(to_format(x, fmt), 3, 2, 1)
        ref = F.max_pool2d(x, 3, 2, 1)
        assert torch.equal(torch.isnan(out), torch.isnan(ref)) and torch.isnan(out).any()


# ---------------------------------------------------------------- checks and coverage
def test_bad_input_gets_the_cuda_host_codes_errors():
    with pytest.raises(ValueError, match=r"padding \(2, 0\) must be at most half of kernel_size"):
        emu.max_pool2d(randn(1, 3, 8, 8), 3, 2, (2, 0))
    with pytest.raises(TypeError, match=r"weight has dtype float64 but input has dtype float32"):
        emu.conv2d_relu(randn(1, 3, 8, 8), randn(4, 3, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"size must be positive"):
        emu.local_response_norm(randn(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"schedule must be one of"):
        emu.max_pool2d(randn(1, 3, 8, 8), 3, schedule="sideways")


def test_empty_inputs_launch_nothing():
    assert emu.conv2d_relu(randn(0, 3, 8, 8), randn(4, 3, 3, 3)).shape == (0, 4, 6, 6)
    assert emu.local_response_norm(randn(0, 3, 8, 8), 5).shape == (0, 3, 8, 8)
    assert emu.max_pool2d(randn(0, 3, 8, 8), 3, 2).shape == (0, 3, 3, 3)


# The ops tested through the emulator, here or (the fused LRN + pooling pair) in
# test_lrn_pool_emu.py, (the gradients) test_local_response_norm_backward.py and
# test_max_pool2d_backward.py; a new CUDA op must add its tests and name here.
TESTED_OPS = {"conv2d_relu", "local_response_norm", "local_response_norm_backward", "max_pool2d",
              "max_pool2d_backward", "lrn_max_pool2d", "max_pool2d_lrn"}


def cuda_ops():
    ops = set()
    for name in os.listdir(CUDA_DIR):
        if name.endswith(".cu"):
            ops |= set(re.findall(r'm\.impl\("(\w+)"', open(os.path.join(CUDA_DIR, name)).read()))
    return ops


def cuda_kernels():
    kernels = set()
    for name in os.listdir(CUDA_DIR):
        if name.endswith(".cuh"):
            src = open(os.path.join(CUDA_DIR, name)).read()
            kernels |= set(re.findall(r"__global__\s+void(?:\s+__launch_bounds__\([^)]*\))?\s+(\w+)\s*\(", src))
    return kernels


def test_every_cuda_op_and_kernel_runs_on_the_emulator():
    ops = cuda_ops()
    assert ops, "no m.impl(...) found in csrc/cuda/*.cu"
    missing = ops - set(emu.__all__)
    assert not missing, f"CUDA ops without an emulator entry point in fastalex.emu: {missing}"
    untested = ops - TESTED_OPS
    assert not untested, f"CUDA ops without emulator tests in this file: {untested}"
    # One call per kernel variant, then every __global__ function must have run.
    emu.conv2d_relu(randn(1, 3, 5, 5), randn(4, 3, 3, 3))  # TF32 tensor cores (torch's default)
    emu.conv2d_relu(randn(1, 3, 5, 5, dtype=torch.float64), randn(4, 3, 3, 3, dtype=torch.float64))  # FFMA
    emu.local_response_norm(randn(1, 4, 3, 3), 3)
    emu.local_response_norm(randn(1, 40, 2, 2, dtype=torch.float64), 31)
    x = randn(1, 4, 3, 3)
    emu.local_response_norm_backward(x, x, x, 3)  # rings in shared memory
    x = randn(1, 70, 2, 2, dtype=torch.float64)
    emu.local_response_norm_backward(x, x, x, 65)  # rings too large: global scratch
    emu.max_pool2d(randn(1, 4, 5, 5), 3, 2)  # contiguous NCHW: 32-bit indices
    emu.max_pool2d(randn(1, 4, 5, 10)[..., ::2], 3, 2)  # any strides
    emu.max_pool2d_backward(randn(1, 4, 2, 2), randn(1, 4, 5, 5), 3, 2)
    emu.max_pool2d(randn(1, 8, 5, 5).contiguous(memory_format=torch.channels_last), 3, 2)
    for fused in (emu.lrn_max_pool2d, emu.max_pool2d_lrn):
        fused(randn(1, 4, 5, 5), 3)  # shared-memory rings
        fused(randn(1, 40, 19, 19), 101)  # rings too large: re-reads
    launched = {re.sub(r"<.*", "", k).split("::")[-1] for k in emu.launched_kernels()}
    kernels = cuda_kernels()
    assert len(kernels) >= 4, kernels
    assert kernels <= launched, f"kernels never run on the emulator: {kernels - launched}"
