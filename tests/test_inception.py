"""fastalex.models.Inception: the Triton kernels (under TRITON_INTERPRET=1 without a GPU) and
the C++ ops path against the plain-torch reference, for every GoogLeNet Inception block and
odd shapes.

Precision: the module's allow_tf32=None follows torch.backends.cudnn.allow_tf32 (on by default),
so these tests turn that flag off (an autouse fixture) and the float32 tolerance assumes
float32 products, as Triton's interpreter computes them (it computes tl.dot in float32 whatever
the precision asked for); the TF32 tests check which precision the Triton path asks for under
each setting of the flag and of allow_tf32. float16 tolerances include the rounding of the two
reduce outputs to float16 (stored between kernels, as torch's float16 module would)."""
import contextlib
import os

import pytest
import torch

from conftest import HAS_CUDA, assert_close, randn, to_format
from fastalex import ops
from fastalex.models import Inception
from fastalex.ops.inception import NAMES as INCEPTION_ARGS

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
needs_triton = pytest.mark.skipif(not (HAS_CUDA or INTERPRET), reason="Triton needs a GPU or TRITON_INTERPRET=1")

# GoogLeNet's Inception blocks: (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
GOOGLENET = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
ODD = (19, 5, 7, 9, 3, 6, 11)  # channel counts not a multiple of 16 (or 8)
TOL = {torch.float32: (2e-4, 2e-4), torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 5e-2)}
TF32_TOL = (1e-2, 1e-2)  # float32 with both convolutions' operands in TF32 (10 mantissa bits)


