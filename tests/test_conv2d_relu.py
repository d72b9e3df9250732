"""fastalex.ops.conv2d_relu against relu(conv2d(...)) computed in float64."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, FORMATS, assert_close, check_conv2d_relu, conv_inputs, conv_tol, dtypes_for, randn, to_format
from fastalex import ops


def reference(x, w, b, stride, padding, groups):
    return F.relu(F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, 1, groups))


def run_case(device, dtype, fmt, n, c, h, w, oc, k, stride=1, padding=0, groups=1, bias=True):
    x, wt, b = conv_inputs(n, c, h, w, oc, k, groups, bias, dtype, device)
    return check_conv2d_relu(to_format(x, fmt), wt, b, stride, padding, groups, conv_tol(device, dtype))


# (name, n, c, h, w, oc, k, stride, padding, groups): the networks' layers with batch and
# spatial size scaled down, then odd shapes.
LAYERS = [
    ("alexnet_conv1", 2, 3, 39, 39, 96, 11, 4, 0, 1),
    ("alexnet_conv2", 2, 96, 9, 9, 256, 5, 1, 2, 2),
    ("alexnet_conv3", 2, 256, 5, 5, 384, 3, 1, 1, 1),
    ("alexnet_conv4", 1, 384, 5, 5, 384, 3, 1, 1, 2),
    ("alexnet_conv5", 1, 384, 5, 5, 256, 3, 1, 1, 2),
    ("googlenet_conv1", 2, 3, 23, 23, 64, 7, 2, 3, 1),
    ("googlenet_conv2_reduce", 2, 64, 9, 9, 64, 1, 1, 0, 1),
    ("googlenet_conv2", 2, 64, 9, 9, 192, 3, 1, 1, 1),
    ("inception_3a_5x5", 2, 16, 7, 7, 32, 5, 1, 2, 1),
    ("inception_4e_1x1", 1, 528, 3, 3, 256, 1, 1, 0, 1),
    ("prime_spatial", 1, 7, 13, 17, 11, 3, 1, 1, 1),
    ("one_by_one_spatial", 3, 13, 1, 1, 5, 1, 1, 0, 1),
    ("one_pixel_padded", 2, 5, 1, 1, 3, 3, 1, 1, 1),
    ("partial_tiles", 1, 9, 11, 10, 67, 3, 2, 1, 1),
    ("nonsquare", 2, 6, 12, 9, 10, (3, 5), (2, 1), (1, 2), 2),
    ("groups_3", 1, 9, 8, 8, 6, 3, 1, 1, 3),
    # rows wider than 16 and 32 pixels (a row's pixels are gathered 16 at a time)
    ("wide_rows", 2, 5, 6, 40, 8, 3, 1, 1, 1),
    # column stride 3 (three column phases) and a kernel 11 wide (taps shifted by up to 10)
    ("stride_3", 2, 4, 17, 29, 5, 5, 3, 2, 1),
    ("wide_kernel", 1, 2, 9, 30, 3, (3, 11), 1, (1, 5), 1),
    # a kernel too wide for the packed path's windows (falls back to BLAS)
    ("kernel_20_wide", 1, 2, 3, 24, 4, (1, 20), 1, 0, 1),
    # a stride far beyond the input (one output pixel; nothing may be sized by the stride)
    ("huge_stride", 2, 3, 5, 7, 4, 3, 1000003, 1, 1),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layer", LAYERS, ids=[l[0] for l in LAYERS])
def test_layers_float32(device, layer):
    _, n, c, h, w, oc, k, s, p, g = layer
    run_case(device, torch.float32, "nchw", n, c, h, w, oc, k, s, p, g)


@pytest.mark.parametrize("layer", LAYERS, ids=[l[0] for l in LAYERS])
def test_layers_float32_cpu_blas_path(layer, monkeypatch):
    # On AVX-512 CPUs float32 NCHW takes the packed micro-kernel; check the BLAS path too.
    monkeypatch.setenv("FASTALEX_CPU_CONV", "blas")
    _, n, c, h, w, oc, k, s, p, g = layer
    run_case("cpu", torch.float32, "nchw", n, c, h, w, oc, k, s, p, g)


# Small batches whose 32-pixel blocks are too few to share evenly among the threads: the CPU
# kernel cuts the output rows into pieces (each regathering the block). Thread counts 1-3 give
# whole blocks, two pieces per block and more; the shapes give one block, 7 blocks (a 14 x 14
# map), blocks spanning images (computed into a scratch tile), and output rows in panels of
# uneven height with a reduction longer than one 256-deep slice.
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 40, 14, 14, 100, 3, 1), (3, 30, 3, 3, 61, 3, 1), (1, 300, 7, 7, 45, 1, 0),
                                   (2, 11, 5, 5, 129, 5, 2)], ids=["7_blocks", "blocks_span_images",
                                                                  "pointwise_2_blocks", "two_images_5x5"])
def test_cpu_small_batch_row_pieces(threads, shape):
    n, c, h, w, oc, k, p = shape
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_case("cpu", torch.float32, "nchw", n, c, h, w, oc, k, 1, p)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layer", [l for l in LAYERS if l[0] in ("alexnet_conv2", "prime_spatial", "partial_tiles", "nonsquare", "one_pixel_padded")], ids=lambda l: l[0])
def test_formats_and_dtypes(device, fmt, layer):
    _, n, c, h, w, oc, k, s, p, g = layer
    for dtype in dtypes_for(device):
        run_case(device, dtype, fmt, n, c, h, w, oc, k, s, p, g)


@pytest.mark.parametrize("device", DEVICES)
def test_no_bias(device):
    run_case(device, torch.float32, "nchw", 2, 8, 9, 9, 12, 3, 1, 1, 2, bias=False)
    run_case(device, torch.float32, "nhwc", 2, 8, 9, 9, 12, 3, 1, 1, 2, bias=False)


@pytest.mark.parametrize("device", DEVICES)
def test_unbatched_input(device):
    x = randn(5, 9, 9, device=device)
    w = randn(4, 5, 3, 3, device=device)
    out = ops.conv2d_relu(x, w, None, 1, 1)
    assert out.shape == (4, 9, 9)
    assert_close(out, reference(x.unsqueeze(0), w, None, 1, 1, 1)[0], conv_tol(device, torch.float32))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    x = randn(0, 4, 8, 8, device=device)
    w = randn(6, 4, 3, 3, device=device)
    out = ops.conv2d_relu(x, w, None, 2, 1)
    assert out.shape == (0, 6, 4, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates_like_torch(device):
    x = randn(1, 3, 6, 6, device=device)
    x[0, 1, 2, 3] = float("nan")
    w = randn(4, 3, 3, 3, device=device)
    out = ops.conv2d_relu(x, w, None, 1, 1)
    ref = F.relu(F.conv2d(x, w, None, 1, 1))
    assert torch.equal(torch.isnan(out), torch.isnan(ref))
    assert torch.isnan(out).sum() == 4 * 9  # the 3x3 neighbourhood of the NaN, every channel


def test_paper_alexnet_conv1_output_shape():
    x = randn(1, 3, 227, 227)
    w = randn(96, 3, 11, 11, scale=0.01)
    assert ops.conv2d_relu(x, w, None, 4, 0).shape == (1, 96, 55, 55)


# ---------------------------------------------------------------- the op contract's spec
import contract as ct  # noqa: E402
import fastalex.emu as emu  # noqa: E402
import fastalex.triton  # noqa: E402


def _reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups))


def _case(label, dtype, n, c, h, w, oc, k, stride=1, padding=0, dilation=1, groups=1, bias=True, wscale=None):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = ct.rand(n, c, h, w, dtype=dtype)
    fan_in = c // groups * kh * kw
    wt = ct.rand(oc, c // groups, kh, kw, dtype=dtype, scale=fan_in ** -0.5 if wscale is None else wscale)
    b = ct.rand(oc, dtype=dtype, scale=0.5) if bias else None
    # torch's positional order: input, weight, bias, stride, padding, dilation, groups
    return ct.Sample(label, (x, wt, b, stride, padding, dilation, groups))


def _samples(dtype):
    return [
        _case("alexnet_conv1_like", dtype, 1, 3, 23, 23, 16, 11, 4, 0),
        _case("groups2_5x5", dtype, 2, 8, 9, 9, 12, 5, 1, 2, 1, 2),
        _case("partial_tiles", dtype, 1, 9, 11, 10, 67, 3, 2, 1),
        _case("dilation2", dtype, 1, 5, 11, 10, 7, 3, 1, 2, 2),
        _case("dilation_mixed", dtype, 1, 6, 13, 12, 9, (3, 2), (2, 1), (1, 0), (2, 3), 3),
        _case("same_even_kernel", dtype, 2, 5, 9, 8, 6, 4, 1, "same", (1, 2)),
        _case("valid", dtype, 1, 4, 7, 6, 5, 3, 1, "valid"),
        _case("one_by_one_spatial", dtype, 3, 13, 1, 1, 5, 1),
        _case("no_bias", dtype, 2, 7, 8, 9, 10, 3, 1, 1, bias=False),
    ]


def _nonfinite(dtype):
    out = []
    big = ct.product_overflow(dtype)
    for kind in ct.NONFINITE_KINDS:
        # Weights O(1) so that products with `big` overflow; at most one special value per
        # window (positions are >= 16 columns apart within a sample).
        s = _case(f"{kind}_3x3_pad1", dtype, 2, 6, 17, 19, 9, 3, 1, 1, wscale=1.0)
        x = ct.place_values(s.args[0], kind, ct.positions(s.args[0].shape), big)
        out.append(ct.Sample(s.label, (x,) + s.args[1:]))
        s = _case(f"{kind}_5x5_stride2_groups2", dtype, 2, 4, 21, 20, 6, 5, 2, 2, 1, 2, wscale=1.0)
        x = ct.place_values(s.args[0], kind, ct.positions(s.args[0].shape)[:3], big)
        out.append(ct.Sample(s.label, (x,) + s.args[1:]))
    return out


def _schema_args(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return (x, weight, bias, ct.pair_list(stride), ct.pair_list(padding), ct.pair_list(dilation), groups)


_t = ct.tensor


_schema = "schema"
SPEC = ct.OpSpec(
    name="conv2d_relu",
    public=ops.conv2d_relu,
    overload=torch.ops.fastalex.conv2d_relu.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=_schema_args,
    tolerance="reduction",
    emu=emu.conv2d_relu,
    emu_overload=torch.ops.fastalex_emu.conv2d_relu.default,
    grad_samples=lambda: [_case("grad", torch.float64, 1, 4, 6, 5, 6, 3, (2, 1), 1, (1, 2), 2)],
    grad_argnums=(0, 1, 2),
    # The Triton conv (fastalex.triton.conv2d_relu, torch.ops.fastalex.conv2d_relu_triton) has a
    # spec of its own, with these samples: tests/test_triton_conv2d_relu.py.
    tf32_backends=("emu", "cuda"),
    tf32_args=(0, 1),  # input and weight; the bias is added in float32
    bad_inputs=[
        ct.BadInput("3d_input", lambda f, d: f(_t(3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 1), ValueError, r"input must be 4-D \(N, C, H, W\), got 3-D", _schema),
        ct.BadInput("5d_input", lambda f, d: f(_t(1, 2, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d)), ValueError, r"input must be 4-D"),
        ct.BadInput("3d_weight", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 1), ValueError, r"weight must be 4-D", _schema),
        ct.BadInput("2d_bias", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), _t(4, 1, device=d)), ValueError, r"bias must be 1-D of size 4"),
        ct.BadInput("bias_size", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), _t(5, device=d)), ValueError, r"bias must be 1-D of size 4 \(out_channels\)"),
        ct.BadInput("weight_dtype", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, dtype=torch.float64, device=d)), TypeError, r"weight has dtype float64 but input has dtype float32"),
        ct.BadInput("bias_dtype", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), _t(4, dtype=torch.float64, device=d)), TypeError, r"bias has dtype float64 but input has dtype float32"),
        ct.BadInput("groups_divide_input", lambda f, d: f(_t(1, 6, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, 1, 0, 1, 4), ValueError, r"input has 6 channels, which is not divisible by groups=4"),
        ct.BadInput("groups_divide_output", lambda f, d: f(_t(1, 6, 8, 8, device=d), _t(5, 3, 3, 3, device=d), None, 1, 0, 1, 2), ValueError, r"weight has 5 output channels, expected a positive multiple of groups=2"),
        ct.BadInput("weight_channels", lambda f, d: f(_t(1, 6, 8, 8, device=d), _t(4, 4, 3, 3, device=d)), ValueError, r"expects 4 input channels \(weight.size\(1\) \* groups\), but input has 6"),
        ct.BadInput("groups_zero", lambda f, d: f(_t(1, 6, 8, 8, device=d), _t(4, 6, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 0), ValueError, r"groups must be positive, got 0", _schema),
        ct.BadInput("kernel_too_large", lambda f, d: f(_t(1, 3, 4, 4, device=d), _t(4, 3, 7, 7, device=d), None, 1, 1), ValueError, r"kernel size \(7, 7\) with dilation \(1, 1\) spans \(7, 7\), larger than the padded input \(6, 6\)"),
        ct.BadInput("dilated_kernel_too_large", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, 1, 0, (4, 1)), ValueError, r"with dilation \(4, 1\) spans \(9, 3\), larger than the padded input \(8, 8\)"),
        ct.BadInput("stride_zero", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, (0, 1)), ValueError, r"stride must be positive, got \(0, 1\)"),
        ct.BadInput("padding_negative", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, 1, (-1, 0)), ValueError, r"padding must be non-negative, got \(-1, 0\)"),
        ct.BadInput("dilation_zero", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, 1, 0, 0), ValueError, r"dilation must be positive, got \(0, 0\)"),
        ct.BadInput("stride_triple", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), stride=(1, 2, 3)), TypeError, r"stride must be an int or a pair of ints"),
        ct.BadInput("dilation_float", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), dilation=1.5), TypeError, r"dilation must be an int or a pair of ints"),
        ct.BadInput("padding_word", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), padding="full"), ValueError, r"padding must be 'valid', 'same', an int or a pair of ints"),
        ct.BadInput("same_strided", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, 2, "same"), ValueError, r"padding='same' is not supported for strided convolutions"),
        ct.BadInput("groups_float", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), groups=1.5), TypeError, r"groups must be an int"),
        ct.BadInput("input_list", lambda f, d: f([1.0], _t(4, 3, 3, 3, device=d)), TypeError, r"input must be a torch.Tensor"),
        ct.BadInput("int_dtype", lambda f, d: f(torch.ones(1, 3, 8, 8, dtype=torch.int32, device=d), torch.ones(4, 3, 3, 3, dtype=torch.int32, device=d), None, [1, 1], [0, 0], [1, 1], 1), TypeError, r"input has dtype Int, which is not supported", _schema),
        ct.BadInput("dilation_triple_schema", lambda f, d: f(_t(1, 3, 8, 8, device=d), _t(4, 3, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1, 1], 1), (ValueError, RuntimeError), r"dilation", _schema),
    ],
)
