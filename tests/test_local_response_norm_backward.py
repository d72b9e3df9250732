"""local_response_norm_backward: the LRN's input gradient from its input, output and the incoming
gradient, on every backend (CPU kernel, CPU with fast paths off, the CUDA kernel on the emulator),
against torch.autograd.grad of F.local_response_norm in float64, and, for non-finite values, the
NaN and infinity pattern of the torch-op formula the kernels replace (_backward_composite)."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
import fastalex
import fastalex.emu as emu
from fastalex import ops
from fastalex.ops.local_response_norm import _backward_composite

F32, F64, F16, BF16 = ct.F32, ct.F64, ct.F16, ct.BF16
TOL = ct.TOLERANCES["gradient"]
BACKENDS = {"cpu": (F32, F64), "cpu_portable": (F32, F64), "emu": (F32, F64, F16, BF16)}
EMU_RUNS = (("ascending", 0, "end"), ("descending", 0, "start"), ("random", 11, "end"), ("warp_random", 12, "start"))


def forward_and_backward(backend, g, x, size, alpha, beta, k):
    """(y, dx) on `backend`: the backend's own forward output feeds its backward, as in training."""
    if backend == "emu":
        y = emu.local_response_norm(x, size, alpha, beta, k)
        dx = ct.under_schedules(lambda **run: emu.local_response_norm_backward(g, x, y, size, alpha, beta, k, **run),
                                EMU_RUNS, "emulated local_response_norm_backward")
        return y, dx
    with fastalex.cpu_fastpath(backend == "cpu"):
        y = ops.local_response_norm(x, size, alpha, beta, k)
        return y, ops.local_response_norm_backward(g, x, y, size, alpha, beta, k)


def autograd_reference(g, x, size, alpha, beta, k):
    """torch's own gradient of F.local_response_norm, in float64, at the (rounded) inputs."""
    x64 = x.detach().double().requires_grad_(True)
    (dx,) = torch.autograd.grad(F.local_response_norm(x64, size, alpha, beta, k), x64, g.double())
    return dx


# (size, alpha, beta, k): the networks' settings, an even window, a generic beta (pow), a window
# as wide as the channels, beta 0.5 and 1, a window of one, a small k (strong normalisation).
PARAMS = [(5, 5e-4, 0.75, 2.0), (4, 1e-2, 0.75, 1.0), (3, 2e-1, 0.6, 1.3), (17, 1e-2, 0.75, 1.0),
          (1, 1e-1, 0.5, 1.0), (6, 3e-1, 1.0, 0.5), (5, 5e-1, 0.75, 0.1)]
# Odd shapes: primes, 1x1 maps, one channel, channels not a multiple of 8, two CPU blocks of
# 256 pixels and a partial one (23 x 29), channels-last pixel counts not a multiple of 16.
SHAPES = [(2, 13, 7, 5), (1, 7, 13, 17), (3, 11, 1, 1), (2, 1, 5, 5), (1, 3, 23, 29), (1, 96, 3, 3)]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("fmt", ct.FORMATS)
def test_matches_torch_autograd(backend, fmt):
    for dtype in BACKENDS[backend]:
        for i, shape in enumerate(SHAPES):
            for j, params in enumerate(PARAMS):
                if backend == "emu" and (i + j) % 3:  # the emulator is slow: a third of the pairs
                    continue
                x = ct.to_format(ct.rand(*shape, dtype=dtype, scale=3.0, seed=10 * i + j), fmt)
                g = ct.to_format(ct.rand(*shape, dtype=dtype, seed=100 + 10 * i + j), fmt)
                _, dx = forward_and_backward(backend, g, x, *params)
                what = f"lrn backward [{backend}, {dtype}, {shape}, {params}, {fmt}]"
                assert dx.dtype == dtype, what
                ct.assert_matches_reference(dx, autograd_reference(g, x, *params), TOL[dtype], what)
                if fmt != "strided":
                    want = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
                    assert dx.is_contiguous(memory_format=want), f"{what}: not in the input's memory format"


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("shape", [(2, 11, 9), (2, 6, 3, 4, 5)], ids=["3d", "5d"])
def test_other_ranks(backend, shape):
    for dtype in BACKENDS[backend][:2]:
        x, g = ct.rand(*shape, dtype=dtype, scale=3.0), ct.rand(*shape, dtype=dtype, seed=5)
        _, dx = forward_and_backward(backend, g, x, 5, 1e-1, 0.75, 1.0)
        ct.assert_matches_reference(dx, autograd_reference(g, x, 5, 1e-1, 0.75, 1.0), TOL[dtype], f"{backend} {shape}")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_mixed_layouts_follow_the_input(backend):
    # grad_output and output in other layouts than input: the kernel reads them in the input's.
    x = ct.to_format(ct.rand(2, 13, 7, 5, scale=3.0), "nhwc")
    g = ct.to_format(ct.rand(2, 13, 7, 5, seed=3), "strided")
    y = ops.local_response_norm(x, 5, 1e-1, 0.75, 1.0).contiguous()
    if backend == "emu":
        dx = emu.local_response_norm_backward(g, x, y, 5, 1e-1, 0.75, 1.0)
    else:
        with fastalex.cpu_fastpath(backend == "cpu"):
            dx = ops.local_response_norm_backward(g, x, y, 5, 1e-1, 0.75, 1.0)
    assert dx.is_contiguous(memory_format=torch.channels_last)
    ct.assert_matches_reference(dx, autograd_reference(g, x, 5, 1e-1, 0.75, 1.0), TOL[F32], backend)


