"""fastalex.ops.max_pool2d against F.max_pool2d: results must be exact."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, FORMATS, dtypes_for, randn, to_format
from fastalex import ops


def check(x, kernel_size, stride, padding, ceil_mode):
    out = ops.max_pool2d(x, kernel_size, stride, padding, 1, ceil_mode)
    ref = F.max_pool2d(x, kernel_size, stride, padding, 1, ceil_mode)
    assert out.shape == ref.shape
    assert out.dtype == x.dtype
    # Max-pooling selects: the result is bitwise the torch one, NaN in the same places.
    assert torch.equal(torch.isnan(out), torch.isnan(ref))
    assert torch.equal(torch.nan_to_num(out), torch.nan_to_num(ref))
    return out


# (name, shape, kernel, stride, padding, ceil_mode)
CASES = [
    ("alexnet_pool1", (2, 96, 27, 27), 3, 2, 0, False),
    ("alexnet_pool2", (2, 256, 13, 13), 3, 2, 0, False),
    ("alexnet_pool5", (2, 256, 13, 13), 3, 2, 0, False),
    ("googlenet_stem", (2, 64, 23, 23), 3, 2, 0, True),
    ("googlenet_ceil_even", (2, 192, 14, 14), 3, 2, 0, True),
    ("inception_branch", (2, 192, 7, 7), 3, 1, 1, False),
    # the 3x3/1 strips of 16 columns: Inception 3a's 28x28, one full strip, a prime width over
    # three strips (the last holding one column), and single rows / columns
    ("inception_3a_pool", (1, 6, 28, 28), 3, 1, 1, False),
    ("inception_strip16", (1, 3, 5, 16), 3, 1, 1, True),
    ("inception_prime_strips", (2, 3, 11, 33), 3, 1, 1, False),
    ("inception_one_row", (1, 4, 1, 19), 3, 1, 1, False),
    ("inception_one_col", (1, 4, 6, 1), 3, 1, 1, False),
    ("prime", (1, 7, 13, 17), 3, 2, 1, True),
    ("one_by_one", (3, 13, 1, 1), 1, 1, 0, False),
    ("one_by_one_padded", (2, 5, 1, 1), 3, 2, 1, True),
    ("kernel_equals_input", (1, 3, 3, 3), 3, 2, 0, False),
    ("nonsquare", (2, 6, 11, 9), (3, 2), (2, 1), (1, 1), True),
    ("stride_gt_kernel", (1, 5, 12, 12), 2, 3, 0, True),
    ("ceil_last_window_dropped", (1, 3, 6, 6), 2, 2, 1, True),
    # rows wider than 32 columns (several vectors per row), the last row and column clipped
    ("wide_ceil", (1, 3, 10, 72), 3, 2, 0, True),
    ("wide_floor", (2, 2, 9, 71), 3, 2, 0, False),
    # the widest rows that take two output rows per vector (7 outputs, last window clipped),
    # and the narrowest that do not
    ("narrow_15_ceil", (1, 2, 15, 15), 3, 2, 0, True),
    ("w16_ceil", (1, 2, 9, 16), 3, 2, 0, True),
    # torchvision GoogLeNet's 2x2/2 (ceil): its 14x14 maps, odd sizes whose last row and column
    # the ceil mode clips (or the floor mode drops), rows over two and three vectors, 1x1
    ("tv_pool4", (2, 13, 14, 14), 2, 2, 0, True),
    ("2x2s2_odd_ceil", (1, 5, 7, 7), 2, 2, 0, True),
    ("2x2s2_odd_floor", (1, 5, 7, 7), 2, 2, 0, False),
    ("2x2s2_wide_ceil", (1, 3, 5, 67), 2, 2, 0, True),
    ("2x2s2_w32", (2, 2, 4, 32), 2, 2, 0, False),
    ("2x2s2_1x1_ceil", (2, 3, 1, 1), 2, 2, 0, True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_cases_float32(device, case):
    _, shape, k, s, p, ceil = case
    check(randn(*shape, device=device), k, s, p, ceil)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[6], CASES[10]], ids=lambda c: c[0])
def test_formats_and_dtypes(device, fmt, case):
    _, shape, k, s, p, ceil = case
    for dtype in dtypes_for(device):
        x = to_format(randn(*shape, dtype=dtype, device=device), fmt)
        out = check(x, k, s, p, ceil)
        if fmt != "strided":
            fmtm = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
            assert out.is_contiguous(memory_format=fmtm)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_channel_counts_not_multiple_of_vector(device, fmt):
    # 8 halves / 4 floats / 2 doubles per 16-byte load: 7 and 13 channels take the scalar path.
    for c in (7, 13, 16):
        for dtype in dtypes_for(device):
            check(to_format(randn(2, c, 9, 9, dtype=dtype, device=device), fmt), 3, 2, 0, False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_nan_and_inf(device, fmt):
    x = randn(1, 4, 8, 8, device=device)
    x[0, 0, 3, 3] = float("nan")
    x[0, 1, 0, 0] = float("inf")
    x[0, 2] = float("-inf")
    x[0, 3, 7, 7] = float("nan")  # in the last window, which the ceil mode clips
    check(to_format(x, fmt), 3, 2, 1, False)
    check(to_format(x, fmt), 3, 2, 0, False)
    check(to_format(x, fmt), 3, 2, 0, True)


@pytest.mark.parametrize("device", DEVICES)
def test_negative_values_never_see_padding(device):
    # Padding is -inf, not 0: an all-negative input must stay negative at the borders.
    x = -randn(1, 2, 5, 5, device=device).abs() - 1
    out = check(x, 3, 2, 1, True)
    assert (out < 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_default_stride_and_unbatched(device):
    x = randn(3, 8, 8, device=device)
    out = ops.max_pool2d(x, 2)
    assert torch.equal(out, F.max_pool2d(x, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    assert ops.max_pool2d(randn(0, 3, 9, 9, device=device), 3, 2).shape == (0, 3, 4, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_return_indices_are_torchs(device):
    x = randn(2, 5, 13, 11, device=device)
    x[0, 1, 3, 4] = float("nan")
    out, idx = ops.max_pool2d(x, 3, 2, 1, 1, True, True)
    want, want_idx = F.max_pool2d(x, 3, 2, 1, 1, True, True)
    assert torch.equal(out.nan_to_num(), want.nan_to_num()) and torch.equal(idx, want_idx)
    out, idx = ops.max_pool2d(x[0], (3, 2), (2, 1), 0, (2, 1), return_indices=True)  # unbatched
    want, want_idx = F.max_pool2d(x[0], (3, 2), (2, 1), 0, (2, 1), return_indices=True)
    assert torch.equal(out.nan_to_num(), want.nan_to_num()) and torch.equal(idx, want_idx)


# ---------------------------------------------------------------- the op contract's spec
import contract as ct  # noqa: E402
import fastalex.emu as emu  # noqa: E402


def _reference(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)


def _samples(dtype):
    r = lambda *s: ct.rand(*s, dtype=dtype)  # noqa: E731
    # torch's positional order: input, kernel_size, stride, padding, dilation, ceil_mode
    return [
        ct.Sample("alexnet_3x3s2_wide_rows", (r(2, 5, 27, 33), 3, 2)),
        ct.Sample("alexnet_3x3s2_narrow_rows", (r(2, 6, 13, 13), 3, 2)),
        ct.Sample("googlenet_ceil", (r(2, 7, 14, 14), 3, 2, 0, 1, True)),
        ct.Sample("prime_pad_ceil", (r(1, 7, 13, 17), 3, 2, 1, 1, True)),
        ct.Sample("inception_3x3s1", (r(2, 9, 7, 7), 3, 1, 1)),
        ct.Sample("inception_3x3s1_strips", (r(1, 5, 9, 33), 3, 1, 1)),
        ct.Sample("default_stride", (r(1, 3, 9, 9), 2)),
        ct.Sample("2x2s2_ceil_wide", (r(2, 5, 9, 37), 2, 2, 0, 1, True)),
        ct.Sample("dilation2", (r(1, 5, 13, 12), 3, 1, 1, 2)),
        ct.Sample("dilation_mixed_ceil", (r(1, 4, 11, 10), (3, 2), (2, 1), (1, 0), (2, 3), True)),
        ct.Sample("one_by_one", (r(3, 13, 1, 1), 1, 1)),
    ]


def _nonfinite(dtype):
    out = []
    big = torch.finfo(ct.precision_of(dtype)).max
    for kind in ct.NONFINITE_KINDS:
        for label, shape, args in (("3x3s2_wide", (2, 5, 27, 33), (3, 2)), ("3x3s2_narrow", (2, 6, 13, 13), (3, 2)),
                                   ("ceil_pad_clipped", (2, 6, 13, 17), (3, 2, 1, 1, True)),
                                   ("inception_3x3s1", (1, 3, 9, 33), (3, 1, 1)),
                                   ("2x2s2_ceil", (1, 4, 13, 37), (2, 2, 0, 1, True)),
                                   ("dilated", (1, 4, 11, 10), ((3, 2), (2, 1), (1, 0), (2, 3), True))):
            n, c, h, w = shape
            # The last row and column: windows the ceil mode and padding clip.
            x = ct.place_values(ct.rand(*shape, dtype=dtype), kind,
                                ct.positions(shape, spatial_extra=((h - 1) * w, w - 1, (h - 1) * w + w // 2)), big)
            out.append(ct.Sample(f"{kind}_{label}", (x,) + args))
    # a window holding only -inf (and one only NaN)
    x = ct.rand(1, 2, 6, 6, dtype=dtype)
    x[0, 0, :3, :3] = float("-inf")
    x[0, 1, 3:, 3:] = float("nan")
    out.append(ct.Sample("all_minus_inf_window", (x, 3, 3)))
    return out


def _schema_args(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return (x, ct.pair_list(kernel_size), ct.pair_list(kernel_size if stride is None else stride),
            ct.pair_list(padding), ct.pair_list(dilation), ceil_mode)


_t = ct.tensor


SPEC = ct.OpSpec(
    name="max_pool2d",
    public=ops.max_pool2d,
    overload=torch.ops.fastalex.max_pool2d.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=_schema_args,
    tolerance="exact",
    emu=emu.max_pool2d,
    emu_overload=torch.ops.fastalex_emu.max_pool2d.default,
    grad_samples=lambda: [ct.Sample("grad", (ct.rand(1, 2, 7, 6, dtype=torch.float64), 3, 2, 1, 1, True)),
                          ct.Sample("grad_dilated", (ct.rand(1, 2, 9, 8, dtype=torch.float64), 2, 1, 0, 2))],
    bad_inputs=[
        ct.BadInput("2d_input", lambda f, d: f(_t(8, 8, device=d), [3, 3], [2, 2], [0, 0], [1, 1], False), ValueError, r"input must be 4-D \(N, C, H, W\), got 2-D", "schema"),
        ct.BadInput("padding_over_half", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, 2, (2, 0)), ValueError, r"padding \(2, 0\) must be at most half of kernel_size \(3, 3\)"),
        ct.BadInput("stride_zero", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, (0, 2)), ValueError, r"stride must be positive, got \(0, 2\)"),
        ct.BadInput("kernel_zero", lambda f, d: f(_t(1, 3, 8, 8, device=d), (0, 3), 1), ValueError, r"kernel_size must be positive, got \(0, 3\)"),
        ct.BadInput("padding_negative", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, 1, (-1, 0)), ValueError, r"padding must be non-negative"),
        ct.BadInput("dilation_zero", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, 1, 0, (1, 0)), ValueError, r"dilation must be positive, got \(1, 0\)"),
        ct.BadInput("kernel_too_large", lambda f, d: f(_t(1, 3, 2, 8, device=d), 3, 1), ValueError, r"kernel_size \(3, 3\) with dilation \(1, 1\) is larger than the padded input \(2, 8\)"),
        ct.BadInput("dilated_too_large", lambda f, d: f(_t(1, 3, 5, 8, device=d), 3, 1, 0, 3), ValueError, r"kernel_size \(3, 3\) with dilation \(3, 3\) is larger than the padded input \(5, 8\)"),
        ct.BadInput("no_channels", lambda f, d: f(_t(1, 0, 8, 8, device=d), 3, 1), ValueError, r"non-zero C, H and W"),
        ct.BadInput("int_dtype", lambda f, d: f(torch.ones(1, 3, 8, 8, dtype=torch.int32, device=d), [3, 3], [2, 2], [0, 0], [1, 1], False), TypeError, r"input has dtype Int, which is not supported", "schema"),
        ct.BadInput("kernel_triple", lambda f, d: f(_t(1, 3, 8, 8, device=d), (3, 3, 3)), TypeError, r"kernel_size must be an int or a pair of ints"),
        ct.BadInput("ceil_mode_int", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, ceil_mode=1), TypeError, r"ceil_mode must be a bool"),
        ct.BadInput("return_indices_int", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, return_indices=1), TypeError, r"return_indices must be a bool"),
        ct.BadInput("dilation_float", lambda f, d: f(_t(1, 3, 8, 8, device=d), 3, 1, 0, 1.0), TypeError, r"dilation must be an int or a pair of ints"),
    ],
)
