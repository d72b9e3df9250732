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


# ---------------------------------------------------------------- the op contract's spec
import contract as ct  # noqa: E402
import fastalex.emu as emu  # noqa: E402


def _reference(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return F.local_response_norm(x, size, alpha, beta, k)


# (size, alpha, beta, k): the networks' settings (AlexNet's paper alpha 1e-4 is 5e-4 here),
# an even window, a generic beta (pow), a window wider than the CPU ring (running sum), beta 0.5.
_PARAMS = [(5, 5e-4, 0.75, 2.0), (4, 1e-2, 0.75, 1.0), (3, 2e-1, 0.6, 1.3), (17, 1e-2, 0.75, 1.0), (1, 1e-1, 0.5, 1.0)]


def _samples(dtype):
    out = []
    for i, (size, alpha, beta, k) in enumerate(_PARAMS):
        out.append(ct.Sample(f"n{size}_b{beta}", (ct.rand(2, 13, 7, 5, dtype=dtype, scale=3.0, seed=i), size, alpha,
                                                   beta, k)))
    out += [
        # 667 pixels: a full 512-pixel CPU block and a partial one
        ct.Sample("two_blocks", (ct.rand(1, 3, 23, 29, dtype=dtype, scale=3.0), 5, 1e-2, 0.75, 1.0)),
        ct.Sample("alexnet_lrn1_like", (ct.rand(1, 96, 5, 5, dtype=dtype, scale=3.0), 5, 5e-4, 0.75, 2.0)),
        ct.Sample("one_channel", (ct.rand(2, 1, 5, 5, dtype=dtype, scale=3.0), 5, 1e-1, 0.75, 1.0)),
        ct.Sample("3d", (ct.rand(2, 11, 9, dtype=dtype, scale=3.0), 5, 1e-2, 0.75, 1.0), formats=False),
        ct.Sample("5d", (ct.rand(2, 6, 3, 4, 5, dtype=dtype, scale=3.0), 5, 1e-2, 0.75, 1.0), formats=False),
    ]
    return out


def _nonfinite(dtype):
    out = []
    big = ct.square_overflow(dtype)
    for kind in ct.NONFINITE_KINDS:
        # 40 channels: a value leaves the window long before the last channel; the positions
        # include pixels 15/16 (vector boundary); 667 pixels cross the CPU's 512-pixel block.
        x = ct.rand(2, 40, 5, 7, dtype=dtype, scale=3.0)
        x = ct.place_values(x, kind, ct.positions(x.shape), big)
        for size, alpha, beta, k in ((5, 1e-2, 0.75, 1.0), (5, 1e-1, 0.5, 2.0), (17, 1e-2, 0.75, 1.0),
                                     (4, 1e-1, 0.6, 1.0)):
            out.append(ct.Sample(f"{kind}_n{size}_b{beta}", (x, size, alpha, beta, k)))
        y = ct.rand(1, 12, 23, 29, dtype=dtype, scale=3.0)
        y = ct.place_values(y, kind, ct.positions(y.shape, spatial_extra=(511, 512)), big)
        out.append(ct.Sample(f"{kind}_blocks", (y, 5, 5e-4, 0.75, 2.0)))
    # k = 0 with an all-zero window: d = 0, x / 0 (NaN where x = 0, +-inf elsewhere)
    z = ct.rand(1, 6, 3, 3, dtype=dtype)
    z[0, :, 1, 1] = 0.0
    out.append(ct.Sample("zero_window_k0", (z, 3, 1e-1, 0.75, 0.0)))
    return out


_t = ct.tensor


SPEC = ct.OpSpec(
    name="local_response_norm",
    public=ops.local_response_norm,
    overload=torch.ops.fastalex.local_response_norm.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=lambda x, size, alpha=1e-4, beta=0.75, k=1.0: (x, size, float(alpha), float(beta), float(k)),
    tolerance="elementwise",
    emu=emu.local_response_norm,
    emu_overload=torch.ops.fastalex_emu.local_response_norm.default,
    grad_samples=lambda: [ct.Sample(f"grad_n{n}", (ct.rand(2, 6, 3, 3, dtype=torch.float64), n, 0.3, 0.75, 1.0))
                          for n in (1, 4, 5)] + [ct.Sample("grad_3d", (ct.rand(2, 5, 7, dtype=torch.float64), 3, 0.2, 0.6, 0.5))],
    bad_inputs=[
        ct.BadInput("2d_input", lambda f, d: f(_t(4, 5, device=d), 5), ValueError, r"input must be 3-D or more \(N, C, ...\), got 2-D"),
        ct.BadInput("size_zero", lambda f, d: f(_t(1, 4, 5, 5, device=d), 0), ValueError, r"size must be positive, got 0"),
        ct.BadInput("size_float", lambda f, d: f(_t(1, 4, 5, 5, device=d), 2.5), TypeError, r"size must be an int"),
        ct.BadInput("alpha_str", lambda f, d: f(_t(1, 4, 5, 5, device=d), 5, "1e-4"), TypeError, r"alpha must be a real number"),
        ct.BadInput("beta_inf", lambda f, d: f(_t(1, 4, 5, 5, device=d), 5, 1e-4, float("inf")), ValueError, r"alpha, beta and k must be finite"),
        ct.BadInput("int_dtype", lambda f, d: f(torch.ones(1, 4, 5, 5, dtype=torch.int64, device=d), 5, 1e-4, 0.75, 1.0), TypeError, r"input has dtype Long, which is not supported", "schema"),
        ct.BadInput("input_list", lambda f, d: f([1.0], 5), TypeError, r"input must be a torch.Tensor"),
    ],
)
