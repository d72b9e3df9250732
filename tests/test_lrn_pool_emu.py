"""The fused LRN + pooling CUDA kernels (lrn_max_pool2d, max_pool2d_lrn) on the SIMT emulator,
for what the contract (tests/test_lrn_max_pool2d.py, test_max_pool2d_lrn.py) does not cover:
tiles cut at every edge, maps smaller than a tile, many channels, ceil-mode windows clipped at
the bottom and right, one launch per call, and the halo cost of the networks' shapes.

Each result must equal fastalex's unfused pair on the emulator bit for bit (same LRN window, the
LRN rounded to the dtype before pooling), be close to torch's float64 pair, and be the same
under every thread schedule."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
from conftest import ELEMENTWISE_TOL, assert_close, randn, to_format
import fastalex.emu as emu

RUNS = [("ascending", 0, "end"), ("descending", 0, "start"), ("random", 5, "end"), ("warp_random", 6, "start")]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def reference(lrn_first, x, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode):
    x = x.double()
    if lrn_first:
        return F.max_pool2d(F.local_response_norm(x, size, alpha, beta, k), kernel_size, stride, padding,
                            ceil_mode=ceil_mode)
    return F.local_response_norm(F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode), size, alpha,
                                 beta, k)


def unfused(lrn_first, x, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode):
    if lrn_first:
        return emu.max_pool2d(emu.local_response_norm(x, size, alpha, beta, k), kernel_size, stride, padding, 1,
                              ceil_mode)
    return emu.local_response_norm(emu.max_pool2d(x, kernel_size, stride, padding, 1, ceil_mode), size, alpha, beta, k)


def check(lrn_first, x, size, alpha, beta, k, kernel_size, stride, padding=0, ceil_mode=False, launches=1):
    args = (size, alpha, beta, k, kernel_size, stride, padding, ceil_mode)
    fused = emu.lrn_max_pool2d if lrn_first else emu.max_pool2d_lrn
    before = emu.launch_count()
    out = ct.under_schedules(lambda **run: fused(x, *args, **run), RUNS, what=fused.__name__)
    assert emu.launch_count() - before == launches * len(RUNS), "kernel launches per call"
    assert_close(out, reference(lrn_first, x, *args), ELEMENTWISE_TOL[x.dtype])
    want = unfused(lrn_first, x, *args)
    assert out.stride() == want.stride()
    assert torch.equal(ct.bits(out), ct.bits(want)), "differs from the unfused pair"
    return out


ORDERS = pytest.mark.parametrize("lrn_first", [True, False], ids=["lrn_max_pool2d", "max_pool2d_lrn"])


# ---------------------------------------------------------------- tiles and edges
@ORDERS
@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
def test_tiles_cut_at_every_edge(lrn_first, fmt):
    # 41 x 37 with 3x3/2 and padding 1: several tiles per row and column, the last ones cut,
    # padded windows on the top and left edges, ceil_mode windows clipped at the bottom and right.
    x = to_format(randn(2, 9, 41, 37, scale=3.0), fmt)
    t = emu.lrn_pool_tiling((41, 37), 3, 2, 1, True)
    assert t["tiles_h"] >= 2 and t["tiles_w"] >= 2
    assert (t["tiles_h"] * t["tile_h"] != 21) or (t["tiles_w"] * t["tile_w"] != 19), "no tile cut at an edge"
    check(lrn_first, x, 5, 1e-2, 0.75, 1.0, 3, 2, 1, True)


@ORDERS
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ceil_mode_windows_clipped_bottom_right(lrn_first, dtype):
    # 14 x 16, 3x3/2 ceil: the last window row and column start on the last input row/column
    # (one tap inside, two past the edge).
    x = randn(1, 11, 14, 16, dtype=dtype, scale=3.0)
    out = check(lrn_first, x, 5, 1e-2, 0.75, 2.0, 3, 2, 0, True)
    assert out.shape[-2:] == (7, 8)


@ORDERS
@pytest.mark.parametrize("shape", [(3, 6, 1, 1), (2, 5, 2, 3), (1, 4, 4, 4)], ids=["1x1", "2x3", "4x4"])
def test_maps_smaller_than_one_tile(lrn_first, shape):
    x = randn(*shape, scale=3.0)
    check(lrn_first, x, 3, 1e-1, 0.75, 1.0, (2, 2) if shape[2] > 1 else 1, 1, 0, True)


@ORDERS
def test_rectangular_window_and_stride_above_kernel(lrn_first):
    # stride 3 > kernel 2: input rows between the windows are never pooled
    x = randn(2, 7, 17, 20, scale=3.0)
    check(lrn_first, x, 4, 1e-1, 0.6, 1.0, (2, 3), (3, 2), (1, 1), False)
    check(lrn_first, x, 4, 1e-1, 0.6, 1.0, 2, 3, 0, True)


@ORDERS
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_many_channels(lrn_first, dtype):
    # 300 channels, the window wraps the ring many times; a huge value enters and leaves.
    x = randn(1, 300, 9, 9, dtype=dtype, scale=3.0)
    x[0, 100] *= 1e6
    check(lrn_first, to_format(x, "nhwc"), 5, 1e-4, 0.75, 1.0, 3, 2, 0, False)


@ORDERS
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_window_without_ring(lrn_first, dtype):
    # size 101: the rings do not fit in shared memory, the kernels re-read the old values.
    x = randn(1, 120, 19, 19, dtype=dtype, scale=3.0)
    check(lrn_first, x, 101, 1e-1, 0.75, 1.0, 3, 2, 1, False)
    name = "lrn_max_pool2d_kernel" if lrn_first else "max_pool2d_lrn_kernel"
    assert any(name in k and ",false>" in k.replace(" ", "") for k in emu.launched_kernels()), emu.launched_kernels()


def test_nan_and_inf_as_torch():
    x = randn(1, 12, 11, 11, scale=3.0)
    x[0, 0, 0, 0] = float("nan")
    x[0, 5, 10, 10] = float("inf")
    x[0, 11, 4, 5] = float("-inf")
    x[0, 7, 6, 0] = 3e19  # its square overflows float32
    for lrn_first in (True, False):
        args = (5, 1e-2, 0.75, 1.0, 3, 2, 1, True)
        fused = emu.lrn_max_pool2d if lrn_first else emu.max_pool2d_lrn
        out = fused(x, *args)
        ct.assert_like_torch(out, lambda *a: reference(lrn_first, *a).to(a[0].dtype), (x,) + args)
        assert torch.equal(ct.bits(out), ct.bits(unfused(lrn_first, x, *args)))
        assert torch.isnan(out).any()


def test_tiles_give_every_thread_a_pixel():
    # No halo (2x2 stride 2): the halo budget alone would pick one output per block.
    t = emu.lrn_pool_tiling((32, 32), 2, 2)
    assert t["tile_pixels"] >= 256 and t["pixels_read"] == 32 * 32
    assert emu.lrn_pool_tiling((13, 13), 3, 2)["tiles_h"] == 1  # a map below 256 pixels: one tile


def test_huge_window_runs_the_unfused_pair():
    # 33 x 33 = 1089 taps: no tile fits a block (1024 input pixels); two launches.
    assert emu.lrn_pool_tiling((40, 40), 33, 1)["tile_h"] == 0
    check(True, randn(1, 6, 40, 40, scale=3.0), 5, 1e-2, 0.75, 1.0, 33, 1, 0, False, launches=2)


# ---------------------------------------------------------------- the default route
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_default_runs_the_two_kernels_bit_for_bit_as_the_fused_one(monkeypatch, dtype, fmt):
    # Unless FASTALEX_LRN_POOL_CUDA=fused (which conftest sets for the other tests), the CUDA
    # lrn_max_pool2d runs its LRN and max-pool kernels in turn: two launches, the same bits.
    x = to_format(randn(2, 13, 27, 27, dtype=dtype, scale=3.0), fmt)
    x[0, 3, 5, 5] = float("nan")
    x[1, 12, 26, 0] = float("inf")
    x[1, 0, 13, 13] = float("-inf")
    args = (5, 5e-4, 0.75, 2.0, 3, 2, 0, False)
    monkeypatch.setenv("FASTALEX_LRN_POOL_CUDA", "fused")
    before = emu.launch_count()
    fused = ct.under_schedules(lambda **run: emu.lrn_max_pool2d(x, *args, **run), RUNS, what="lrn_max_pool2d")
    assert emu.launch_count() - before == len(RUNS), "one launch per call"
    ct.assert_like_torch(fused, lambda *a: reference(True, *a).to(a[0].dtype), (x,) + args)
    for setting in (None, "", "unfused"):
        if setting is None:
            monkeypatch.delenv("FASTALEX_LRN_POOL_CUDA")
        else:
            monkeypatch.setenv("FASTALEX_LRN_POOL_CUDA", setting)
        before = emu.launch_count()
        out = emu.lrn_max_pool2d(x, *args)
        assert emu.launch_count() - before == 2, f"FASTALEX_LRN_POOL_CUDA={setting!r}: two launches"
        assert out.stride() == fused.stride()
        assert torch.equal(ct.bits(out), ct.bits(fused))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fmt", ["nchw", "nhwc", "strided"])
def test_cuda_default_route_bit_for_bit_as_the_fused_kernel(monkeypatch, dtype, fmt):
    # The same on a GPU, through the public op: the route users get (the tests otherwise run
    # the fused kernel, conftest's setting) against the one kernel, at AlexNet's first pair.
    from fastalex import ops
    x = to_format(randn(4, 96, 55, 55, dtype=dtype, scale=3.0, device="cuda"), fmt)
    x[0, 3, 5, 5] = float("nan")
    x[3, 95, 54, 0] = float("inf")
    args = (5, 5e-4, 0.75, 2.0, 3, 2, 0, False)
    monkeypatch.setenv("FASTALEX_LRN_POOL_CUDA", "fused")
    fused = ops.lrn_max_pool2d(x, *args)
    monkeypatch.delenv("FASTALEX_LRN_POOL_CUDA")
    out = ops.lrn_max_pool2d(x, *args)
    ct.assert_like_torch(out.cpu(), lambda *a: reference(True, *a).to(a[0].dtype), (x.cpu(),) + args)
    assert out.stride() == fused.stride()
    assert torch.equal(ct.bits(out), ct.bits(fused))


def test_a_bad_route_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FASTALEX_LRN_POOL_CUDA", "fast")
    for x, kernel in ((randn(1, 4, 9, 9), 3), (randn(0, 4, 9, 9), 3), (randn(1, 2, 40, 40), 33)):  # any route
        with pytest.raises(ValueError, match=r'FASTALEX_LRN_POOL_CUDA must be "fused" or "unfused" \(or unset\), '
                                             r'got "fast"'):
            emu.lrn_max_pool2d(x, 5, kernel_size=kernel, stride=1 if kernel == 33 else 2)


def test_empty_batch_launches_nothing():
    before = emu.launch_count()
    assert emu.lrn_max_pool2d(randn(0, 5, 9, 9), 5).shape == (0, 5, 4, 4)
    assert emu.max_pool2d_lrn(randn(0, 5, 9, 9), 5).shape == (0, 5, 4, 4)
    assert emu.launch_count() == before


# ---------------------------------------------------------------- halo cost of the networks' shapes
# (label, (H, W), kernel, stride, ceil_mode): the pools that follow an LRN in AlexNet (96 x 55 x 55
# after conv1, 256 x 27 x 27 after conv2) and GoogLeNet's (192 x 56 x 56 after conv2, ceil mode).
NETWORK_POOLS = [("alexnet_pool1", (55, 55), 3, 2, False), ("alexnet_pool2", (27, 27), 3, 2, False),
                 ("googlenet_pool2", (56, 56), 3, 2, True)]


@pytest.mark.parametrize("pool", NETWORK_POOLS, ids=lambda p: p[0])
def test_halo_keeps_bytes_moved_within_1_1(pool, capsys):
    label, hw, kernel, stride, ceil_mode = pool
    t = emu.lrn_pool_tiling(hw, kernel, stride, 0, ceil_mode)
    inputs = hw[0] * hw[1]
    # per channel and sample: every tile reads its input span (halo included), writes its outputs once
    read_ratio = t["pixels_read"] / inputs
    moved_ratio = (t["pixels_read"] + t["output_pixels"]) / (inputs + t["output_pixels"])
    with capsys.disabled():
        print(f"\n{label}: {hw[0]}x{hw[1]} k{kernel}s{stride}{' ceil' if ceil_mode else ''}: tile "
              f"{t['tile_h']}x{t['tile_w']} outputs ({t['tiles_h']}x{t['tiles_w']} tiles, {t['tile_pixels']} input "
              f"pixels each at most): input read {read_ratio:.3f}x, bytes moved per input+output byte {moved_ratio:.3f}")
    assert t["tile_pixels"] <= 1024
    assert t["pixels_read"] >= inputs - (hw[0] + hw[1])  # never less than the input the windows cover
    assert read_ratio <= 1.1 and moved_ratio <= 1.1
