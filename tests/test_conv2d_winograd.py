"""The CPU convolution's Winograd paths (csrc/cpu/conv2d_winograd_avx512.*: F(4x4, 3x3) and
F(2x2, 5x5), stride 1) against
relu(conv2d) in float64, beyond the op contract: tile and block edges, thread counts, the
algorithm switch and cost model, non-finite and huge values (declined: the direct path gives
torch's results), and its float32 error on the networks' own layers.

torch.ops.fastalex.cpu_winograd_calls() counts the convolutions Winograd completed, so every
test also proves which algorithm ran."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
from conftest import REDUCTION_TOL, assert_close, check_conv2d_relu, conv_inputs, randn
from fastalex import ops

pytestmark = pytest.mark.skipif(not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
                                reason="the Winograd path is AVX-512 code; other CPUs take the direct one")

TOL = REDUCTION_TOL[torch.float32]


def calls():
    return torch.ops.fastalex.cpu_winograd_calls()


@pytest.fixture
def algo(monkeypatch):
    def set_algo(name):
        monkeypatch.setenv("FASTALEX_CPU_CONV", name)
    return set_algo


KERNELS = [3, 5]


def padding_for(p, k):
    """The shapes' padding for 3 x 3 kernels, widened by one for 5 x 5 ones where not zero."""
    if k == 3:
        return p
    return tuple(v + 1 if v else 0 for v in p) if isinstance(p, tuple) else (p + 1 if p else 0)


def reference(x, w, b, padding, groups):
    return F.relu(F.conv2d(x.double(), w.double(), None if b is None else b.double(), 1, padding, 1, groups))


def make(n, c, h, w, oc, padding=1, groups=1, bias=True, wscale=None, k=3):
    return conv_inputs(n, c, h, w, oc, k, groups, bias, wscale=wscale)


# (name, n, c, h, w, oc, padding, groups, bias)
SHAPES = [
    # 16 tiles: one block of at most 16 columns (the micro-kernel's one-vector form)
    ("one_half_block", 1, 32, 14, 14, 40, 1, 1, True),
    # 49 tiles per image, blocks spanning images, a partial last block
    ("blocks_span_images", 2, 24, 28, 28, 30, 1, 1, True),
    # > 4 blocks: the weights transformed once beforehand instead of per task
    ("many_blocks", 4, 12, 28, 28, 20, 1, 1, True),
    ("prime_spatial", 1, 7, 13, 17, 11, 1, 1, True),
    ("one_pixel", 2, 5, 1, 1, 3, 1, 1, True),
    ("no_padding", 2, 8, 9, 11, 12, 0, 1, True),
    ("padding_2", 1, 6, 7, 10, 9, 2, 1, True),
    ("padding_rows_only", 2, 5, 6, 9, 7, (1, 0), 1, True),
    ("groups_2", 1, 32, 13, 13, 48, 1, 2, True),
    ("groups_3", 1, 9, 8, 8, 6, 1, 3, True),
    # a reduction over more than one 512-deep slice
    ("deep_reduction", 1, 600, 5, 6, 20, 1, 1, True),
    # 129 rows: panels of uneven height
    ("uneven_panels", 2, 16, 8, 8, 129, 1, 1, True),
    ("channels_not_multiple_of_16", 3, 19, 10, 9, 33, 1, 1, True),
    ("no_bias", 2, 8, 9, 9, 12, 1, 1, False),
]


def run(shape, strided=False, k=3):
    _, n, c, h, w, oc, p, g, bias = shape
    p = padding_for(p, k)
    x, wt, b = make(n, c, h, w, oc, p, g, bias, k=k)
    if strided:  # a channel slice of a larger tensor: images further apart than C * H * W
        x = torch.cat([x, randn(n, 3, h, w)], 1)[:, :c]
    return check_conv2d_relu(x, wt, b, 1, p, g, TOL)


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_shapes(shape, k, algo):
    algo("winograd")
    before = calls()
    run(shape, k=k)
    assert calls() == before + 1


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] in ("one_half_block", "blocks_span_images", "many_blocks",
                                                                  "uneven_panels")], ids=lambda s: s[0])
