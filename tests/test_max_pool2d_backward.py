"""max_pool2d_backward: max-pooling's input gradient found from the input alone, on every backend
(CPU kernel, CPU with fast paths off, the CUDA kernel on the emulator), against torch's own
max_pool2d_with_indices + max_pool2d_with_indices_backward: bit for bit, since both pick the same
argmax (the first of equal maxima, the last NaN) and add each input's gradients in output order."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
import fastalex
import fastalex.emu as emu
from fastalex import ops

F32, F64, F16, BF16 = ct.F32, ct.F64, ct.F16, ct.BF16
BACKENDS = {"cpu": (F32, F64), "cpu_portable": (F32, F64), "emu": (F32, F64, F16, BF16)}
EMU_RUNS = (("ascending", 0, "end"), ("descending", 0, "start"), ("random", 11, "end"), ("warp_random", 12, "start"))
NAN, INF = float("nan"), float("inf")


def run(backend, g, x, *args):
    if backend == "emu":
        return ct.under_schedules(lambda **r: emu.max_pool2d_backward(g, x, *args, **r), EMU_RUNS,
                                  "emulated max_pool2d_backward")
    with fastalex.cpu_fastpath(backend == "cpu"):
        return ops.max_pool2d_backward(g, x, *args)


def torch_backward(g, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """torch's gradient, computed in float32 for half types (one rounding at the end, as the CUDA
    kernel's float accumulation): the argmax is the same in either precision."""
    pair = ct.pair_list
    args = (pair(kernel_size), pair(kernel_size if stride is None else stride), pair(padding), pair(dilation),
            ceil_mode)
    wide = ct.precision_of(x.dtype)
    xw, gw = x.to(wide), g.to(wide)
    _, idx = torch.ops.aten.max_pool2d_with_indices(xw, *args)
    return torch.ops.aten.max_pool2d_with_indices_backward(gw, xw, *args, idx).to(x.dtype)


def pooled_grad(x, args, seed, dtype):
    out = F.max_pool2d(x.double(), *args)
    return ct.rand(*out.shape, dtype=dtype, seed=seed)


def assert_bits_equal(out, want, what):
    assert out.shape == want.shape and out.dtype == want.dtype, f"{what}: {out.shape} {out.dtype}"
    same = (out == want) | (torch.isnan(out) & torch.isnan(want))
    if not same.all():
        i = tuple(same.logical_not().nonzero()[0].tolist())
        raise AssertionError(f"{what}: {int((~same).sum())} elements differ from torch, e.g. {i}: got "
                             f"{out[i].item()}, torch {want[i].item()}")


# (label, shape, args): the networks' windows, ceil mode, padding, dilation, odd sizes, 1x1 maps,
# channel counts not a multiple of 8 and above the channels-last CPU block of 64.
CASES = [
    ("alexnet_3x3s2", (2, 5, 27, 33), (3, 2)),
    ("googlenet_ceil", (2, 7, 14, 14), (3, 2, 0, 1, True)),
    ("prime_pad_ceil", (1, 7, 13, 17), (3, 2, 1, 1, True)),
    ("inception_3x3s1_pad", (2, 9, 7, 7), (3, 1, 1)),
    ("default_stride", (1, 3, 9, 9), (2,)),
    ("dilation2", (1, 5, 13, 12), (3, 1, 1, 2)),
    ("dilation_mixed_ceil", (1, 4, 11, 10), ((3, 2), (2, 1), (1, 0), (2, 3), True)),
    ("one_by_one", (3, 13, 1, 1), (1, 1)),
    ("window_covers_map", (2, 3, 3, 3), (3, 1, 1)),
    ("channels_70", (1, 70, 6, 5), (3, 2, 1, 1, True)),
]


def case_inputs(shape, args, dtype, seed, ties):
    # ties: small integers, so windows hold equal maxima and the first must win as in torch
    if ties:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 3, shape, generator=g).to(dtype)
    else:
        x = ct.rand(*shape, dtype=dtype, seed=seed)
    return x, pooled_grad(x, args, seed + 1, dtype)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("fmt", ct.FORMATS)
