"""The tensor-core conv2d + bias + ReLU (csrc/cuda/conv2d_relu_mma_kernel.cuh) on the SIMT
emulator, whose mma / ldmatrix / cp.async follow the PTX ISA's fragment layouts and group
semantics (csrc/emu/tensor_core.h); the same cases run on a GPU when one is present.

Every result is checked element by element against a float64 conv with a bound derived from
the precision, not a blanket tolerance:
    |out - ref| <= (e_in + e_acc) * S + e_out * |ref| + tiny,   S = conv(|x|, |w|) + |b|
  e_in   the operands' rounding before the multiply: 0 for float16 / bfloat16 (the inputs are
         already in that precision and their products are exact in float32), 2 * 2^-11 for
         TF32 (each float32 operand rounded to nearest with 10 mantissa bits);
  e_acc  float32 accumulation of K products, K * 2^-23 (generous: the tensor core's internal
         order and rounding are not specified);
  e_out  the output's rounding: 2^-11 float16, 2^-8 bfloat16, 2^-24 float32.
A second check for TF32 rounds the inputs to TF32 (ties away from zero) first: then only the
accumulation term remains, which tells rounding from truncation and from full float32.
Every case runs under three emulator schedules and must be bit-identical under all of them."""
import re

import pytest
import torch
import torch.nn.functional as F

import contract as ct
from conftest import randn, to_format
import fastalex.emu as emu
from fastalex import ops

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32
HAS_CUDA = torch.cuda.is_available()

E_IN = {F16: 0.0, BF16: 0.0, F32: 2 * 2.0 ** -11}
E_OUT = {F16: 2.0 ** -11, BF16: 2.0 ** -8, F32: 2.0 ** -24}
TINY = {F16: 2.0 ** -24, BF16: 2.0 ** -126, F32: 2.0 ** -126}


def bound(x, w, b, stride, padding, dilation, groups, e_in, dtype):
    S = F.conv2d(x.double().abs(), w.double().abs(), None if b is None else b.double().abs(), stride, padding,
                 dilation, groups)
    K = w[0].numel()
    ref = F.relu(F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, dilation,
                          groups))
    return ref, (e_in + K * 2.0 ** -23) * S + E_OUT[dtype] * ref.abs() + TINY[dtype]


def check_bound(out, ref, tol, what):
    err = (out.double() - ref).abs()
    bad = ~(err <= tol)
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {out.numel()} outputs outside the bound; worst "
                           f"{float((err - tol).max()):.3g} over it at {tuple(int(i) for i in bad.nonzero()[0])}")


# (name, n, c, h, w, oc, k, stride, padding, groups): every conv layer of both networks with
# batch, maps and channels scaled down (kernel, stride, padding, groups and whether the channel
# count is a multiple of 8 kept), then odd shapes.
LAYERS = [
    ("alexnet_conv1_paper", 1, 3, 35, 35, 24, 11, 4, 0, 1),
    ("alexnet_conv1_torchvision", 1, 3, 35, 35, 16, 11, 4, 2, 1),
    ("alexnet_conv2_groups2", 1, 16, 9, 9, 32, 5, 1, 2, 2),
    ("alexnet_conv3", 1, 32, 5, 5, 48, 3, 1, 1, 1),
    ("alexnet_conv4_groups2", 1, 48, 5, 5, 48, 3, 1, 1, 2),
    ("alexnet_conv5_groups2", 1, 48, 5, 5, 32, 3, 1, 1, 2),
    ("googlenet_conv1", 2, 3, 19, 19, 16, 7, 2, 3, 1),
    ("googlenet_conv2_reduce", 2, 16, 7, 7, 16, 1, 1, 0, 1),
    ("googlenet_conv2", 1, 16, 7, 7, 48, 3, 1, 1, 1),
    ("inception_1x1", 2, 24, 6, 6, 16, 1, 1, 0, 1),
    ("inception_3x3", 1, 24, 6, 6, 32, 3, 1, 1, 1),
    ("inception_5x5", 1, 8, 6, 6, 16, 5, 1, 2, 1),
    ("channels_not_multiple_of_8", 1, 13, 6, 7, 11, 3, 1, 1, 1),
    ("one_by_one_map", 3, 16, 1, 1, 24, 1, 1, 0, 1),
    ("partial_tiles_everywhere", 1, 8, 11, 13, 70, 3, 1, 1, 1),
    ("prime_channels_stride2", 1, 7, 11, 11, 5, 3, 2, 1, 1),
    ("batch1_stride4", 1, 8, 17, 17, 8, 5, 4, 1, 1),
]