@pytest.mark.parametrize("k", KERNELS)
def test_thread_counts(shape, threads, k, algo):
    # Few blocks on several threads cut the rows into pieces that share one transformed input.
    algo("winograd")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        before = calls()
        run(shape, k=k)
        assert calls() == before + 1
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("k", KERNELS)
def test_input_channel_slice(k, algo):
    # The Inception op's branches read channel slices: images x_image_stride apart.
    algo("winograd")
    before = calls()
    run(SHAPES[1], strided=True, k=k)
    assert calls() == before + 1


def test_direct_switch(algo):
    algo("direct")
    before = calls()
    run(("googlenet_4e_like", 1, 160, 14, 14, 64, 1, 1, True))
    assert calls() == before


# (n, c, h, w, out channels, groups, kernel)
@pytest.mark.parametrize("shape, expect", [
    # GoogLeNet 4e's 3x3 at batch 1: 16 tiles against 7 blocks of pixels
    ((1, 160, 14, 14, 64, 1, 3), True),
    # 5b's 7 x 7 maps at batch 1: 4 tiles pad to a block as large as the direct path's two
    ((1, 192, 7, 7, 64, 1, 3), False),
    ((8, 192, 7, 7, 64, 1, 3), True),
    ((1, 64, 56, 56, 32, 1, 3), True),
    # AlexNet's conv2 (5 x 5, 48 channels per group) at batch 1
    ((1, 96, 27, 27, 64, 2, 5), True),
], ids=["14x14_b1", "7x7_b1", "7x7_b8", "56x56_b1", "5x5_27x27_b1"])
def test_cost_model(shape, expect, algo):
    algo("auto")
    n, c, h, w, oc, g, k = shape
    before = calls()
    run(("auto", n, c, h, w, oc, 1, g, True), k=k)
    assert (calls() == before + 1) == expect


def test_other_kernels_are_direct(algo):
    # Winograd is for 3 x 3 and 5 x 5 at stride 1: other convolutions ignore the switch.
    algo("winograd")
    before = calls()
    x, w7, b = randn(1, 8, 12, 12), randn(6, 8, 7, 7, scale=0.1), randn(6)
    assert_close(ops.conv2d_relu(x, w7, b, 1, 3), F.relu(F.conv2d(x.double(), w7.double(), b.double(), 1, 3)), TOL)
    w35 = randn(6, 8, 3, 5, scale=0.1)
    assert_close(ops.conv2d_relu(x, w35, b, 1, (1, 2)),
                 F.relu(F.conv2d(x.double(), w35.double(), b.double(), 1, (1, 2))), TOL)
    w3 = randn(6, 8, 3, 3, scale=0.1)
    assert_close(ops.conv2d_relu(x, w3, b, 2, 1), F.relu(F.conv2d(x.double(), w3.double(), b.double(), 2, 1)), TOL)
    assert_close(ops.conv2d_relu(x, w3, b, 1, 2, 2),
                 F.relu(F.conv2d(x.double(), w3.double(), b.double(), 1, 2, 2)), TOL)
    assert calls() == before


