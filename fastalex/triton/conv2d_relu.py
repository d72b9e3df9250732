"""A general conv2d + bias + ReLU in Triton: ``fastalex.triton.conv2d_relu`` takes the arguments of
``fastalex.ops.conv2d_relu`` (torch's order), normalises and checks them the same way (same
exceptions, same messages) and computes ``relu(conv2d(...))`` for any stride, padding
(ints, pairs, ``"same"``, ``"valid"``), dilation and groups, on NCHW, channels_last and
non-contiguous inputs, in float32, float16 and bfloat16 (float32 accumulation). The output
has the input's dtype and memory format. CPU tensors run on Triton's interpreter
(TRITON_INTERPRET=1), CUDA tensors on the GPU.

It runs as the custom op ``torch.ops.fastalex.conv2d_relu_triton``
(``torch.library.triton_op``), with fastalex::conv2d_relu's schema and argument convention
(a 4-D input, [h, w] lists for stride, padding and dilation), that op's fake kernel (its shape
rule) and its backward (torch's convolution_backward on the ReLU-masked gradient). On a GPU,
torch.compile traces into the op and sees the kernel launches (``wrap_triton``). Under the
interpreter the launches cannot be traced (the interpreter runs them at once, on real data),
so there the op stays opaque to torch.compile: the compiled graph calls it like any custom op.
``fastalex.ops.conv2d_relu`` picks this op or the CUDA kernel per layer on CUDA tensors
(``fastalex.ops.conv_backend``).

The kernel is an implicit GEMM on ``tl.dot``, one program per (pixel tile, output-channel
tile, group):

- M = output pixels of the batch (n, oh, ow), N = output channels of one group, K = the
  group's (kh, kw, c) reduction, c fastest, so a K block of one tap reads consecutive
  channels (contiguous in channels_last). Weights are packed on the host as
  (groups, K, out_channels / groups), so every weight tile row is contiguous.
- Every A (input) element is masked: pixel rows past M, reduction columns past K, and taps
  that fall in the zero padding. Rows past M and columns past K are also clamped to the last
  valid index, so every computed offset (masked or not) stays inside the bound the host
  checks for 32-bit indexing.
- Two ways to walk K, chosen per launch (ALIGNED): when the group's channel count is a
  multiple of BLOCK_K, a K block never straddles two taps, and the tap (kh, kw) is one scalar
  per block: the padding mask is per pixel row. Otherwise (the 3-channel stem, odd channel
  counts) each column of a K block is decoded into (kh, kw, c) and masked on its own, so
  small channel counts do not waste most of each block.
- float32 follows ``torch.backends.cudnn.allow_tf32`` (on torch >= 2.9 its per-op form,
  ``torch.backends.cudnn.conv.fp32_precision``): off, ``tl.dot`` runs with IEEE
  products; on, both operands are first rounded to TF32 explicitly (to nearest, ties away
  from zero, as ``cvt.rna.tf32.f32``: ``tl.dot``'s "tf32" alone would truncate on the GPU,
  and on the interpreter it computes in full float32), then multiplied with
  ``input_precision="tf32"``. Rounded operands give the same products on the GPU and on the
  interpreter, exactly representable in float32.
- Offsets are 32-bit when the host can bound them below 2^31: batches are split into
  launches that fit. When one sample alone does not fit, the launches use 64-bit offsets
  (IDX64); index arithmetic (pixel and tap decoding) stays 32-bit there, only the products
  with strides widen, so the pixel count of one launch stays below 2^31. Groups run in
  launches of at most 65535 (the grid's third dimension).
"""
from __future__ import annotations

import importlib
from typing import Optional

import torch
import triton
import triton.language as tl
from torch._prims_common import suggest_memory_format
from torch._subclasses.functional_tensor import FunctionalTensorMode
from torch.library import triton_op, wrap_triton

from fastalex.triton import _configs

# The op module (fastalex.ops re-exports its function under the module's name).
_conv_op = importlib.import_module("fastalex.ops.conv2d_relu")
_conv_backend = importlib.import_module("fastalex.ops.conv_backend")  # conv_tf32(): the flag torch's convs read

_OP = "conv2d_relu"

