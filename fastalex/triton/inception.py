"""The Inception module's forward as one custom op, ``torch.ops.fastalex.inception_triton``,
built from three Triton kernels (``torch.library.triton_op``, so torch.compile sees the
kernels). It allocates the module output once; the 1x1 branch, the 3x3 and 5x5 branches and
the pool-projection branch each write their channel slice of it. The only intermediates are
the two reduce outputs. No torch.cat.

Weights arrive packed (see ``pack_weights``): the three 1x1 convolutions that read the block
input as one (C, c1 + c3r + c5r) matrix, the k x k ones as (k, k, Cin, Cout), the projection
as (C, pool_proj), so every weight tile load is contiguous along output channels.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
from torch.library import triton_op, wrap_triton

from fastalex._tf32 import conv_tf32_enabled
from fastalex.triton import _configs, conv_kxk, inception_1x1, pool_proj


def pack_weights(b1w, b1b, r3w, r3b, c3w, c3b, r5w, r5b, c5w, c5b, pw, pb):
    """Conv weights (out, in, k, k) and biases of the six convolutions -> the op's layout."""
    w1 = torch.cat([b1w, r3w, r5w], 0).flatten(1).t().contiguous()
    b1 = torch.cat([b1b, r3b, r5b], 0).contiguous()
    return (w1, b1, c3w.permute(2, 3, 1, 0).contiguous(), c3b.contiguous(),
            c5w.permute(2, 3, 1, 0).contiguous(), c5b.contiguous(),
            pw.flatten(1).t().contiguous(), pb.contiguous())


# The most elements a kernel may index in one launch: offsets are 32-bit.
INDEX_LIMIT = 2**31 - 1


def _grid(M, n):
    return lambda meta: (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))


def _launch(x, y, r3, r5, w1, b1, c1, c3r, c5r, w3, b3, w5, b5, wp, bp, precision):
    n, c, h, w = x.shape
    M = n * h * w
    c3, c5, cp = w3.shape[3], w5.shape[3], wp.shape[1]
    k = _configs.block_kwargs(inception_1x1.autotuned)
    wrap_triton(inception_1x1.launcher)[_grid(M, c1 + c3r + c5r)](
        x, w1, b1, y, r3, r5, M, h * w, w, c, c1, c3r, c5r,
        *x.stride(), *y.stride(), *r3.stride(), *r5.stride(), PRECISION=precision, **k)
    k = _configs.block_kwargs(conv_kxk.autotuned)
    for src, wt, bt, c0, cout in ((r3, w3, b3, c1, c3), (r5, w5, b5, c1 + c3, c5)):
        ks = wt.shape[0]  # (k, k, Cin, Cout): 3, or 5 (3 in torchvision's GoogLeNet)
        wrap_triton(conv_kxk.launcher)[_grid(M, cout)](
            src, wt, bt, y, M, h * w, h, w, src.shape[1], cout, c0,
            *src.stride(), *y.stride(), KS=ks, PRECISION=precision, **k)
    k = _configs.block_kwargs(pool_proj.autotuned)
    wrap_triton(pool_proj.launcher)[_grid(M, cp)](
        x, wp, bp, y, M, h * w, h, w, c, cp, c1 + c3 + c5,
        *x.stride(), *y.stride(), PRECISION=precision, **k)


@triton_op("fastalex::inception_triton", mutates_args=())
def inception_triton(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, c1: int, c3r: int, c5r: int,
    w3: torch.Tensor, b3: torch.Tensor, w5: torch.Tensor, b5: torch.Tensor,
    wp: torch.Tensor, bp: torch.Tensor, allow_tf32: Optional[bool],
) -> torch.Tensor:
    # allow_tf32: None follows torch.backends.cudnn.allow_tf32 (read here, when the op runs or
    # is traced); True / False override it. Only float32 has a TF32 mode.
    n, c, h, w = x.shape
    c3, c5, cp = w3.shape[3], w5.shape[3], wp.shape[1]
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if not (x.is_contiguous() or channels_last):
        x = x.contiguous()  # the kernels index dense tensors with 32-bit offsets (below)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ctot = c1 + c3 + c5 + cp
    y = torch.empty((n, ctot, h, w), dtype=x.dtype, device=x.device, memory_format=fmt)
    r3 = torch.empty((n, c3r, h, w), dtype=x.dtype, device=x.device, memory_format=fmt)
    r5 = torch.empty((n, c5r, h, w), dtype=x.dtype, device=x.device, memory_format=fmt)
    if n * h * w == 0:
        return y
    # 32-bit offsets take fewer registers (the 64-bit variants spill): run the batch in
    # chunks whose every tensor stays below 2^31 elements.
    per_sample = max(c, ctot, c3r, c5r) * h * w
    if per_sample > INDEX_LIMIT:
        raise ValueError(f"fastalex.models.Inception: one sample of {tuple(x.shape[1:])} has {per_sample} elements in "
                         f"some tensor; the Triton kernels index at most {INDEX_LIMIT} per launch")
    chunk = max(1, INDEX_LIMIT // per_sample)
    if allow_tf32 is None:
        allow_tf32 = conv_tf32_enabled()
    precision = "tf32" if allow_tf32 and x.dtype == torch.float32 else "ieee"
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        _launch(x[n0:n1], y[n0:n1], r3[n0:n1], r5[n0:n1], w1, b1, c1, c3r, c5r, w3, b3, w5, b5, wp, bp, precision)
    return y


def reference_from_packed(x, w1, b1, c1, c3r, c5r, w3, b3, w5, b5, wp, bp):
    """The same computation in plain torch ops, from the packed weights (backward uses it)."""
    import torch.nn.functional as F

    t = F.relu(F.conv2d(x, w1.t()[:, :, None, None], b1))
    a, r3, r5 = t.split([c1, c3r, c5r], 1)
    y3 = F.relu(F.conv2d(r3, w3.permute(3, 2, 0, 1), b3, padding=w3.shape[0] // 2))
    y5 = F.relu(F.conv2d(r5, w5.permute(3, 2, 0, 1), b5, padding=w5.shape[0] // 2))
    yp = F.relu(F.conv2d(F.max_pool2d(x, 3, 1, 1), wp.t()[:, :, None, None], bp))
    return torch.cat([a, y3, y5, yp], 1)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*[t for t in inputs if isinstance(t, torch.Tensor)])
    ctx.ints = inputs[3:6]


def _backward(ctx, grad):
    # The Triton kernels are forward-only: differentiate the same computation in torch ops.
    x, w1, b1, w3, b3, w5, b5, wp, bp = ctx.saved_tensors
    c1, c3r, c5r = ctx.ints
    leaves = [t.detach().requires_grad_(True) for t in (x, w1, b1, w3, b3, w5, b5, wp, bp)]
    with torch.enable_grad():
        out = reference_from_packed(leaves[0], leaves[1], leaves[2], c1, c3r, c5r, *leaves[3:])
        grads = torch.autograd.grad(out, leaves, grad)
    gx, gw1, gb1, gw3, gb3, gw5, gb5, gwp, gbp = grads
    return gx, gw1, gb1, None, None, None, gw3, gb3, gw5, gb5, gwp, gbp, None


inception_triton.register_autograd(_backward, setup_context=_setup_context)
