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