# Block sizes (BLOCK_M, BLOCK_N, BLOCK_K) under the interpreter: small, so that the tests' tiny
# shapes still span several tiles in every dimension. The tests change it to cover more tilings.
INTERPRETER_CONFIG = (32, 32, 16)
# The most elements an int32 offset may reach; launches that would pass it are split (or use
# 64-bit offsets). The tests lower it to exercise both.
INDEX_LIMIT = 2**31 - 1
# CUDA's limit on the grid's y and z dimensions (output-channel tiles, groups).
GRID_YZ_LIMIT = 65535


@triton.jit
def round_tf32(x):
    """float32 -> the nearest TF32 value (10 mantissa bits; ties away from zero, as
    cvt.rna.tf32.f32), still stored as float32. NaN and inf are kept as they are."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = ((bits + 0x1000) & 0xFFFFE000).to(tl.float32, bitcast=True)
    return tl.where((bits & 0x7F800000) == 0x7F800000, x, rounded)


@triton.jit
def wide(v, IDX64: tl.constexpr):
    """v as an int64 when offsets are 64-bit: index arithmetic (pixel and tap decoding) stays
    32-bit, only products with strides widen."""
    if IDX64:
        return v.to(tl.int64)
    else:
        return v


@triton.jit
def conv2d_relu_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, OHW, OW, H, W, CG, OCG, K, KW,
    sxn, sxc, sxh, sxw,
    syn, syc, syh, syw,
    STRIDE_H, STRIDE_W, PAD_H, PAD_W, DIL_H, DIL_W,
    HAS_BIAS: tl.constexpr, ALIGNED: tl.constexpr, IDX64: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # x: (n, groups * CG, H, W) with strides sx*; w: (groups, K = KH * KW * CG, OCG) contiguous,
    # K ordered (kh, kw, c); b: (groups * OCG,); y: (n, groups * OCG, OH, OW) with strides sy*.
    # Indices (pixels, taps, channels) are int32: the host keeps M + BLOCK_M below 2^31.
    g = tl.program_id(2)
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < OCG
    # Rows past M and columns past OCG take the last valid pixel's and channel's addresses
    # (masked): every offset stays within the bound the host checked.
    rmc = tl.minimum(rm, M - 1)
    rnc = tl.minimum(rn, OCG - 1)
    n_img = rmc // OHW
    p = rmc % OHW
    oh = p // OW
    ow = p % OW
    ih0 = oh * STRIDE_H - PAD_H
    iw0 = ow * STRIDE_W - PAD_W
    x_row = wide(n_img, IDX64) * sxn + wide(ih0, IDX64) * sxh + wide(iw0, IDX64) * sxw + wide(g * CG, IDX64) * sxc
    w_g = w_ptr + wide(g, IDX64) * K * OCG
    rk0 = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + rk0
        if ALIGNED:
            # CG % BLOCK_K == 0: the whole block lies in one tap, and K % BLOCK_K == 0.
            tap = k0 // CG
            kh = tap // KW
            dh = kh * DIL_H
            dw = (tap - kh * KW) * DIL_W
            c = (k0 - tap * CG) + rk0
            ih = ih0 + dh
            iw = iw0 + dw
            a_mask = (m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W))[:, None]
            a_off = x_row[:, None] + (wide(dh, IDX64) * sxh + wide(dw, IDX64) * sxw + wide(c, IDX64) * sxc)[None, :]
            b_row = rk
            b_mask = n_ok[None, :]
        else:
            k_ok = rk < K
            b_row = tl.minimum(rk, K - 1)  # columns past K decode to the last tap (masked)
            tap = b_row // CG
            c = b_row - tap * CG
            kh = tap // KW
            dh = kh * DIL_H
            dw = (tap - kh * KW) * DIL_W
            ih = ih0[:, None] + dh[None, :]
            iw = iw0[:, None] + dw[None, :]
            a_mask = (m_ok[:, None] & k_ok[None, :]) & ((ih >= 0) & (ih < H) & (iw >= 0) & (iw < W))
            a_off = x_row[:, None] + (wide(dh, IDX64) * sxh + wide(dw, IDX64) * sxw + wide(c, IDX64) * sxc)[None, :]
            b_mask = k_ok[:, None] & n_ok[None, :]
        a = tl.load(x_ptr + a_off, mask=a_mask, other=0.0)
        b = tl.load(w_g + (wide(b_row, IDX64) * OCG)[:, None] + rnc[None, :], mask=b_mask, other=0.0)
        if PRECISION == "tf32":
            a = round_tf32(a)
            b = round_tf32(b)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    oc = g * OCG + rnc
    if HAS_BIAS:
        acc += tl.load(b_ptr + oc, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    out = tl.where(acc < 0.0, 0.0, acc)  # ReLU that keeps NaN, like torch.relu
    y_row = wide(n_img, IDX64) * syn + wide(oh, IDX64) * syh + wide(ow, IDX64) * syw
    y_off = y_row[:, None] + (wide(oc, IDX64) * syc)[None, :]
    tl.store(y_ptr + y_off, out.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def _aligned(args) -> bool:
    return args["CG"] % args["BLOCK_K"] == 0


if _configs.interpreting():
    launcher, autotuned = conv2d_relu_kernel, False
else:
    launcher = _configs.autotune("conv2d_relu", key=["M", "K", "CG", "OCG", "KW", "IDX64", "HAS_BIAS", "PRECISION"])(
        triton.heuristics({"ALIGNED": _aligned})(conv2d_relu_kernel))
    autotuned = True


# ---------------------------------------------------------------- host side
_DTYPE_NAMES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16", torch.bfloat16: "bfloat16",
    torch.uint8: "Byte", torch.int8: "Char", torch.int16: "Short", torch.int32: "Int", torch.int64: "Long",
    torch.bool: "Bool", torch.complex32: "ComplexHalf", torch.complex64: "ComplexFloat",
    torch.complex128: "ComplexDouble",
}
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _dtype_name(dtype) -> str:
    """The dtype as the C++ op's messages print it."""
    return _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def _shape(t) -> str:
    return str(list(t.shape))