@pytest.mark.parametrize("dtype, size", [(F64, 65), (F32, 129)], ids=["float64", "float32"])
def test_emu_rings_in_global_scratch(dtype, size):
    # 3 rings * size * 32 threads no longer fit 48 KiB of shared memory: the CUDA kernel keeps
    # them in a global scratch buffer instead.
    for fmt in ("nchw", "nhwc"):
        x = ct.to_format(ct.rand(2, size + 6, 3, 3, dtype=dtype, scale=3.0), fmt)
        g = ct.to_format(ct.rand(2, size + 6, 3, 3, dtype=dtype, seed=1), fmt)
        _, dx = forward_and_backward("emu", g, x, size, 1.0, 0.75, 1.0)
        ct.assert_matches_reference(dx, autograd_reference(g, x, size, 1.0, 0.75, 1.0), TOL[dtype], fmt)
    assert any("local_response_norm_backward_kernel" in k and "false" in k for k in emu.launched_kernels())


def test_composite_reference_is_torchs_gradient():
    # The non-finite checks compare with _backward_composite; in float64 it is torch's gradient.
    for params in PARAMS:
        x, g = ct.rand(2, 9, 4, 3, dtype=F64, scale=3.0), ct.rand(2, 9, 4, 3, dtype=F64, seed=2)
        y = F.local_response_norm(x, *params)
        torch.testing.assert_close(_backward_composite(g, x, y, *params), autograd_reference(g, x, *params),
                                   rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- autograd
def test_autograd_runs_the_kernel():
    x = ct.rand(2, 13, 7, 5, scale=3.0).requires_grad_(True)
    g = ct.rand(2, 13, 7, 5, seed=4)
    y = ops.local_response_norm(x, 5, 1e-2, 0.75, 1.0)
    (dx,) = torch.autograd.grad(y, x, g)
    direct = ops.local_response_norm_backward(g, x.detach(), y.detach(), 5, 1e-2, 0.75, 1.0)
    assert torch.equal(ct.bits(dx), ct.bits(direct))
    assert not torch.equal(ct.bits(dx), ct.bits(_backward_composite(g, x.detach(), y.detach(), 5, 1e-2, 0.75, 1.0)))


@pytest.mark.parametrize("params", [(4, 0.3, 0.75, 1.0), (3, 0.2, 0.6, 0.5)], ids=["b0.75", "b0.6"])
def test_double_backward(params):
    x = ct.rand(2, 6, 3, 3, dtype=F64).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda t: ops.local_response_norm(t, *params), (x,))
    g = ct.rand(2, 6, 3, 3, dtype=F64, seed=1).requires_grad_(True)
    y = ops.local_response_norm(x, *params).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: ops.local_response_norm_backward(a, b, c, *params), (g, x, y))


def test_empty():
    x = torch.empty(0, 5, 3, 3)
    assert ops.local_response_norm_backward(x, x, x, 5).shape == (0, 5, 3, 3)
    assert emu.local_response_norm_backward(x, x, x, 5).shape == (0, 5, 3, 3)


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_opcheck_layouts(fmt):
    x = ct.to_format(ct.rand(2, 9, 5, 3, scale=3.0), fmt)
    g = ct.to_format(ct.rand(2, 9, 5, 3, seed=1), fmt)
    y = ops.local_response_norm(x, 5, 1e-2, 0.75, 1.0)
    torch.library.opcheck(torch.ops.fastalex.local_response_norm_backward.default, (g, x, y, 5, 1e-2, 0.75, 1.0))


