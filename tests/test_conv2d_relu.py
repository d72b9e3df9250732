"""fastalex.ops.conv2d_relu against relu(conv2d(...)) computed in float64."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, FORMATS, REDUCTION_TOL, assert_close, dtypes_for, randn, to_format
from fastalex import ops


def reference(x, w, b, stride, padding, groups):
    return F.relu(F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, 1, groups))


def run_case(device, dtype, fmt, n, c, h, w, oc, k, stride=1, padding=0, groups=1, bias=True):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = to_format(randn(n, c, h, w, dtype=dtype, device=device), fmt)
    fan_in = c // groups * kh * kw
    wt = randn(oc, c // groups, kh, kw, dtype=dtype, device=device, scale=fan_in ** -0.5)
    b = randn(oc, dtype=dtype, device=device, scale=0.5) if bias else None
    out = ops.conv2d_relu(x, wt, b, stride, padding, 1, groups)
    ref = reference(x, wt, b, stride, padding, groups)
    assert_close(out, ref, REDUCTION_TOL[dtype])
    # ReLU really clamps: a conv of random inputs has negative pre-activations.
    if out.numel() >= 64:
        assert (out == 0).any() and (out > 0).any()
    expected_cl = fmt == "nhwc"
    assert out.is_contiguous(memory_format=torch.channels_last if expected_cl else torch.contiguous_format)
    return out


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
    assert_close(out, reference(x.unsqueeze(0), w, None, 1, 1, 1)[0], REDUCTION_TOL[torch.float32])


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