def check(input, weight, bias, stride, padding, dilation, groups):
    """The op's C++ argument checks (csrc/common/op_checks.cpp: check_conv2d_relu, then the
    dtype check), in the same order, with the same exceptions and messages, on the
    normalised arguments the op's schema takes. Returns (OH, OW)."""
    pre = f"fastalex.{_OP}: "
    if input.dim() != 4:
        raise ValueError(f"{pre}input must be 4-D (N, C, H, W), got {input.dim()}-D of shape {_shape(input)}")
    if weight.dim() != 4:
        raise ValueError(f"{pre}weight must be 4-D (out_channels, in_channels / groups, kH, kW), got "
                         f"{weight.dim()}-D of shape {_shape(weight)}")
    if input.device != weight.device:
        raise ValueError(f"{pre}weight is on {weight.device} but input is on {input.device} (expected the same device)")
    if input.dtype != weight.dtype:
        raise TypeError(f"{pre}weight has dtype {_dtype_name(weight.dtype)} but input has dtype "
                        f"{_dtype_name(input.dtype)} (expected the same dtype)")
    for name, v in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if len(v) != 2:
            raise ValueError(f"{pre}{name} must have 2 elements (h, w), got {len(v)}")
    if not (stride[0] > 0 and stride[1] > 0):
        raise ValueError(f"{pre}stride must be positive, got ({stride[0]}, {stride[1]})")
    if not (dilation[0] > 0 and dilation[1] > 0):
        raise ValueError(f"{pre}dilation must be positive, got ({dilation[0]}, {dilation[1]})")
    if not (padding[0] >= 0 and padding[1] >= 0):
        raise ValueError(f"{pre}padding must be non-negative, got ({padding[0]}, {padding[1]})")
    if not groups > 0:
        raise ValueError(f"{pre}groups must be positive, got {groups}")
    n, c, h, w = input.shape
    oc, cg, kh, kw = weight.shape
    if c % groups != 0:
        raise ValueError(f"{pre}input has {c} channels, which is not divisible by groups={groups}")
    if not (oc > 0 and oc % groups == 0):
        raise ValueError(f"{pre}weight has {oc} output channels, expected a positive multiple of groups={groups}")
    if cg * groups != c:
        raise ValueError(f"{pre}weight of shape {_shape(weight)} expects {cg * groups} input channels "
                         f"(weight.size(1) * groups), but input has {c}")
    if not (kh > 0 and kw > 0):
        raise ValueError(f"{pre}weight must have a non-empty kernel, got shape {_shape(weight)}")
    if not c > 0:
        raise ValueError(f"{pre}input must have at least one channel")
    if bias is not None:
        if not (bias.dim() == 1 and bias.shape[0] == oc):
            raise ValueError(f"{pre}bias must be 1-D of size {oc} (out_channels), got shape {_shape(bias)}")
        if bias.device != input.device:
            raise ValueError(f"{pre}bias is on {bias.device} but input is on {input.device} (expected the same device)")
        if bias.dtype != input.dtype:
            raise TypeError(f"{pre}bias has dtype {_dtype_name(bias.dtype)} but input has dtype "
                            f"{_dtype_name(input.dtype)} (expected the same dtype)")
    padded_h, padded_w = h + 2 * padding[0], w + 2 * padding[1]
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if not (span_h <= padded_h and span_w <= padded_w):
        raise ValueError(f"{pre}kernel size ({kh}, {kw}) with dilation ({dilation[0]}, {dilation[1]}) spans "
                         f"({span_h}, {span_w}), larger than the padded input ({padded_h}, {padded_w})")
    # The op's dtype check (check_float_dtype), with the dtypes the Triton kernel has.
    if input.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{pre}input has dtype {_dtype_name(input.dtype)}, which is not supported by the Triton "
                        f"kernel on {input.device.type} (expected float32, float16 or bfloat16)")
    if not input.is_cuda and not _configs.interpreting():
        raise RuntimeError(f"fastalex.triton.{_OP}: tensors on {input.device} need TRITON_INTERPRET=1 set before triton "
                           "is imported (the CPU interpreter); the compiled kernels take CUDA tensors")
    return (padded_h - span_h) // stride[0] + 1, (padded_w - span_w) // stride[1] + 1


