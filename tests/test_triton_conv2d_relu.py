"""fastalex.triton.conv2d_relu (the general Triton conv, the op torch.ops.fastalex.conv2d_relu_triton)
against relu(conv2d(...)) in float64; its op contract spec is at the end.

Without a GPU the kernel runs on Triton's interpreter (TRITON_INTERPRET=1, set by conftest),
which is slow: shapes are tiny, and the interpreter's block sizes (INTERPRETER_CONFIG, 32 x 32
x 16 unless a test changes them) are small so that they still span several tiles in every
dimension. The interpreter computes tl.dot in float32 whatever its input_precision: TF32 is
checked through the kernel's explicit rounding of both operands, which it applies on the
interpreter as on the GPU. Its bfloat16 dot is broken, so bfloat16 runs on a GPU only.
Every output is allocated NaN-poisoned (conftest), so an element the kernel does not write
fails the comparison.
"""
import importlib
import os

import pytest
import torch
import torch.nn.functional as F

import contract as ct
from conftest import HAS_CUDA, REDUCTION_TOL, assert_close, randn, to_format
from test_conv2d_relu import SPEC as OP_SPEC  # the op's bad inputs and their messages

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
pytestmark = [pytest.mark.skipif(not (HAS_CUDA or INTERPRET), reason="Triton needs a GPU or TRITON_INTERPRET=1"),
              # the interpreter's numpy dot warns on NaN and inf operands
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              # torch's own reference, for padding="same" with an even kernel
              pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")]

if HAS_CUDA or INTERPRET:
    from fastalex.triton import conv2d_relu

    tconv = importlib.import_module("fastalex.triton.conv2d_relu")  # the module (the package exports the function)

DEVICE = "cuda" if HAS_CUDA else "cpu"
F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16
DTYPES = [F32, F16] + ([BF16] if HAS_CUDA else [])


@pytest.fixture(autouse=True)
def _ieee_float32():
    """float32 with IEEE products unless a test asks for TF32 (torch's default is TF32 on)."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old


def reference(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    return F.relu(F.conv2d(x.double().cpu(), w.double().cpu(), None if b is None else b.double().cpu(),
                           stride, padding, dilation, groups))


def make(n, c, h, w, oc, k, groups=1, dtype=F32, bias=True, fmt="nchw"):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = to_format(randn(n, c, h, w, dtype=dtype, device=DEVICE), fmt)
    wt = randn(oc, c // groups, kh, kw, dtype=dtype, device=DEVICE, scale=(c // groups * kh * kw) ** -0.5)
    b = randn(oc, dtype=dtype, device=DEVICE, scale=0.5) if bias else None
    return x, wt, b


def run_case(n, c, h, w, oc, k, stride=1, padding=0, dilation=1, groups=1, dtype=F32, fmt="nchw", bias=True):
    x, wt, b = make(n, c, h, w, oc, k, groups, dtype, bias, fmt)
    out = conv2d_relu(x, wt, b, stride, padding, dilation, groups)
    assert out.dtype == dtype
    assert_close(out.cpu(), reference(x, wt, b, stride, padding, dilation, groups), REDUCTION_TOL[dtype])
    want = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
    assert out.is_contiguous(memory_format=want), (fmt, out.stride())
    if out.numel() >= 64:  # ReLU really clamps, and not everything
        assert (out == 0).any() and (out > 0).any()
    return out


# (name, n, c, h, w, oc, k, stride, padding, dilation, groups): the networks' stems and layers
# scaled down, then odd shapes. Channel counts that are multiples of 16 (the interpreter's
# BLOCK_K) take the ALIGNED path (one tap per K block), all others the per-column decode.
LAYERS = [
    ("alexnet_conv1", 1, 3, 27, 27, 16, 11, 4, 0, 1, 1),
    ("googlenet_conv1", 1, 3, 17, 17, 12, 7, 2, 3, 1, 1),
    ("alexnet_conv2_groups2", 1, 8, 7, 7, 12, 5, 1, 2, 1, 2),
    ("aligned_32_channels", 1, 32, 6, 7, 20, 3, 1, 1, 1, 1),
    ("aligned_groups2", 1, 32, 5, 5, 18, 3, 1, 1, 1, 2),
    ("partial_tiles", 2, 9, 11, 10, 67, 3, 2, 1, 1, 1),
    ("prime_spatial", 1, 7, 13, 11, 11, 3, 1, 1, 1, 1),
    ("groups3", 1, 9, 8, 8, 6, 3, 1, 1, 1, 3),
    ("depthwise", 1, 5, 7, 6, 10, 3, 1, 1, 1, 5),
    ("stride4_1x1", 2, 5, 9, 13, 7, 1, 4, 0, 1, 1),
    ("dilation2", 1, 5, 11, 10, 7, 3, 1, 2, 2, 1),
    ("dilation_mixed", 1, 6, 13, 12, 9, (3, 2), (2, 1), (1, 0), (2, 3), 3),
    ("nonsquare", 2, 6, 12, 9, 10, (3, 5), (2, 1), (1, 2), 1, 2),
    ("one_by_one_spatial", 3, 13, 1, 1, 5, 1, 1, 0, 1, 1),
    ("one_pixel_padded", 2, 5, 1, 1, 3, 3, 1, 1, 1, 1),
    ("huge_stride", 2, 3, 5, 7, 4, 3, 1000003, 1, 1, 1),
]


@pytest.mark.parametrize("layer", LAYERS, ids=[l[0] for l in LAYERS])
def test_layers_float32(layer):
    _, n, c, h, w, oc, k, s, p, d, g = layer
    run_case(n, c, h, w, oc, k, s, p, d, g)


@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("layer", [l for l in LAYERS if l[0] in ("partial_tiles", "nonsquare", "aligned_groups2")],
                         ids=lambda l: l[0])
def test_formats_and_dtypes(layer, dtype, fmt):
    _, n, c, h, w, oc, k, s, p, d, g = layer
    run_case(n, c, h, w, oc, k, s, p, d, g, dtype=dtype, fmt=fmt)


@pytest.mark.parametrize("block", [(16, 16, 16), (64, 16, 32), (16, 64, 16)], ids=lambda b: "x".join(map(str, b)))
def test_other_interpreter_tilings(block, monkeypatch):
    # Other tile shapes; with BLOCK_K 32 the 16- and 48-channel groups decode per column, the
    # 32-channel ones stay aligned.
    if not INTERPRET:
        pytest.skip("the interpreter's block sizes; a GPU autotunes")
    monkeypatch.setattr(tconv, "INTERPRETER_CONFIG", block)
    run_case(2, 9, 11, 10, 67, 3, 2, 1)
    run_case(1, 32, 5, 4, 18, 3, 1, 1, 1, 2)
    run_case(1, 48, 3, 3, 17, (1, 2), 1, (0, 1), fmt="nhwc")


@pytest.mark.parametrize("padding", ["same", "valid", (2, 0), [1]])
def test_padding_forms(padding):
    # "same" with an even kernel pads one more on the bottom/right, as F.conv2d does.
    x, wt, b = make(2, 5, 9, 8, 6, (4, 3))
    out = conv2d_relu(x, wt, b, 1, padding, (1, 2))
    assert_close(out.cpu(), reference(x, wt, b, 1, padding, (1, 2)), REDUCTION_TOL[F32])


def test_no_bias_unbatched_and_empty():
    run_case(2, 8, 7, 7, 12, 3, 1, 1, groups=2, bias=False, fmt="nhwc")
    x, wt, b = make(1, 5, 9, 9, 4, 3)
    out = conv2d_relu(x[0], wt, b, 1, 1)
    assert out.shape == (4, 9, 9)
    assert_close(out.cpu(), reference(x, wt, b, 1, 1)[0], REDUCTION_TOL[F32])
    empty = conv2d_relu(randn(0, 4, 8, 8, device=DEVICE), randn(6, 4, 3, 3, device=DEVICE), None, 2, 1)
    assert empty.shape == (0, 6, 4, 4)
    cl = conv2d_relu(randn(0, 4, 8, 8, device=DEVICE).contiguous(memory_format=torch.channels_last),
                     randn(6, 4, 3, 3, device=DEVICE))
    assert cl.shape == (0, 6, 6, 6)


# ---------------------------------------------------------------- TF32
def test_tf32_follows_the_cudnn_flag():
    x, wt, b = make(2, 9, 11, 10, 67, 3)
    exact = conv2d_relu(x, wt, b, 2, 1)
    assert_close(exact.cpu(), reference(x, wt, b, 2, 1), REDUCTION_TOL[F32])
    torch.backends.cudnn.allow_tf32 = True
    tf32 = conv2d_relu(x, wt, b, 2, 1)
    # TF32 products of rounded inputs (the bias is added in float32): within the float32
    # tolerance of the reference computed from the rounded inputs, and not equal to IEEE.
    assert_close(tf32.cpu(), reference(tf32_round(x.cpu()), tf32_round(wt.cpu()), b, 2, 1), REDUCTION_TOL[F32])
    assert not torch.equal(tf32, exact)
    # float16 ignores the flag.
    h = conv2d_relu(x.half(), wt.half(), b.half(), 2, 1)
    torch.backends.cudnn.allow_tf32 = False
    assert torch.equal(h, conv2d_relu(x.half(), wt.half(), b.half(), 2, 1))


def tf32_round(t):
    """float32 -> TF32 as cvt.rna.tf32.f32 rounds (to nearest, ties away from zero); NaN and inf
    stay (tests/contract.py's rule)."""
    bits = t.contiguous().view(torch.int32)
    rounded = ((bits + 0x1000) & ~0x1FFF).view(torch.float32)
    return torch.where(torch.isfinite(t.contiguous()), rounded, t.contiguous()).view_as(t)


def test_tf32_rounding_of_special_values():
    # A 1x1 conv with one channel and weight 1 returns relu(round(x)) exactly: ties (low 13
    # bits 0x1000) round away from zero, just below ties down, the largest float32 to inf,
    # subnormals, NaN and inf stay.
    bits = torch.tensor([0x3F800000, 0x3F801000, 0x3F800FFF, 0x3F801FFF, 0x3F803000, 0x7F7FFFFF, 0x7F7FEFFF,
                         0x00001000, 0x00000FFF, 0x7F800000, 0x7FC00000, 0x7F800001, 0x40490FDB, 0x00000000,
                         0x3EAAAAAB, 0x4B7FFFFF], dtype=torch.int32)
    x = bits.view(torch.float32).reshape(1, 1, 1, -1).to(DEVICE)
    w = torch.ones(1, 1, 1, 1, device=DEVICE)
    torch.backends.cudnn.allow_tf32 = True
    out = conv2d_relu(x, w).cpu()
    want = tf32_round(x.cpu())
    assert torch.equal(torch.isnan(out), torch.isnan(want))
    fin = ~torch.isnan(want)
    assert torch.equal(out[fin].view(torch.int32), want[fin].view(torch.int32)), (out, want)
    assert out[0, 0, 0, 5] == float("inf") and out[0, 0, 0, 1].view(torch.int32) == 0x3F802000


# ---------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("tf32", [False, True], ids=["ieee", "tf32"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("kind", ct.NONFINITE_KINDS)
def test_nonfinite_like_torch(kind, dtype, tf32):
    if tf32 and dtype != F32:
        pytest.skip("TF32 is float32 only")
    torch.backends.cudnn.allow_tf32 = tf32
    big = ct.product_overflow(dtype)
    # Weights O(1) so that products with `big` overflow; one special value per window.
    x = ct.rand(2, 6, 17, 19, dtype=dtype)
    x = ct.place_values(x, kind, ct.positions(x.shape), big)
    w = ct.rand(10, 3, 3, 3, dtype=dtype, seed=1)
    b = ct.rand(10, dtype=dtype, scale=0.5, seed=2)
    args = (x, w, b, (2, 1), 1, 1, 2)
    seen = (tf32_round(x), tf32_round(w)) + args[2:] if tf32 else args
    for fmt in ("nchw", "nhwc"):
        out = conv2d_relu(*ct.with_format(ct.map_tensors(args, lambda t: t.to(DEVICE)), fmt))
        ct.assert_like_torch(out.cpu(), lambda *a: F.relu(F.conv2d(*a)), seen, tol=REDUCTION_TOL[dtype],
                             what=f"{kind} {dtype} {fmt}")


def test_nan_reaches_exactly_its_windows():
    x = randn(1, 3, 6, 6, device=DEVICE)
    x[0, 1, 2, 3] = float("nan")
    w = randn(4, 3, 3, 3, device=DEVICE)
    out = conv2d_relu(x, w, None, 1, 1)
    assert torch.isnan(out).sum() == 4 * 9  # the 3x3 neighbourhood of the NaN, every channel
    assert torch.equal(torch.isnan(out).cpu(), torch.isnan(F.relu(F.conv2d(x, w, None, 1, 1))).cpu())


# ---------------------------------------------------------------- launch splitting
def test_batches_split_past_the_32_bit_index_limit(monkeypatch):
    # A small INDEX_LIMIT stands for 2^31: the batch runs in launches of whole samples.
    x, wt, b = make(5, 4, 6, 7, 6, 3)
    launches = []
    real = tconv._launch
    monkeypatch.setattr(tconv, "_launch", lambda x, *a: launches.append((x.shape[0], a[-2])) or real(x, *a))
    # One sample reaches offset 3*42 + 7*7 + 8 = 183 of the input (NCHW, padding 1 included) and
    # 5*42 + 5*7 + 6 = 251 of the output; a sample is 168 / 252 elements. With 256 kept as the
    # margin for rows past the last pixel, 769 allows two samples per launch.
    monkeypatch.setattr(tconv, "INDEX_LIMIT", 256 + 251 + 252 + 10)
    out = conv2d_relu(x, wt, b, 1, 1)
    assert launches == [(2, False), (2, False), (1, False)]
    assert_close(out.cpu(), reference(x, wt, b, 1, 1), REDUCTION_TOL[F32])


def test_64_bit_offsets_when_one_sample_does_not_fit(monkeypatch):
    # channels_last, padding 1: one sample reaches offset 3 + 7*28 + 8*4 = 231 of the input and
    # 251 of the output, more than INDEX_LIMIT - 256 allows: 64-bit offsets. Pixel indices stay
    # 32-bit, so a launch holds at most (INDEX_LIMIT - 256) // 42 samples of 6 x 7 pixels.
    x, wt, b = make(3, 4, 6, 7, 6, 3, fmt="nhwc")
    real = tconv._launch
    for limit, want in ((256 + 150, [(3, True)]), (256 + 100, [(2, True), (1, True)])):
        launches = []
        monkeypatch.setattr(tconv, "_launch", lambda x, *a: launches.append((x.shape[0], a[-2])) or real(x, *a))
        monkeypatch.setattr(tconv, "INDEX_LIMIT", limit)
        out = conv2d_relu(x, wt, b, 1, 1)
        assert launches == want
        assert_close(out.cpu(), reference(x, wt, b, 1, 1), REDUCTION_TOL[F32])
        assert out.is_contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(tconv, "INDEX_LIMIT", 256 + 41)
    with pytest.raises(ValueError, match=r"an output of 6 x 7 pixels per channel is more than the kernel indexes"):
        conv2d_relu(x, wt, b, 1, 1)


def test_groups_split_past_the_grid_limit(monkeypatch):
    # More groups than the grid's z dimension takes: launches of at most GRID_YZ_LIMIT groups.
    monkeypatch.setattr(tconv, "GRID_YZ_LIMIT", 2)
    for fmt in ("nchw", "nhwc"):
        run_case(2, 10, 5, 6, 15, 3, 1, 1, 1, 5, fmt=fmt)


# ---------------------------------------------------------------- bad input
BAD = [pytest.param(b, id=f"{b.api}-{b.label}") for b in OP_SPEC.bad_inputs]


@pytest.mark.parametrize("bad", BAD)
def test_bad_input_as_the_op(bad):
    # The op's own bad calls and messages: "public" ones through the public function, "schema"
    # ones (normalised arguments, the C++ checks) through the function that takes the schema's
    # arguments.
    fn = conv2d_relu if bad.api == "public" else torch.ops.fastalex.conv2d_relu_triton.default
    with pytest.raises(bad.exc, match=bad.pattern):
        bad.call(fn, DEVICE)


def test_bad_input_messages_match_the_op_exactly():
    # Same text as the C++ op, word for word, where both reject the input.
    cases = [
        lambda f: f(randn(1, 3, 8, 8), randn(4, 3, 3, 3), randn(4, 1)),
        lambda f: f(randn(1, 6, 8, 8), randn(4, 4, 3, 3)),
        lambda f: f(randn(1, 3, 4, 4), randn(4, 3, 7, 7), None, 1, 1),
        lambda f: f(randn(1, 3, 8, 8), randn(4, 3, 3, 3, dtype=torch.float64)),
        lambda f: f(randn(1, 3, 8, 8), randn(4, 3, 3, 3), None, (0, 1)),
        lambda f: f(randn(1, 3, 8, 8), randn(4, 3, 0, 3)),
        lambda f: f(randn(1, 0, 8, 8), randn(4, 0, 3, 3)),
        lambda f: f(randn(2, 3, 1, 5, 5), randn(4, 3, 3, 3)),
    ]
    from fastalex import ops

    for case in cases:
        with pytest.raises(Exception) as want:
            case(ops.conv2d_relu)
        with pytest.raises(type(want.value)) as got:
            case(conv2d_relu)
        assert str(got.value) == str(want.value).split("\nException raised from")[0]


def test_unsupported_dtype_and_device(monkeypatch):
    with pytest.raises(TypeError, match=r"input has dtype float64, which is not supported by the Triton kernel on "
                                        r"\w+ \(expected float32, float16 or bfloat16\)"):
        conv2d_relu(randn(1, 3, 8, 8, dtype=torch.float64, device=DEVICE), randn(4, 3, 3, 3, dtype=torch.float64,
                                                                                   device=DEVICE))
    if not HAS_CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match=r"tensors on cpu need TRITON_INTERPRET=1"):
            conv2d_relu(randn(1, 3, 8, 8), randn(4, 3, 3, 3))


# ---------------------------------------------------------------- the op: autograd, torch.compile
def test_gradients_match_torch():
    # The backward is fastalex::conv2d_relu's (convolution_backward on the ReLU-masked
    # gradient); float32 (no float64 kernel), against torch's autograd of the same function.
    x, wt, b = make(2, 6, 9, 8, 10, 3, groups=2)
    got = [t.clone().requires_grad_(True) for t in (x, wt, b)]
    want = [t.clone().requires_grad_(True) for t in (x, wt, b)]
    out = conv2d_relu(*got, (2, 1), 1, (1, 2), 2)
    ref = F.relu(F.conv2d(*want, (2, 1), 1, (1, 2), 2))
    assert_close(out.detach().cpu(), ref.detach().cpu(), REDUCTION_TOL[F32])
    g = torch.linspace(-1, 1, out.numel(), device=DEVICE).view_as(out)
    out.backward(g)
    ref.backward(g)
    for a, r in zip(got, want):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_fullgraph():
    # Under the interpreter the op is opaque to torch.compile (the module docstring says why):
    # this checks its schema, fake kernel and autograd through Dynamo, AOTAutograd and Inductor;
    # on a GPU Inductor also sees the kernel launches.
    torch._dynamo.reset()
    x, wt, b = make(2, 6, 9, 8, 10, 3, groups=2)
    compiled = torch.compile(conv2d_relu, fullgraph=True)
    for fmt in ("nchw", "nhwc"):
        xf = to_format(x, fmt)
        out = compiled(xf, wt, b, (2, 1), 1, (1, 2), 2)
        assert_close(out.cpu(), reference(xf, wt, b, (2, 1), 1, (1, 2), 2), REDUCTION_TOL[F32])
        want = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
        assert out.is_contiguous(memory_format=want)
    xg, wg = x.clone().requires_grad_(True), wt.clone().requires_grad_(True)
    compiled(xg, wg, None, 1, 1, 1, 2).sum().backward()
    xr, wr = x.clone().requires_grad_(True), wt.clone().requires_grad_(True)
    F.relu(F.conv2d(xr, wr, None, 1, 1, 1, 2)).sum().backward()
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wg.grad, wr.grad, rtol=1e-5, atol=1e-5)