@contextlib.contextmanager
def cudnn_tf32(enabled):
    """torch.backends.cudnn.allow_tf32 set to `enabled` inside, restored after. The legacy flag,
    not the per-op cudnn.conv.fp32_precision that contract.runner sets: the contract compiles
    _op with torch.compile(fullgraph=True), and dynamo does not trace the per-op setting's getter."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(autouse=True)
def _full_float32(monkeypatch):
    # allow_tf32=None follows this flag: off, float32 runs with float32 products on the GPU
    # too, which the float32 tolerance assumes (the TF32 tests set it themselves).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def make(cfg, dtype=torch.float32, device="cpu", branch3_kernel=5):
    torch.manual_seed(1)
    m = Inception(*cfg, branch3_kernel=branch3_kernel).to(device=device, dtype=dtype).eval()
    with torch.no_grad():
        for conv in m.modules():
            if isinstance(conv, torch.nn.Conv2d):
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn_like(conv.weight) * (2.0 / fan_in) ** 0.5)
                conv.bias.copy_(torch.randn_like(conv.bias) * 0.1)
    return m


def reference(m, x):
    """The module in float64 plain torch ops, from the same (rounded) weights and input."""
    ref = make(tuple([m.in_channels, m.branch1.out_channels, m.branch2_reduce.out_channels, m.branch2.out_channels,
                      m.branch3_reduce.out_channels, m.branch3.out_channels, m.branch4.out_channels]), torch.float64,
               branch3_kernel=m.branch3.kernel_size[0])
    ref.load_state_dict({k: v.double().cpu() for k, v in m.state_dict().items()})
    ref.backend = "reference"
    with torch.no_grad():
        return ref(x.double().cpu())


def check(m, x, backend, dtype):
    m.backend = backend
    with torch.no_grad():
        out = m(x)
    assert out.shape == (x.shape[0], m.out_channels, x.shape[2], x.shape[3])
    assert out.dtype == x.dtype
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)
    assert_close(out.cpu(), reference(m, x), TOL[dtype])
    return out


@pytest.mark.parametrize("block", list(GOOGLENET), ids=list(GOOGLENET))
def test_ops_backend_on_cpu(block):
    m = make(GOOGLENET[block])
    check(m, randn(2, m.in_channels, 7, 7), "auto", torch.float32)
    assert m.resolved_backend(randn(1, 1, 1, 1)) == "ops"


@needs_triton
@pytest.mark.parametrize("block", list(GOOGLENET), ids=list(GOOGLENET))
def test_triton_float32(block):
    device = "cuda" if HAS_CUDA else "cpu"
    m = make(GOOGLENET[block], device=device)
    check(m, randn(2, m.in_channels, 7, 7, device=device), "triton", torch.float32)


@needs_triton
@pytest.mark.parametrize("block", ["3a", "4e", "5b"])
def test_triton_float16(block):
    device = "cuda" if HAS_CUDA else "cpu"
    m = make(GOOGLENET[block], torch.float16, device)
    check(m, randn(1, m.in_channels, 5, 5, dtype=torch.float16, device=device), "triton", torch.float16)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="the interpreter's bfloat16 tl.dot is broken; bfloat16 runs on a GPU")
def test_triton_bfloat16_gpu():
    m = make(GOOGLENET["4d"], torch.bfloat16, "cuda")
    check(m, randn(2, m.in_channels, 14, 14, dtype=torch.bfloat16, device="cuda"), "triton", torch.bfloat16)


@needs_triton
@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
@pytest.mark.parametrize("shape", [(1, 5, 11), (2, 13, 7), (3, 1, 1)], ids=["prime_hw", "prime_h", "one_pixel"])
def test_triton_odd_shapes(fmt, shape):
    device = "cuda" if HAS_CUDA else "cpu"
    m = make(ODD, device=device)
    n, h, w = shape
    x = to_format(randn(n, ODD[0], h, w, device=device), fmt)
    check(m, x, "triton", torch.float32)
    check(m, x, "ops", torch.float32)


@needs_triton
def test_triton_backward_matches_reference():
    device = "cuda" if HAS_CUDA else "cpu"
    m = make(ODD, device=device)
    m.backend = "triton"
    x = randn(1, ODD[0], 4, 5, device=device).requires_grad_(True)
    g = randn(1, m.out_channels, 4, 5, device=device)
    (m(x) * g).sum().backward()
    grads = [x.grad] + [p.grad for p in m.parameters()]
    x2 = x.detach().clone().requires_grad_(True)
    m.zero_grad()
    m.backend = "reference"
    (m(x2) * g).sum().backward()
    for a, b in zip(grads, [x2.grad] + [p.grad for p in m.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_ops_backend_gradients():
    m = make(ODD)
    m.backend = "ops"
    x = randn(2, ODD[0], 5, 6).requires_grad_(True)
    (m(x) ** 2).sum().backward()
    gx = x.grad
    x2 = x.detach().clone().requires_grad_(True)
    m.zero_grad()
    m.backend = "reference"
    (m(x2) ** 2).sum().backward()
    torch.testing.assert_close(gx, x2.grad, rtol=1e-4, atol=1e-4)


def test_empty_batch():
    m = make(ODD)
    for backend in ("ops", "reference") + (("triton",) if INTERPRET else ()):
        m.backend = backend
        assert m(randn(0, ODD[0], 5, 5)).shape == (0, m.out_channels, 5, 5)


def test_bad_input():
    m = make(ODD)
    with pytest.raises(ValueError, match=r"input has 18 channels, expected in_channels=19"):
        m(randn(1, 18, 5, 5))
    with pytest.raises(ValueError, match=r"input must be 4-D \(N, C, H, W\), got 3-D"):
        m(randn(19, 5, 5))
    with pytest.raises(TypeError, match=r"input has dtype torch.float64 but the module's weights are torch.float32"):
        m(randn(1, 19, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"input is on meta but the module's weights are on cpu"):
        m(torch.empty(1, 19, 5, 5, device="meta"))
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor"):
        m([1.0])
    with pytest.raises(ValueError, match=r"ch5x5 must be a positive int, got 0"):
        Inception(3, 1, 1, 1, 1, 0, 1)
    with pytest.raises(ValueError, match=r"backend must be one of"):
        Inception(3, 1, 1, 1, 1, 1, 1, backend="cudnn")
    m64 = make(ODD, torch.float64)
    m64.backend = "triton"
    if INTERPRET or HAS_CUDA:
        with pytest.raises(TypeError, match=r"backend='triton' supports float32, float16 and bfloat16"):
            m64(randn(1, 19, 5, 5, dtype=torch.float64))


def test_triton_backend_without_gpu_or_interpreter_is_a_clear_error(monkeypatch):
    if HAS_CUDA:
        pytest.skip("with a GPU the Triton backend takes CUDA tensors")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    m = make(ODD)
    m.backend = "triton"
    with pytest.raises(RuntimeError, match=r"backend='triton' needs CUDA tensors, or TRITON_INTERPRET=1"):
        m(randn(1, 19, 5, 5))


def test_parameter_names_and_count():
    m = Inception(*GOOGLENET["3a"])
    names = {k.split(".")[0] for k in m.state_dict()}
    assert names == {"branch1", "branch2_reduce", "branch2", "branch3_reduce", "branch3", "branch4"}
    c = GOOGLENET["3a"]
    expected = (c[0] * c[1] + c[1]) + (c[0] * c[2] + c[2]) + (c[2] * 9 * c[3] + c[3]) + (c[0] * c[4] + c[4]) + (c[4] * 25 * c[5] + c[5]) + (c[0] * c[6] + c[6])
    assert sum(p.numel() for p in m.parameters()) == expected
    assert m.out_channels == 256


@needs_triton
def test_triton_splits_batches_past_the_32_bit_index_limit(monkeypatch):
    import fastalex.triton.inception as ti

    device = "cuda" if HAS_CUDA else "cpu"
    m = make(ODD, device=device)
    x = randn(5, ODD[0], 4, 6, device=device)
    per_sample = max(ODD[0], m.out_channels) * 4 * 6
    monkeypatch.setattr(ti, "INDEX_LIMIT", 2 * per_sample)  # three launches of 2, 2 and 1 samples
    check(m, x, "triton", torch.float32)
    monkeypatch.setattr(ti, "INDEX_LIMIT", per_sample - 1)
    m.backend = "triton"
    with pytest.raises(ValueError, match=r"the Triton kernels index at most \d+ per launch"):
        with torch.no_grad():
            m(x)


# ---------------------------------------------------------------- TF32 like torch's convolutions
def test_allow_tf32_defaults_to_following_torch():
    assert Inception(*ODD).allow_tf32 is None
    assert Inception(*ODD, allow_tf32=True).allow_tf32 is True
    assert Inception(*ODD, allow_tf32=False).allow_tf32 is False
    assert "allow_tf32=None" in repr(Inception(*ODD))
    with pytest.raises(TypeError, match=r"allow_tf32 must be None \(follow torch.backends.cudnn.allow_tf32\), True "
                                        r"or False, got 1"):
        Inception(*ODD, allow_tf32=1)


def test_conv_tf32_flag_is_read_as_torch_convolutions_read_it():
    from fastalex._tf32 import conv_tf32_enabled

    cudnn = torch.backends.cudnn
    saved = cudnn.allow_tf32
    try:
        for flag in (True, False):
            cudnn.allow_tf32 = flag
            assert conv_tf32_enabled() is flag
        if hasattr(cudnn, "conv"):  # torch >= 2.9: the per-op API, which torch's convolutions read
            cudnn.allow_tf32 = True
            cudnn.conv.fp32_precision = "ieee"
            assert conv_tf32_enabled() is False
            with pytest.raises(RuntimeError, match="different TF32 flags"):
                cudnn.allow_tf32  # noqa: B018  (the legacy getter refuses mixed settings)
            cudnn.conv.fp32_precision = "tf32"
            assert conv_tf32_enabled() is True
    finally:
        cudnn.allow_tf32 = saved  # sets conv and RNN alike again
    assert cudnn.allow_tf32 is saved


@needs_triton
@pytest.mark.parametrize("allow_tf32, flag, dtype, expected", [
    (None, True, torch.float32, "tf32"),
    (None, False, torch.float32, "ieee"),
    (True, False, torch.float32, "tf32"),
    (False, True, torch.float32, "ieee"),
    (None, True, torch.float16, "ieee"),  # only float32 has a TF32 mode
], ids=["default-flag_on", "default-flag_off", "true-flag_off", "false-flag_on", "float16-flag_on"])
def test_triton_precision_follows_cudnn_flag(monkeypatch, allow_tf32, flag, dtype, expected):
    # The precision every Triton kernel launch gets (the interpreter computes float32 either
    # way; on a GPU "tf32" selects TF32 tensor-core products).
    import fastalex.triton.inception as ti

    seen = []
    real = ti._launch
    monkeypatch.setattr(ti, "_launch", lambda *args: (seen.append(args[-1]), real(*args))[1])
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", flag)
    device = "cuda" if HAS_CUDA else "cpu"
    m = make(ODD, dtype, device)
    m.allow_tf32 = allow_tf32
    m.backend = "triton"
    x = randn(1, ODD[0], 3, 4, dtype=dtype, device=device)
    with torch.no_grad():
        out = m(x)
    assert seen == [expected]
    assert_close(out.cpu(), reference(m, x), TF32_TOL if expected == "tf32" else TOL[dtype])
    # The flag is read at every call, not when the module was built.
    seen.clear()
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", not flag)
    with torch.no_grad():
        m(x)
    if allow_tf32 is None and dtype == torch.float32:
        assert seen == ["ieee" if flag else "tf32"]
    else:
        assert seen == [expected]


@pytest.mark.slow
def test_torch_compile_fullgraph_ops_backend():
    torch._dynamo.reset()
    m = make(ODD)
    m.backend = "ops"
    x = randn(2, ODD[0], 6, 5)
    with torch.no_grad():
        eager = m(x)
        out = torch.compile(m, fullgraph=True)(x)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["ops"] + (["triton"] if (HAS_CUDA or INTERPRET) else []))
def test_torchvision_3x3_third_branch(backend):
    device = "cuda" if HAS_CUDA and backend == "triton" else "cpu"
    m = make(GOOGLENET["4e"], device=device, branch3_kernel=3)
    assert m.branch3.weight.shape[-2:] == (3, 3)
    check(m, randn(1, m.in_channels, 5, 4, device=device), backend, torch.float32)


# ---------------------------------------------------------------- the op contract's spec
# The Inception block as a function of its input and its six (weight, bias) pairs, in the order
# branch1, branch2_reduce, branch2, branch3_reduce, branch3, branch4 (inception_forward's).
import contract as ct  # noqa: E402
from fastalex.models.inception import inception_forward  # noqa: E402


def _pairs(params):
    return [(params[i], params[i + 1]) for i in range(0, 12, 2)]


def _on(backend):
    # float32 products on every backend (TF32 off for the CUDA conv of "ops" and for the Triton
    # kernels), which the contract's float32 tolerance assumes; TF32 is tested above.
    def run(x, *params):
        with cudnn_tf32(False):
            return inception_forward(x, _pairs(params), backend, allow_tf32=False)
    return run


def _op(*args):
    # torch.ops.fastalex.inception through its public function (the module's "ops" backend
    # calls it when no gradient is needed, the differentiable composition otherwise).
    with cudnn_tf32(False):
        return ops.inception(*args)


def _weights(cfg, dtype, k5=5, seed=0):
    cin, c1, c3r, c3, c5r, c5, cp = cfg
    shapes = [(c1, cin, 1), (c3r, cin, 1), (c3, c3r, 3), (c5r, cin, 1), (c5, c5r, k5), (cp, cin, 1)]
    out = []
    for i, (o, c, k) in enumerate(shapes):
        out.append(ct.rand(o, c, k, k, dtype=dtype, scale=(2.0 / (c * k * k)) ** 0.5, seed=seed + 2 * i))
        out.append(ct.rand(o, dtype=dtype, scale=0.1, seed=seed + 2 * i + 1))
    return tuple(out)


def _samples(dtype):
    return [
        ct.Sample("odd_channels", (ct.rand(2, ODD[0], 7, 6, dtype=dtype),) + _weights(ODD, dtype)),
        ct.Sample("3a_5x5", (ct.rand(1, 192, 5, 5, dtype=dtype),) + _weights(GOOGLENET["3a"], dtype)),
        ct.Sample("torchvision_3x3", (ct.rand(1, ODD[0], 5, 9, dtype=dtype),) + _weights(ODD, dtype, k5=3)),
        ct.Sample("one_pixel", (ct.rand(3, ODD[0], 1, 1, dtype=dtype),) + _weights(ODD, dtype)),
        # 32-pixel blocks spanning the two images, rows wider than 16 (the 3x3/1 pool's strips)
        ct.Sample("two_images_wide", (ct.rand(2, ODD[0], 11, 19, dtype=dtype),) + _weights(ODD, dtype)),
    ]


def _nonfinite(dtype):
    # No overflowing finite values here: a huge finite value feeds the second convolution as
    # huge finite intermediates whose sum overflows or not depending on the summation order.
    out = []
    for kind in ("nan", "+inf", "-inf", "mixed"):
        x = ct.rand(2, ODD[0], 9, 17, dtype=dtype)
        x = ct.place_values(x, kind, ct.positions(x.shape, spatial_extra=(8 * 17,)), 1e3)
        out.append(ct.Sample(kind, (x,) + _weights(ODD, dtype)))
    return out


def _bad(label, exc, pattern, api="public", x=(1, 5, 4, 4), **swap):
    # The grad sample's shapes ((5, 2, 3, 2, 2, 3, 2), 3x3 second branch, 5x5 third) with
    # `swap` replacing arguments by name.
    def call(f, d):
        args = dict(zip(INCEPTION_ARGS, (ct.tensor(*x, device=d),) + tuple(
            t.to(d) for t in _weights((5, 2, 3, 2, 2, 3, 2), torch.float32))))
        for k, v in swap.items():
            args[k] = v(d) if callable(v) else v
        return f(*(args[n] for n in INCEPTION_ARGS))
    return ct.BadInput(label, call, exc, pattern, api)


SPEC = ct.OpSpec(
    name="inception",
    public=_op,
    overload=torch.ops.fastalex.inception.default,
    reference=_on("reference"),
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=lambda *args: args,
    bad_inputs=[
        _bad("3d_input", ValueError, r"input must be 4-D \(N, C, H, W\), got 3-D", "schema", x=(5, 4, 4)),
        _bad("input_channels", ValueError, r"w1 must be \(out_channels, 6, 1, 1\) for an input of 6 channels",
             "schema", x=(1, 6, 4, 4)),
        _bad("w3_reads_reduce", ValueError, r"w3 expects 4 input channels, but w3_reduce has 3 output channels",
             "schema", w3=lambda d: ct.tensor(2, 4, 3, 3, device=d)),
        _bad("even_kernel", ValueError, r"w5 must have a square kernel of odd size", "schema",
             w5=lambda d: ct.tensor(3, 2, 4, 4, device=d)),
        _bad("bias_size", ValueError, r"b_pool must be 1-D of size 2 \(w_pool's output channels\)", "schema",
             b_pool=lambda d: ct.tensor(3, device=d)),
        _bad("weight_dtype", TypeError, r"w3_reduce has dtype float64 but input has dtype float32", "schema",
             w3_reduce=lambda d: ct.tensor(3, 5, 1, 1, dtype=torch.float64, device=d)),
        _bad("bias_list", TypeError, r"b1 must be a torch.Tensor", b1=[0.0]),
    ],
    tolerance="two_reductions",
    triton=_on("triton"),
    grad_samples=lambda: [ct.Sample("grad", (ct.rand(1, 5, 4, 3, dtype=torch.float64),)
                                    + _weights((5, 2, 3, 2, 2, 3, 2), torch.float64))],
    grad_argnums=tuple(range(13)),
)


@pytest.mark.skipif(not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
                    reason="the CPU op's own path and its Winograd convolutions are AVX-512 code")
@pytest.mark.parametrize("algo, branch3_kernel, winograd", [("winograd", 5, 2), ("winograd", 3, 2), ("direct", 3, 0)],
                         ids=["winograd_paper", "winograd_torchvision", "direct"])
def test_cpu_op_winograd_branches(monkeypatch, algo, branch3_kernel, winograd):
    # The CPU op's k x k branches (3x3 and 5x5, or two 3x3 in torchvision's variant) go through
    # the convolution's algorithm choice, each writing its channel slice from a reduce's output.
    monkeypatch.setenv("FASTALEX_CPU_CONV", algo)
    m = make(GOOGLENET["4e"], branch3_kernel=branch3_kernel)
    before = torch.ops.fastalex.cpu_winograd_calls()
    check(m, randn(2, m.in_channels, 14, 14), "ops", torch.float32)
    assert torch.ops.fastalex.cpu_winograd_calls() - before == winograd