def test_matches_torch_bit_for_bit(backend, ties, fmt):
    for dtype in BACKENDS[backend]:
        for i, (label, shape, args) in enumerate(CASES):
            x, g = case_inputs(shape, args, dtype, i, ties)
            x, g = ct.to_format(x, fmt), ct.to_format(g, fmt)
            out = run(backend, g, x, *args)
            what = f"max_pool2d_backward [{backend}, {dtype}, {label}, {fmt}]"
            assert_bits_equal(out, torch_backward(g, x, *args), what)
            if fmt != "strided":
                want = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
                assert out.is_contiguous(memory_format=want), f"{what}: not in the input's memory format"


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_float64_matches_autograd_of_f_max_pool2d(backend):
    for i, (label, shape, args) in enumerate(CASES):
        x, g = case_inputs(shape, args, F64, i, ties=True)
        x64 = x.clone().requires_grad_(True)
        (want,) = torch.autograd.grad(F.max_pool2d(x64, *args), x64, g)
        assert_bits_equal(run(backend, g, x, *args), want, f"{backend} {label}")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_grad_and_input_layouts_differ(backend):
    x = ct.to_format(ct.rand(2, 6, 13, 11), "nhwc")
    g = ct.to_format(pooled_grad(x, (3, 2, 1), 1, F32), "strided")
    out = run(backend, g, x, 3, 2, 1)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_bits_equal(out, torch_backward(g, x, 3, 2, 1), backend)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_nan_and_inf(backend):
    # NaN wins and, with several NaN in a window, torch takes the last; -inf windows give the
    # first tap inside the input; inf gradients meet at shared argmaxes (inf - inf = NaN).
    for dtype in BACKENDS[backend]:
        x = ct.rand(2, 4, 9, 10, dtype=dtype)
        x[0, 0, 1, 1] = NAN
        x[0, 0, 2, 2] = NAN  # same windows as (1, 1)
        x[0, 1, 3:6, 3:6] = -INF
        x[0, 2, :, :] = -INF
        x[1, 0, 4, 4] = INF
        x[1, 1, 0, 0] = NAN
        x[1, 2, 8, 9] = NAN  # last row and column: clipped windows
        x[1, 3, :2, :] = NAN
        for args in ((3, 2, 1, 1, True), (2, 1), ((3, 2), (2, 1), (1, 0), (2, 3), True)):
            g = pooled_grad(x, args, 3, dtype)
            g[1, 0].fill_(INF)
            g[1, 0, 1, 1] = -INF
            g[0, 3, 0, 0] = NAN
            for fmt in ("nchw", "nhwc"):
                xf, gf = ct.to_format(x, fmt), ct.to_format(g, fmt)
                assert_bits_equal(run(backend, gf, xf, *args), torch_backward(gf, xf, *args),
                                  f"{backend} {dtype} {args} {fmt}")


def test_autograd_runs_the_kernel_and_double_backward():
    x = ct.rand(2, 3, 9, 8, dtype=F64).requires_grad_(True)
    y = ops.max_pool2d(x, 3, 2, 1, 1, True)
    g = ct.rand(*y.shape, dtype=F64, seed=1)
    (dx,) = torch.autograd.grad(y, x, g)
    assert_bits_equal(dx, ops.max_pool2d_backward(g, x.detach(), 3, 2, 1, 1, True), "autograd")
    assert torch.autograd.gradgradcheck(lambda t: ops.max_pool2d(t, 3, 2, 1, 1, True), (x,))
    gg = g.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: ops.max_pool2d_backward(a, x.detach(), 3, 2, 1, 1, True), (gg,))


def test_empty_batch():
    x = torch.empty(0, 3, 9, 9)
    g = torch.empty(0, 3, 4, 4)
    assert ops.max_pool2d_backward(g, x, 3, 2).shape == (0, 3, 9, 9)
    assert emu.max_pool2d_backward(g, x, 3, 2).shape == (0, 3, 9, 9)


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_opcheck_layouts(fmt):
    x = ct.to_format(ct.rand(2, 5, 9, 8), fmt)
    g = ct.to_format(pooled_grad(x, (3, 2, 1, 1, True), 1, F32), fmt)
    torch.library.opcheck(torch.ops.fastalex.max_pool2d_backward.default, (g, x, [3, 3], [2, 2], [1, 1], [1, 1], True))


@pytest.mark.parametrize("fn", [ops.max_pool2d_backward, emu.max_pool2d_backward], ids=["cpu", "emu"])
def test_public_bad_input(fn):
    x = ct.rand(1, 3, 8, 8)
    with pytest.raises(TypeError, match=r"max_pool2d_backward: grad_output must be a torch.Tensor"):
        fn(None, x, 3, 2)
    with pytest.raises(TypeError, match=r"max_pool2d_backward: ceil_mode must be a bool"):
        fn(ct.rand(1, 3, 3, 3), x, 3, 2, ceil_mode=1)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: grad_output must have the pooled shape \[1, 3, 3, 3\], "
                                         r"got \[1, 3, 4, 4\]"):
        fn(ct.rand(1, 3, 4, 4), x, 3, 2)