_TRACE_GPU_DECOMPOSITION = """
import importlib, os
import torch
import fastalex
tc = importlib.import_module("fastalex.triton.conv2d_relu")
assert not tc._configs.interpreting() and tc.autotuned, "imported with the interpreter"
tc._configs.interpreting = lambda: True  # from here on, check() takes CPU tensors
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
graphs = []
def record(gm, example_inputs):  # keeps the forward graph; never runs it (no GPU)
    graphs.append(gm)
    n = len(gm.graph.find_nodes(op="output")[0].args[0])
    return make_boxed_func(lambda *args: [torch.zeros(()) for _ in range(n)])
x, w, b = torch.randn(2, 8, 9, 9), torch.randn(12, 4, 3, 3), torch.randn(12)
for dynamic in (False, True):
    torch._dynamo.reset()
    graphs.clear()
    torch.compile(tc.conv2d_relu, fullgraph=True, backend=aot_autograd(fw_compiler=record), dynamic=dynamic)(
        x, w, b, 1, 1, 1, 2)
    targets = [str(n.target) for g in graphs for n in g.graph.nodes if n.op == "call_function"]
    print("dynamic" if dynamic else "static", targets.count("triton_kernel_wrapper_functional"),
          sum("fastalex" in t for t in targets))
"""