DTYPES = [F16, BF16, F32]


def make(case, dtype, fmt, bias=True, seed=0):
    _, n, c, h, w, oc, k, s, p, g = case
    x = to_format(ct.rand(n, c, h, w, dtype=dtype, seed=seed), fmt)
    wt = ct.rand(oc, c // g, k, k, dtype=dtype, scale=(c // g * k * k) ** -0.5, seed=seed + 1)
    b = ct.rand(oc, dtype=dtype, scale=0.5, seed=seed + 2) if bias else None
    return x, wt, b, s, p, 1, g


def run_emu(args):
    return ct.under_schedules(lambda **kw: emu.conv2d_relu(*args, **kw), ct.EMU_RUNS)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c[0])
def test_layers_on_tensor_cores(case, dtype):
    fmt = "nhwc" if case[0].endswith(("groups2", "conv2", "1x1", "partial_tiles_everywhere")) else "nchw"
    args = make(case, dtype, fmt, bias=case[0] != "inception_5x5")
    out = run_emu(args)
    x, w, b = args[:3]
    ref, tol = bound(x, w, b, *args[3:], E_IN[dtype], dtype)
    check_bound(out, ref, tol, f"{case[0]} {dtype} {fmt}")
    if dtype == F32:  # the only difference from float64 on TF32-rounded inputs is the accumulation
        ref_r, tol_r = bound(ct.tf32_round(x), ct.tf32_round(w), b, *args[3:], 0.0, dtype)
        check_bound(out, ref_r, tol_r, f"{case[0]} TF32-rounded inputs")
    assert out.dtype == dtype and out.shape == ref.shape
    want = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
    assert out.is_contiguous(memory_format=want)
    # The ReLU clamps something and keeps something.
    assert (out == 0).any() and (out > 0).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_strided_views_and_no_bias(dtype):
    case = ("strided", 2, 16, 9, 8, 24, 3, 1, 1, 2)
    args = make(case, dtype, "strided", bias=False)
    out = run_emu(args)
    ref, tol = bound(*args[:3], *args[3:], E_IN[dtype], dtype)
    check_bound(out, ref, tol, f"strided {dtype}")


def test_kernel_choice_follows_dtype_and_tf32_flag():
    x = randn(1, 16, 6, 6)
    w = randn(8, 16, 3, 3, scale=0.1)
    names = lambda: emu.launched_kernels()  # noqa: E731
    old = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        tf32 = emu.conv2d_relu(x, w, None, 1, 1)
        assert any(re.search(r"conv2d_relu_mma_kernel<float,", k) for k in names())
        torch.backends.cudnn.allow_tf32 = False
        exact = emu.conv2d_relu(x, w, None, 1, 1)
        assert any(re.search(r"conv2d_relu_igemm_kernel<float>", k) for k in names())
    finally:
        torch.backends.cudnn.allow_tf32 = old
    ref = F.relu(F.conv2d(x.double(), w.double(), None, 1, 1))
    ct.assert_matches_reference(exact, ref, ct.TOLERANCES["reduction"][F32], "allow_tf32=False: exact float32")
    # TF32 really ran: with random inputs it cannot match the exact float32 path bit for bit.
    assert not torch.equal(tf32, exact)
    ref_r, tol_r = bound(ct.tf32_round(x), ct.tf32_round(w), None, 1, 1, 1, 1, 0.0, F32)
    check_bound(tf32, ref_r, tol_r, "TF32")
    for dtype in (F16, BF16):
        emu.conv2d_relu(x.to(dtype), w.to(dtype), None, 1, 1)
    assert any("conv2d_relu_mma_kernel<__half," in k for k in names())
    assert any("conv2d_relu_mma_kernel<__nv_bfloat16," in k for k in names())
    emu.conv2d_relu(x.double(), w.double(), None, 1, 1)
    assert any("conv2d_relu_igemm_kernel<double>" in k for k in names())