@pytest.mark.parametrize("fn", [ops.local_response_norm_backward, emu.local_response_norm_backward],
                         ids=["cpu", "emu"])
def test_public_bad_input(fn):
    x = ct.rand(1, 4, 5, 5)
    with pytest.raises(TypeError, match=r"local_response_norm_backward: grad_output must be a torch.Tensor"):
        fn([1.0], x, x, 5)
    with pytest.raises(TypeError, match=r"local_response_norm_backward: output must be a torch.Tensor"):
        fn(x, x, None, 5)
    with pytest.raises(TypeError, match=r"local_response_norm_backward: size must be an int"):
        fn(x, x, x, 2.5)


# ---------------------------------------------------------------- the op contract's spec
def _public(input, grad_output, size, alpha=1e-4, beta=0.75, k=1.0):
    """The spec's function: input first, so the contract's layouts apply to it; the forward
    output comes from fastalex's forward, as in training."""
    y = ops.local_response_norm(input, size, alpha, beta, k)
    return ops.local_response_norm_backward(grad_output, input, y, size, alpha, beta, k)


def _emu(input, grad_output, size, alpha=1e-4, beta=0.75, k=1.0, schedule=None, seed=None):
    y = emu.local_response_norm(input, size, alpha, beta, k, schedule=schedule, seed=seed)
    return emu.local_response_norm_backward(grad_output, input, y, size, alpha, beta, k, schedule=schedule, seed=seed)


def _reference(input, grad_output, size, alpha=1e-4, beta=0.75, k=1.0):
    """The torch-op formula the kernels replace, from torch's forward output: in float64 torch's
    gradient (test_composite_reference_is_torchs_gradient), in float32 the NaN/inf pattern."""
    y = F.local_response_norm(input, size, alpha, beta, k)
    return _backward_composite(grad_output, input, y, size, alpha, beta, k)


def _schema_args(input, grad_output, size, alpha=1e-4, beta=0.75, k=1.0):
    y = F.local_response_norm(input.detach(), size, alpha, beta, k)
    return (grad_output, input, y, size, float(alpha), float(beta), float(k))


def _samples(dtype):
    out = []
    for i, (size, alpha, beta, k) in enumerate(PARAMS):
        x, g = ct.rand(2, 13, 7, 5, dtype=dtype, scale=3.0, seed=i), ct.rand(2, 13, 7, 5, dtype=dtype, seed=50 + i)
        out.append(ct.Sample(f"n{size}_b{beta}_k{k}", (x, g, size, alpha, beta, k)))
    out += [
        ct.Sample("two_blocks", (ct.rand(1, 3, 23, 29, dtype=dtype, scale=3.0), ct.rand(1, 3, 23, 29, dtype=dtype, seed=1),
                                 5, 1e-2, 0.75, 1.0)),
        ct.Sample("alexnet_lrn1_like", (ct.rand(1, 96, 5, 5, dtype=dtype, scale=3.0),
                                        ct.rand(1, 96, 5, 5, dtype=dtype, seed=2), 5, 5e-4, 0.75, 2.0)),
        ct.Sample("one_by_one", (ct.rand(3, 11, 1, 1, dtype=dtype, scale=3.0), ct.rand(3, 11, 1, 1, dtype=dtype, seed=3),
                                 5, 1e-1, 0.75, 1.0)),
        ct.Sample("3d", (ct.rand(2, 11, 9, dtype=dtype, scale=3.0), ct.rand(2, 11, 9, dtype=dtype, seed=4), 5, 1e-2,
                         0.75, 1.0), formats=False),
    ]
    return out