@pytest.mark.slow
def test_torch_compile_sees_the_launches_on_a_gpu():
    # On a GPU torch.compile traces into the op (triton_op's decomposition): each launch is a
    # triton_kernel_wrapper_functional node that Inductor compiles, and no opaque fastalex op
    # remains. That path cannot run without a GPU, but it can be traced: a fresh process
    # imports the kernels without the interpreter (JIT kernels and autotuner, as on a GPU), lets
    # check() take CPU tensors and records AOTAutograd's forward graphs, static and dynamic.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _TRACE_GPU_DECOMPOSITION], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split("\n")[-3:] == ["static 1 0", "dynamic 1 0", ""], out.stdout + out.stderr[-4000:]


# ---------------------------------------------------------------- GPU only
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_gpu_network_layers(fmt):
    # Full-size channel counts (autotuned configurations) in every dtype.
    for dtype in (F32, F16, BF16):
        run_case(2, 3, 67, 67, 96, 11, 4, 0, dtype=dtype, fmt=fmt)
        run_case(2, 96, 13, 13, 256, 5, 1, 2, 1, 2, dtype=dtype, fmt=fmt)
        run_case(2, 192, 14, 14, 208, 3, 1, 1, dtype=dtype, fmt=fmt)
    torch.backends.cudnn.allow_tf32 = True
    x, wt, b = make(2, 64, 14, 14, 96, 3)
    out = conv2d_relu(x, wt, b, 1, 1)
    assert_close(out.cpu(), reference(tf32_round(x.cpu()), tf32_round(wt.cpu()), b, 1, 1), REDUCTION_TOL[F32])



# ---------------------------------------------------------------- the op contract's spec
# fastalex::conv2d_relu's samples, references, non-finite cases and bad inputs, on the one
# backend this op has: "triton" (the interpreter, or the GPU). No float64 kernel, hence no
# gradcheck (test_gradients_match_torch checks the backward in float32).
import dataclasses  # noqa: E402

import fastalex.triton  # noqa: E402,F401

SPEC = dataclasses.replace(
    OP_SPEC,
    name="conv2d_relu_triton",
    public=fastalex.triton.conv2d_relu,
    overload=torch.ops.fastalex.conv2d_relu_triton.default,
    triton=fastalex.triton.conv2d_relu,
    has_cpu=False,
    emu=None,
    emu_overload=None,
    grad_samples=lambda: [],
    tf32_backends=("triton",),
)