@pytest.mark.skipif(not hasattr(torch.backends.cudnn, "conv"), reason="torch < 2.9 has no per-op TF32 settings")
def test_tf32_flag_is_read_per_op_as_torch_convolutions_read_it():
    # torch's convolutions read allowTF32CuDNN(Float32Op::CONV) (torch.backends.cudnn.conv.
    # fp32_precision); the op-less read throws once the per-op API sets conv and RNN apart.
    x = randn(1, 16, 6, 6)
    w = randn(8, 16, 3, 3, scale=0.1)
    cudnn = torch.backends.cudnn
    old = cudnn.allow_tf32
    try:
        cudnn.allow_tf32 = False
        exact = emu.conv2d_relu(x, w, None, 1, 1)
        cudnn.allow_tf32 = True
        tf32 = emu.conv2d_relu(x, w, None, 1, 1)
        assert not torch.equal(tf32, exact)
        cudnn.conv.fp32_precision = "ieee"  # conv off, RNN still TF32
        assert torch.equal(emu.conv2d_relu(x, w, None, 1, 1), exact)
        cudnn.allow_tf32 = False
        cudnn.conv.fp32_precision = "tf32"  # conv on, RNN off
        assert torch.equal(emu.conv2d_relu(x, w, None, 1, 1), tf32)
    finally:
        cudnn.allow_tf32 = old  # conv and RNN alike again


# Shapes whose tile the documented model (conv2d_relu_mma_tiles.h) picks with one emulated SM.
TILES = [
    ("MmaTile<128, 128, 64, 64, 3>", (4, 16, 8, 8, 128)),  # 256 pixels x 128 channels
    ("MmaTile<128, 64, 64, 32, 4>", (6, 16, 8, 8, 64)),    # 384 pixels x 64 channels
    ("MmaTile<64, 64, 32, 32, 4>", (2, 16, 8, 8, 128)),    # 128 pixels x 128 channels
]


@pytest.mark.parametrize("tile, shape", TILES, ids=[t[0] for t in TILES])
def test_each_tile_runs_and_is_chosen_by_the_model(tile, shape):
    n, c, h, w, oc = shape
    x = randn(n, c, h, w, dtype=F16).contiguous(memory_format=torch.channels_last)
    wt = randn(oc, c, 3, 3, dtype=F16, scale=(c * 9) ** -0.5)
    b = randn(oc, dtype=F16, scale=0.5)
    with emu.config(sm_count=1):
        out = ct.under_schedules(lambda **kw: emu.conv2d_relu(x, wt, b, 1, 1, **kw), ct.EMU_RUNS)
    want = f"conv2d_relu_mma_kernel<__half, {tile}, true>"
    assert any(want in k for k in emu.launched_kernels()), (want, sorted(emu.launched_kernels()))
    ref, tol = bound(x, wt, b, 1, 1, 1, 1, 0.0, F16)
    check_bound(out, ref, tol, tile)


def test_gather_loader_takes_the_stem_and_odd_channels():
    x = randn(1, 3, 23, 23, dtype=F16)
    w = randn(8, 3, 11, 11, dtype=F16, scale=0.05)
    emu.conv2d_relu(x, w, None, 4, 0)
    assert any("conv2d_relu_mma_kernel<__half, MmaTile<64, 64, 32, 32, 4>, false>" in k
               for k in emu.launched_kernels())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_inf_and_overflow_like_torch(dtype):
    # NaN / inf in the input and the weights, and float16 overflow of a finite sum.
    x = randn(1, 16, 7, 7, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = randn(8, 16, 3, 3, dtype=dtype, scale=0.2)
    x[0, 3, 1, 1] = float("nan")
    x[0, 5, 5, 2] = float("inf")
    x[0, 6, 5, 2] = float("-inf")
    w[2, 4, 1, 1] = float("inf")
    out = emu.conv2d_relu(x, w, None, 1, 1)
    ref = F.relu(F.conv2d(x.double(), w.double(), None, 1, 1)).to(dtype)
    assert torch.equal(torch.isnan(out), torch.isnan(ref)), "NaN pattern differs from torch"
    assert torch.equal(torch.isinf(out), torch.isinf(ref)), "inf pattern differs from torch"
    if dtype == F16:
        big = torch.full((1, 16, 3, 3), 300.0, dtype=F16)
        wb = torch.full((2, 16, 3, 3), 20.0, dtype=F16)
        out = emu.conv2d_relu(big, wb, None)
        assert torch.isinf(out).all(), "a sum past float16's range is inf, as torch gives it"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c[0])
def test_layers_on_the_gpu(case, dtype, monkeypatch):
    # The CUDA kernel itself, whatever fastalex.ops.conv_backend would pick for the layer.
    monkeypatch.setenv("FASTALEX_CONV_BACKEND", "cuda")
    args = make(case, dtype, "nhwc")
    out = ops.conv2d_relu(*ct.map_tensors(args, lambda t: t.cuda())).cpu()
    ref, tol = bound(*args[:3], *args[3:], E_IN[dtype], dtype)
    check_bound(out, ref, tol, f"{case[0]} {dtype} on the GPU")