def _nonfinite(dtype):
    out = []
    big = ct.square_overflow(dtype)
    for kind in ct.NONFINITE_KINDS:
        # in the input: through D, y and t into the windows of the neighbours; in grad_output:
        # through t and the first term. 40 channels: a value leaves the window long before the last.
        x = ct.rand(2, 40, 5, 7, dtype=dtype, scale=3.0)
        g = ct.rand(2, 40, 5, 7, dtype=dtype, seed=1)
        xs = ct.place_values(x, kind, ct.positions(x.shape), big)
        gs = ct.place_values(g, kind, ct.positions(g.shape, spatial_extra=(3,)), big)
        for size, alpha, beta, k in ((5, 1e-2, 0.75, 1.0), (4, 1e-1, 0.6, 1.0), (3, 1e-1, 0.5, 2.0)):
            out.append(ct.Sample(f"{kind}_input_n{size}_b{beta}", (xs, g, size, alpha, beta, k)))
            out.append(ct.Sample(f"{kind}_grad_n{size}_b{beta}", (x, gs, size, alpha, beta, k)))
        # 667 pixels: across the CPU's 256-pixel blocks
        y = ct.rand(1, 12, 23, 29, dtype=dtype, scale=3.0)
        y = ct.place_values(y, kind, ct.positions(y.shape, spatial_extra=(255, 256, 511, 512)), big)
        out.append(ct.Sample(f"{kind}_blocks", (y, ct.rand(1, 12, 23, 29, dtype=dtype, seed=2), 5, 5e-4, 0.75, 2.0)))
    # k = 0 with an all-zero window: D = 0, y = 0 / 0 = NaN, D^-beta = inf
    z = ct.rand(1, 6, 3, 3, dtype=dtype)
    z[0, :, 1, 1] = 0.0
    out.append(ct.Sample("zero_window_k0", (z, ct.rand(1, 6, 3, 3, dtype=dtype, seed=3), 3, 1e-1, 0.75, 0.0)))
    return out


_t = ct.tensor
_lrnb = "local_response_norm_backward"

SPEC = ct.OpSpec(
    name=_lrnb,
    public=_public,
    overload=torch.ops.fastalex.local_response_norm_backward.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=_schema_args,
    tolerance="gradient",
    emu=_emu,
    emu_overload=torch.ops.fastalex_emu.local_response_norm_backward.default,
    grad_samples=lambda: [ct.Sample("grad_n4", (ct.rand(2, 6, 3, 3, dtype=F64), ct.rand(2, 6, 3, 3, dtype=F64, seed=1),
                                                4, 0.3, 0.75, 1.0))],
    grad_argnums=(0, 1),
    bad_inputs=[
        ct.BadInput("2d_input", lambda f, d: f(_t(4, 5, device=d), _t(4, 5, device=d), _t(4, 5, device=d), 5, 1e-4, 0.75, 1.0),
                    ValueError, rf"{_lrnb}: input must be 3-D or more \(N, C, ...\), got 2-D", "schema"),
        ct.BadInput("size_zero", lambda f, d: f(*[_t(1, 4, 5, 5, device=d)] * 3, 0, 1e-4, 0.75, 1.0), ValueError,
                    rf"{_lrnb}: size must be positive, got 0", "schema"),
        ct.BadInput("beta_inf", lambda f, d: f(*[_t(1, 4, 5, 5, device=d)] * 3, 5, 1e-4, float("inf"), 1.0), ValueError,
                    rf"{_lrnb}: alpha, beta and k must be finite", "schema"),
        ct.BadInput("grad_shape", lambda f, d: f(_t(1, 4, 5, 4, device=d), _t(1, 4, 5, 5, device=d),
                                                 _t(1, 4, 5, 5, device=d), 5, 1e-4, 0.75, 1.0),
                    ValueError, rf"{_lrnb}: grad_output must have the input's shape \[1, 4, 5, 5\], got \[1, 4, 5, 4\]",
                    "schema"),
        ct.BadInput("output_shape", lambda f, d: f(_t(1, 4, 5, 5, device=d), _t(1, 4, 5, 5, device=d),
                                                   _t(1, 3, 5, 5, device=d), 5, 1e-4, 0.75, 1.0),
                    ValueError, rf"{_lrnb}: output must have the input's shape", "schema"),
        ct.BadInput("output_dtype", lambda f, d: f(_t(1, 4, 5, 5, device=d), _t(1, 4, 5, 5, device=d),
                                                   _t(1, 4, 5, 5, dtype=F64, device=d), 5, 1e-4, 0.75, 1.0),
                    TypeError, rf"{_lrnb}: output has dtype float64 but input has dtype float32", "schema"),
        ct.BadInput("int_dtype", lambda f, d: f(*[torch.ones(1, 4, 5, 5, dtype=torch.int64, device=d)] * 3, 5, 1e-4,
                                                0.75, 1.0),
                    TypeError, rf"{_lrnb}: input has dtype Long, which is not supported", "schema"),
    ],
)