def _reach(sizes, strides) -> int:
    """The largest element offset of a view of `sizes` with non-negative `strides`."""
    return sum((s - 1) * st for s, st in zip(sizes, strides) if s > 0)


def _batch_chunk(n, per_sample, stride_n, limit) -> int:
    """The most samples per launch whose offsets stay <= limit (0 when one sample does not fit)."""
    if per_sample > limit:
        return 0
    if stride_n == 0:
        return n
    return min(n, (limit - per_sample) // stride_n + 1)


def pack_weight(weight, groups):
    """(OC, CG, KH, KW) -> (groups, KH * KW * CG, OC / groups): K ordered (kh, kw, c), contiguous."""
    oc, cg, kh, kw = weight.shape
    return weight.reshape(groups, oc // groups, cg, kh, kw).permute(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg,
                                                                                          oc // groups).contiguous()


def forward(input, weight, bias, stride, padding, dilation, groups):
    """The op on normalised arguments (a 4-D input, [h, w] lists, padding already numeric):
    what fastalex.ops.conv2d_relu's schema takes."""
    oh, ow = check(input, weight, bias, stride, padding, dilation, groups)
    n, c, h, w = input.shape
    # The weight's sizes as ints: under torch.compile with dynamic shapes they would otherwise be
    # symbolic, and so would the constexprs they decide (ALIGNED = CG % BLOCK_K == 0), which
    # inductor cannot print into its generated launcher (torch 2.11: "name 'Eq' is not defined",
    # "BooleanAtom not allowed"). Specializing costs nothing: a model's weights do not change shape.
    oc, cg, kh, kw = (int(s) for s in weight.shape)
    fmt = suggest_memory_format(input)
    y = torch.empty((n, oc, oh, ow), dtype=input.dtype, device=input.device, memory_format=fmt)
    if y.numel() == 0:
        return y
    ocg = oc // groups
    K = kh * kw * cg
    wp = pack_weight(weight, groups)
    b = bias.contiguous() if bias is not None else None
    precision = "tf32" if input.dtype == torch.float32 and _conv_backend.conv_tf32() else "ieee"
    sx, sy = input.stride(), y.stride()
    # Offsets reached in one sample: the input's include the taps' reach into the padding
    # (computed for masked lanes too), the output's are those of its elements.
    x_reach = ((c - 1) * sx[1] + (h - 1 + 2 * padding[0]) * sx[2] + (w - 1 + 2 * padding[1]) * sx[3])
    y_reach = _reach(y.shape[1:], sy[1:])
    limit = INDEX_LIMIT - 256  # tiles reach at most BLOCK_M (<= 256) rows past M
    if oh * ow > limit:
        raise ValueError(f"fastalex.triton.{_OP}: an output of {oh} x {ow} pixels per channel is more than the "
                         f"kernel indexes ({limit} per launch)")
    pixels = limit // (oh * ow)  # samples per launch whose pixel indices fit in int32
    chunk = min(_batch_chunk(n, x_reach, sx[0], limit), _batch_chunk(n, y_reach, sy[0], limit), pixels)
    idx64 = chunk == 0 or wp.numel() > limit
    if idx64:
        chunk = min(n, pixels)
    for g0 in range(0, groups, GRID_YZ_LIMIT):
        g1 = min(groups, g0 + GRID_YZ_LIMIT)
        xg = input[:, g0 * cg:g1 * cg]
        yg = y[:, g0 * ocg:g1 * ocg]
        wg = wp[g0:g1]
        bg = b[g0 * ocg:g1 * ocg] if b is not None else None
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            _launch(xg[n0:n1], wg, bg, yg[n0:n1], g1 - g0, oh, ow, cg, ocg, K, kw, stride, padding, dilation,
                    idx64, precision)
    return y


def _launch(x, wp, b, y, groups, oh, ow, cg, ocg, K, kw, stride, padding, dilation, idx64, precision):
    n, _, h, w = x.shape
    M = n * oh * ow
    grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(ocg, meta["BLOCK_N"]), groups)  # noqa: E731
    kwargs = {}
    if not autotuned:
        bm, bn, bk = INTERPRETER_CONFIG
        kwargs = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, ALIGNED=cg % bk == 0)
    wrap_triton(launcher)[grid](
        x, wp, b if b is not None else wp, y,
        M, oh * ow, ow, h, w, cg, ocg, K, kw,
        *x.stride(), *y.stride(),
        stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
        HAS_BIAS=b is not None, IDX64=idx64, PRECISION=precision, **kwargs)


