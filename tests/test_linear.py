"""fastalex.ops.linear against F.linear (+ ReLU) computed in float64. The CPU kernel works in
blocks of 4 weight rows x 4 inputs, 1024-float chunks of each row and 64-input slices: the
shapes below cut every one of those blocks short."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, HAS_CUDA, REDUCTION_TOL, assert_close, dtypes_for, randn
from fastalex import ops
from fastalex.nn import Linear


def reference(x, w, b, relu):
    y = F.linear(x.double(), w.double(), None if b is None else b.double())
    return F.relu(y) if relu else y


def run_case(device, dtype, n, k, o, bias=True, relu=True):
    x = randn(n, k, dtype=dtype, device=device)
    w = randn(o, k, dtype=dtype, device=device, scale=k ** -0.5)
    b = randn(o, dtype=dtype, device=device, scale=0.5) if bias else None
    out = ops.linear(x, w, b, relu)
    assert_close(out, reference(x, w, b, relu), REDUCTION_TOL[dtype])
    if relu and out.numel() >= 64:  # ReLU really clamps, and only when asked to
        assert (out == 0).any() and (out > 0).any()
    if not relu and out.numel() >= 64:
        assert (out < 0).any()
    return out


# (name, n, in_features, out_features)
SHAPES = [
    ("alexnet_fc6_small", 16, 9216, 64),
    ("alexnet_fc7_small", 16, 4096, 52),
    ("alexnet_fc8_small", 5, 4096, 1000),
    ("googlenet_fc", 3, 1024, 1000),
    ("googlenet_aux_fc1", 2, 2048, 37),
    ("one_row", 1, 17, 3),
    ("one_feature", 6, 1, 9),
    ("prime_everything", 7, 1031, 13),
    ("chunk_plus_one", 4, 1025, 4),
    ("partial_vector", 5, 15, 7),
    ("past_one_slice", 67, 50, 6),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("relu", [True, False])
def test_shapes_float32(device, shape, relu):
    _, n, k, o = shape
    run_case(device, torch.float32, n, k, o, relu=relu)


@pytest.mark.parametrize("device", DEVICES)
def test_dtypes(device):
    for dtype in dtypes_for(device):
        run_case(device, dtype, 7, 300, 21)


@pytest.mark.parametrize("device", DEVICES)
def test_no_bias(device):
    run_case(device, torch.float32, 9, 130, 11, bias=False)
    run_case(device, torch.float32, 9, 130, 11, bias=False, relu=False)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_and_leading_dims(device):
    x = randn(6, 2 * 70, device=device)[:, ::2]  # every other feature: a strided view
    w = randn(70, 19, device=device).t()  # a transposed view
    b = randn(2 * 19, device=device)[::2]
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    assert_close(ops.linear(x, w, b, True), reference(x, w, b, True), REDUCTION_TOL[torch.float32])
    x3 = randn(2, 3, 70, device=device)
    out = ops.linear(x3, w, b)
    assert out.shape == (2, 3, 19)
    assert_close(out, reference(x3, w, b, False), REDUCTION_TOL[torch.float32])


@pytest.mark.parametrize("device", DEVICES)
def test_empty_and_zero_features(device):
    w = randn(5, 8, device=device)
    assert ops.linear(randn(0, 8, device=device), w, None, True).shape == (0, 5)
    # No input features: the output is the bias (then clamped).
    b = randn(5, device=device)
    out = ops.linear(randn(3, 0, device=device), randn(5, 0, device=device), b, True)
    assert torch.equal(out, F.relu(b).expand(3, 5))


@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates(device):
    x = randn(4, 40, device=device)
    x[1, 7] = float("nan")
    out = ops.linear(x, randn(6, 40, device=device), randn(6, device=device), True)
    assert torch.isnan(out[1]).all() and not torch.isnan(out[[0, 2, 3]]).any()


@pytest.mark.skipif(not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
                    reason="a property of the AVX-512 kernel (the portable path is at::addmm, whose BLAS may split sums by thread)")
def test_results_do_not_depend_on_thread_count():
    import fastalex

    x, w, b = randn(16, 2000), randn(300, 2000), randn(300)
    prev = torch.get_num_threads()
    try:
        with fastalex.cpu_fastpath(True):
            torch.set_num_threads(1)
            one = ops.linear(x, w, b, True)
            torch.set_num_threads(2)
            two = ops.linear(x, w, b, True)
    finally:
        torch.set_num_threads(prev)
    assert torch.equal(one, two)


def test_module_matches_nn_linear_and_reference_switch():
    m = Linear(33, 10, relu=True)
    ref = torch.nn.Linear(33, 10)
    ref.load_state_dict(m.state_dict())
    x = randn(4, 33)
    assert_close(m(x), F.relu(ref(x)), REDUCTION_TOL[torch.float32])
    m.reference = True
    assert_close(m(x), F.relu(ref(x)), REDUCTION_TOL[torch.float32])
    assert "relu=True" in repr(m)


def test_gradients_match_torch():
    x, w, b = (randn(*s, dtype=torch.float64).requires_grad_() for s in ((5, 23), (7, 23), (7,)))
    for relu in (True, False):
        torch.autograd.gradcheck(lambda x, w, b: ops.linear(x, w, b, relu), (x, w, b))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("tf32", [False, True], ids=["matmul_tf32_off", "matmul_tf32_on"])
def test_cuda_float32_precision_is_f_linears(tf32):
    # On CUDA linear is at::addmm / at::mm, the calls F.linear makes: cuBLAS multiplies float32
    # in TF32 exactly when torch.backends.cuda.matmul.allow_tf32 says so, as for F.linear, so
    # the results are F.linear's bit for bit under either setting. (Set and restored by hand:
    # pytest's monkeypatch cannot restore an attribute of torch.backends.cuda.matmul.)
    x = randn(16, 9216, device="cuda")
    w = randn(512, 9216, device="cuda", scale=9216 ** -0.5)
    b = randn(512, device="cuda", scale=0.5)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        for bias in (b, None):
            for relu in (False, True):
                want = F.linear(x, w, bias)
                want = F.relu(want) if relu else want
                torch.testing.assert_close(ops.linear(x, w, bias, relu), want, rtol=0, atol=0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


# ---------------------------------------------------------------- the op contract's spec
import contract as ct  # noqa: E402


def _reference(x, weight, bias=None, relu=False):
    y = F.linear(x, weight, bias)
    return F.relu(y) if relu else y


def _case(label, dtype, n, k, o, bias=True, relu=True, wscale=None, lead=()):
    x = ct.rand(*lead, n, k, dtype=dtype)
    w = ct.rand(o, k, dtype=dtype, scale=k ** -0.5 if wscale is None else wscale)
    b = ct.rand(o, dtype=dtype, scale=0.5) if bias else None
    return ct.Sample(label, (x, w, b, relu), formats=False)


def _samples(dtype):
    return [
        _case("prime_everything", dtype, 7, 1031, 13),
        _case("no_relu", dtype, 5, 21, 6, relu=False),
        _case("aux_fc1_like", dtype, 2, 2048, 37),
        _case("one_row", dtype, 1, 17, 3, bias=False),
        _case("3d_input", dtype, 3, 9, 4, lead=(2,)),
    ]


def _nonfinite(dtype):
    out = []
    big = ct.product_overflow(dtype)
    for kind in ct.NONFINITE_KINDS:
        for relu in (True, False):
            s = _case(f"{kind}_relu{relu}", dtype, 6, 70, 19, relu=relu, wscale=1.0)
            # one special value per input row: first, interior and last feature, 16-lane boundaries
            where = [(0, 0), (1, 15), (2, 16), (3, 35), (4, 69)]
            out.append(ct.Sample(s.label, (ct.place_values(s.args[0], kind, where, big),) + s.args[1:], formats=False))
    return out


_t = ct.tensor


SPEC = ct.OpSpec(
    name="linear",
    public=ops.linear,
    overload=torch.ops.fastalex.linear.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=lambda x, weight, bias=None, relu=False: (x.reshape(-1, x.shape[-1]), weight, bias, relu),
    tolerance="reduction",
    grad_samples=lambda: [_case("grad", torch.float64, 3, 7, 5), _case("grad_no_bias", torch.float64, 2, 4, 3, bias=False)],
    grad_argnums=(0, 1, 2),
    bad_inputs=[
        ct.BadInput("3d_input_schema", lambda f, d: f(_t(2, 3, 8, device=d), _t(4, 8, device=d), None, False), ValueError, r"linear: input must be 2-D \(N, in_features\), got 3-D", "schema"),
        ct.BadInput("3d_weight", lambda f, d: f(_t(2, 8, device=d), _t(4, 8, 1, device=d)), ValueError, r"weight must be 2-D \(out_features, in_features\)"),
        ct.BadInput("features", lambda f, d: f(_t(2, 8, device=d), _t(4, 7, device=d)), ValueError, r"expects 7 input features \(weight.size\(1\)\), but input has 8"),
        ct.BadInput("bias_size", lambda f, d: f(_t(2, 8, device=d), _t(4, 8, device=d), _t(5, device=d)), ValueError, r"bias must be 1-D of size 4 \(out_features\)"),
        ct.BadInput("weight_dtype", lambda f, d: f(_t(2, 8, device=d), _t(4, 8, dtype=torch.float64, device=d)), TypeError, r"linear: weight has dtype float64 but input has dtype float32"),
        ct.BadInput("bias_dtype", lambda f, d: f(_t(2, 8, device=d), _t(4, 8, device=d), _t(4, dtype=torch.float64, device=d)), TypeError, r"linear: bias has dtype float64"),
        ct.BadInput("relu_int", lambda f, d: f(_t(2, 8, device=d), _t(4, 8, device=d), relu=1), TypeError, r"linear: relu must be a bool"),
        ct.BadInput("0d_input", lambda f, d: f(torch.tensor(1.0, device=d), _t(4, 1, device=d)), ValueError, r"linear: input must have at least 1 dimension"),
        ct.BadInput("input_list", lambda f, d: f([1.0], _t(4, 1, device=d)), TypeError, r"linear: input must be a torch.Tensor"),
    ],
)