def test_deep_groups_are_direct(algo):
    # Past 2048 input channels per group a block's transformed input would outgrow its scratch
    # bound (and the overflow bound): direct.
    algo("winograd")
    before = calls()
    x, w, b = make(1, 2049, 4, 5, 3)
    assert_close(ops.conv2d_relu(x, w, b, 1, 1), reference(x, w, b, 1, 1), TOL)
    assert calls() == before
    x, w, b = make(1, 2048, 4, 5, 3)
    assert_close(ops.conv2d_relu(x, w, b, 1, 1), reference(x, w, b, 1, 1), TOL)
    assert calls() == before + 1


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("kind", ct.NONFINITE_KINDS)
@pytest.mark.parametrize("where", ["input", "weight"])
def test_nonfinite_declined(kind, where, k, algo):
    # A transform mixes a tile's values (a NaN would reach all 16 outputs of a tile, inf - inf
    # makes NaN): such calls take the direct path, bit for bit.
    x, w, b = make(2, 6, 17, 19, 9, wscale=1.0, k=k)  # products with `big` overflow
    p = k // 2
    big = ct.product_overflow(torch.float32)
    if where == "input":
        x = ct.place_values(x, kind, ct.positions(x.shape), big)
    else:
        w = ct.place_values(w, kind, [(1, 2, 0, 1), (5, 0, 2, 2)], big)
    algo("winograd")
    before = calls()
    out = ops.conv2d_relu(x, w, b, 1, p)
    assert calls() == before
    algo("direct")
    torch.testing.assert_close(out, ops.conv2d_relu(x, w, b, 1, p), rtol=0, atol=0, equal_nan=True)
    assert not torch.isfinite(out).all()
    if where == "input":  # torch's results (for weights, torch's float32 and float64 differ on padding)
        ref = F.relu(F.conv2d(x, w, b, 1, p))
        assert torch.equal(torch.isnan(out), torch.isnan(ref))
        assert torch.equal(torch.isinf(out), torch.isinf(ref))


@pytest.mark.parametrize("k", KERNELS)
def test_nan_stays_in_its_neighbourhood(k, algo):
    algo("winograd")
    x = randn(1, 3, 12, 12)
    x[0, 1, 5, 6] = float("nan")
    w = randn(4, 3, k, k)
    out = ops.conv2d_relu(x, w, None, 1, k // 2)
    assert torch.isnan(out).sum() == 4 * k * k  # the k x k neighbourhood of the NaN, every channel


def test_huge_finite_values_declined(algo):
    # Beyond 1e14 a transform's intermediate sums could overflow where the direct sum does not.
    algo("winograd")
    x, w, b = make(1, 8, 10, 10, 5)
    x[0, 3, 4, 4] = 1e30
    before = calls()
    out = ops.conv2d_relu(x, w, b, 1, 1)
    assert calls() == before
    ref = reference(x, w, b, 1, 1)
    torch.testing.assert_close(out.double(), ref, rtol=TOL[0], atol=TOL[1] * 1e30 * 1e-6)
    # ... and just below the bound Winograd takes it.
    x[0, 3, 4, 4] = 1e13
    before = calls()
    out = ops.conv2d_relu(x, w, b, 1, 1)
    assert calls() == before + 1


# The networks' 3 x 3 and 5 x 5 layers at full size, batch 1 (GoogLeNet conv2 at 56 x 56, Inception
# 3b, 4e and 5b, AlexNet conv2-conv4): the error against float64, as a fraction of the tolerance
# the op states for float32 (1e-4 + 1e-4 |ref|), with unit-variance inputs and weights scaled
# by 1/sqrt(fan-in). Measured: 0.09-0.15 of it, 1e-5 to 1.7e-5, for 3 x 3 and 0.03-0.06 for
# 5 x 5 (the direct path: 0.01-0.03).
@pytest.mark.parametrize("layer", [
    ("googlenet_conv2", 64, 56, 192, 1, 3), ("inception_3b", 128, 28, 192, 1, 3), ("inception_4e", 160, 14, 320, 1, 3),
    ("inception_5b", 192, 7, 384, 1, 3), ("alexnet_conv3", 256, 13, 384, 1, 3), ("alexnet_conv4", 384, 13, 384, 2, 3),
    ("alexnet_conv2", 96, 27, 256, 2, 5), ("inception_3b_5x5", 32, 28, 96, 1, 5), ("inception_5b_5x5", 48, 7, 128, 1, 5),
], ids=lambda l: l[0])
def test_error_on_network_layers(layer, algo):
    algo("winograd")
    _, c, hw, oc, g, k = layer
    x, w, b = make(1, c, hw, hw, oc, k // 2, g, k=k)
    before = calls()
    out = ops.conv2d_relu(x, w, b, 1, k // 2, 1, g).double()
    assert calls() == before + 1
    ref = reference(x, w, b, k // 2, g)
    ratio = ((out - ref).abs() / (TOL[1] + TOL[0] * ref.abs())).max().item()
    assert ratio < 0.5, ratio