# ---------------------------------------------------------------- the op contract's spec
def _public(input, grad_output, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """The spec's function: input first, so the contract's layouts apply to it."""
    return ops.max_pool2d_backward(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode)


def _emu(input, grad_output, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, schedule=None,
         seed=None):
    return emu.max_pool2d_backward(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode,
                                   schedule=schedule, seed=seed)


def _reference(input, grad_output, *args):
    x = input.detach().requires_grad_(True)
    (dx,) = torch.autograd.grad(F.max_pool2d(x, *args), x, grad_output)
    return dx


def _schema_args(input, grad_output, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return (grad_output, input, ct.pair_list(kernel_size), ct.pair_list(kernel_size if stride is None else stride),
            ct.pair_list(padding), ct.pair_list(dilation), ceil_mode)


def _samples(dtype):
    out = []
    for i, (label, shape, args) in enumerate(CASES):
        x, g = case_inputs(shape, args, dtype, i, ties=i % 2 == 1)
        out.append(ct.Sample(label, (x, g) + args))
    return out


def _nonfinite(dtype):
    out = []
    big = torch.finfo(ct.precision_of(dtype)).max
    for kind in ct.NONFINITE_KINDS:
        for label, shape, args in (("3x3s2", (2, 5, 13, 17), (3, 2)), ("ceil_pad_clipped", (2, 6, 13, 17), (3, 2, 1, 1, True)),
                                   ("dilated", (1, 4, 11, 10), ((3, 2), (2, 1), (1, 0), (2, 3), True))):
            n, c, h, w = shape
            where = ct.positions(shape, spatial_extra=((h - 1) * w, w - 1, (h - 1) * w + w // 2))
            x = ct.rand(*shape, dtype=dtype)
            g = pooled_grad(x, args, 1, dtype)
            out.append(ct.Sample(f"{kind}_input_{label}", (ct.place_values(x, kind, where, big), g) + args))
            out.append(ct.Sample(f"{kind}_grad_{label}", (x, ct.place_values(g, kind, ct.positions(g.shape), big)) + args))
    return out


_t = ct.tensor
_mpb = "max_pool2d_backward"

SPEC = ct.OpSpec(
    name=_mpb,
    public=_public,
    overload=torch.ops.fastalex.max_pool2d_backward.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=_schema_args,
    # exact where one window picks an input; sums of several windows' gradients round in float32
    tolerance="gradient",
    emu=_emu,
    emu_overload=torch.ops.fastalex_emu.max_pool2d_backward.default,
    grad_samples=lambda: [ct.Sample("grad", (ct.rand(1, 2, 7, 6, dtype=F64), ct.rand(1, 2, 4, 4, dtype=F64, seed=1),
                                             3, 2, 1, 1, True))],
    grad_argnums=(1,),
    bad_inputs=[
        ct.BadInput("2d_input", lambda f, d: f(_t(3, 3, device=d), _t(8, 8, device=d), [3, 3], [2, 2], [0, 0], [1, 1], False),
                    ValueError, rf"{_mpb}: input must be 4-D \(N, C, H, W\), got 2-D", "schema"),
        ct.BadInput("padding_over_half", lambda f, d: f(_t(1, 3, 5, 5, device=d), _t(1, 3, 8, 8, device=d), [3, 3], [2, 2],
                                                        [2, 0], [1, 1], False),
                    ValueError, rf"{_mpb}: padding \(2, 0\) must be at most half of kernel_size \(3, 3\)", "schema"),
        ct.BadInput("grad_shape", lambda f, d: f(_t(1, 3, 4, 4, device=d), _t(1, 3, 8, 8, device=d), [3, 3], [2, 2], [0, 0],
                                                 [1, 1], False),
                    ValueError, rf"{_mpb}: grad_output must have the pooled shape \[1, 3, 3, 3\], got \[1, 3, 4, 4\]",
                    "schema"),
        ct.BadInput("grad_dtype", lambda f, d: f(_t(1, 3, 3, 3, dtype=F64, device=d), _t(1, 3, 8, 8, device=d), [3, 3],
                                                 [2, 2], [0, 0], [1, 1], False),
                    TypeError, rf"{_mpb}: grad_output has dtype float64 but input has dtype float32", "schema"),
        ct.BadInput("int_dtype", lambda f, d: f(torch.ones(1, 3, 3, 3, dtype=torch.int32, device=d),
                                                torch.ones(1, 3, 8, 8, dtype=torch.int32, device=d), [3, 3], [2, 2],
                                                [0, 0], [1, 1], False),
                    TypeError, rf"{_mpb}: input has dtype Int, which is not supported", "schema"),
    ],
)
