"""fastalex.ops.local_response_norm against F.local_response_norm computed in float64."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, ELEMENTWISE_TOL, FORMATS, assert_close, dtypes_for, randn, to_format
from fastalex import ops

# (size, alpha, beta, k): the networks' settings, then ones that exercise the other paths
# (even sizes, generic beta through pow, a window wider than the channel count).
PARAMS = [
    (5, 5e-4, 0.75, 2.0),   # AlexNet paper (alpha 1e-4 undivided -> 5e-4 in torch's convention)
    (5, 1e-4, 0.75, 1.0),   # GoogLeNet (Caffe bvlc_googlenet)
    (4, 1e-2, 0.75, 1.0),   # even size: window [c - 2, c + 1]
    (1, 1e-1, 0.5, 1.0),
    (2, 3e-1, 1.0, 0.5),
    (3, 2e-1, 0.6, 1.3),    # generic beta
    (9, 1e-2, 0.75, 1.0),   # wider than some channel counts below
    (17, 1e-2, 0.75, 1.0),  # wider than the CPU's ring of squares (16): the running-sum path
]


def reference(x, size, alpha, beta, k):
    return F.local_response_norm(x.double(), size, alpha, beta, k)


def run_case(device, dtype, fmt, shape, size, alpha, beta, k, scale=3.0):
    x = randn(*shape, dtype=dtype, device=device, scale=scale)
    if len(shape) == 4:
        x = to_format(x, fmt)
    out = ops.local_response_norm(x, size, alpha, beta, k)
    ref = reference(x, size, alpha, beta, k)
    assert_close(out, ref, ELEMENTWISE_TOL[dtype])
    # The normalisation is not the identity at these settings.
    assert not torch.allclose(out.double(), x.double(), rtol=1e-3, atol=0)
    if len(shape) == 4 and fmt != "strided":
        fmtm = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
        assert out.is_contiguous(memory_format=fmtm)


SHAPES = [
    ("alexnet_lrn1", (2, 96, 11, 11)),
    ("alexnet_lrn2", (2, 256, 5, 5)),
    ("googlenet_lrn1", (2, 64, 9, 9)),
    ("googlenet_lrn2", (1, 192, 7, 7)),
    ("prime", (1, 7, 13, 17)),
    ("one_channel", (2, 1, 5, 5)),
    ("one_by_one_spatial", (3, 13, 1, 1)),
    ("partial_block", (1, 3, 23, 29)),   # 667 pixels: one full CPU block of 512 and a partial one
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"n{p[0]}_b{p[2]}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s[0])
def test_float32(device, params, shape):
    run_case(device, torch.float32, "nchw", shape[1], *params)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("params", [PARAMS[0], PARAMS[2], PARAMS[5]], ids=lambda p: f"n{p[0]}_b{p[2]}")
def test_formats_and_dtypes(device, fmt, params):
    for dtype in dtypes_for(device):
        for shape in [(2, 13, 7, 5), (1, 96, 3, 3), (2, 3, 23, 29)]:
            run_case(device, dtype, fmt, shape, *params)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 11, 9), (2, 6, 3, 4, 5)], ids=["3d", "5d"])
def test_other_ranks(device, shape):
    run_case(device, torch.float32, "nchw", shape, 5, 1e-2, 0.75, 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_large_window_takes_the_global_path(device):
    # size * 256 threads * 8 bytes > 48 KiB: the CUDA kernel re-reads instead of using its ring.
    run_case(device, torch.float64, "nchw", (1, 40, 4, 4), 31, 1e-1, 0.75, 1.0)
    run_case(device, torch.float64, "nhwc", (1, 40, 4, 4), 31, 1e-1, 0.75, 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_defaults_match_torch(device):
    x = randn(2, 8, 5, 5, device=device, scale=20.0)
    assert_close(ops.local_response_norm(x, 3), F.local_response_norm(x.double(), 3), ELEMENTWISE_TOL[torch.float32])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_large_dynamic_range_float32(device, fmt):
    # A 1e4-scale channel entering and leaving the float32 running window must leave no
    # drift: errors stay at float32 rounding of the result, as with a direct window sum.
    x = randn(2, 64, 5, 5, device=device) * 3
    x[:, 10] *= 1e4
    x[:, 40] *= 1e-4
    x = to_format(x, fmt)
    out = ops.local_response_norm(x, 5, 1e-2, 0.75, 1.0)
    assert_close(out, reference(x, 5, 1e-2, 0.75, 1.0), ELEMENTWISE_TOL[torch.float32])


@pytest.mark.parametrize("device", DEVICES)
def test_large_dynamic_range(device):
    # Huge values entering and leaving the running window must not leave error behind.
    x = randn(1, 64, 4, 4, device=device, dtype=torch.float64)
    x[:, 10] *= 1e6
    x[:, 40] *= 1e-6
    out = ops.local_response_norm(x, 5, 1e-4, 0.75, 1.0)
    assert_close(out, reference(x, 5, 1e-4, 0.75, 1.0), (1e-13, 1e-13))


@pytest.mark.parametrize("device", DEVICES)
def test_empty(device):
    x = randn(0, 5, 3, 3, device=device)
    assert ops.local_response_norm(x, 5).shape == (0, 5, 3, 3)