# ---------------------------------------------------------------- the custom op
SCHEMA = ("(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, int groups) "
          "-> Tensor")  # fastalex::conv2d_relu's (csrc/common/schemas.h)


# The annotations spell the same schema for torches whose triton_op ignores `schema` and infers
# it (2.11: int[] where SCHEMA says int[2]; the public function passes two-element lists).
@triton_op("fastalex::conv2d_relu_triton", mutates_args=(), schema=SCHEMA)
def conv2d_relu_triton(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int],
                       padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    return forward(input, weight, bias, stride, padding, dilation, groups)


# triton_op's own fake kernel would run forward() on fake tensors, which the interpreter cannot
# (it launches at once); the conv's shape rule gives the same shape, dtype and memory format.
conv2d_relu_triton.register_fake(_conv_op.fake)
conv2d_relu_triton.register_autograd(_conv_op.backward, setup_context=_conv_op.setup_context)
if _configs.interpreting():
    # No decomposition into kernel launches under the interpreter (see the module docstring):
    # functionalization passes the op through as one opaque call.
    conv2d_relu_triton.register_torch_dispatch(
        FunctionalTensorMode, lambda mode, op, types, args, kwargs: mode.__torch_dispatch__(op, types, args, kwargs))


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``F.relu(F.conv2d(input, weight, bias, stride, padding, dilation, groups))`` as one Triton
    kernel; the arguments, their normalisation, the checks and messages are those of
    fastalex.ops.conv2d_relu (unbatched (C, H, W) inputs, ``"same"``/``"valid"`` padding
    included). float32, float16 and bfloat16; float32 uses TF32 products while
    ``torch.backends.cudnn.allow_tf32`` is set (under torch.compile, its value when the graph
    is traced). The output keeps the input's memory format. Runs
    ``torch.ops.fastalex.conv2d_relu_triton``, so it has autograd (torch's convolution
    backward) and works under torch.compile."""
    return _conv_op.call(torch.ops.fastalex.conv2d_relu_triton, input, weight, bias, stride, padding, dilation,
                         groups)
