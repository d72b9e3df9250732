"""Fused conv2d + bias + ReLU: ``relu(conv2d(input, weight, bias, stride, padding, 1, groups))``."""
from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from fastalex.ops._args import pair, tensor

_OP = "conv2d_relu"


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, groups=1):
    """``F.relu(F.conv2d(input, weight, bias, stride, padding, 1, groups))`` in one kernel.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (OC, C / groups, kH, kW); bias: (OC,)
    or None. stride and padding: an int or a pair. The output keeps the input's memory format
    (NCHW or channels_last).
    """
    return call(torch.ops.fastalex.conv2d_relu, input, weight, bias, stride, padding, groups)


def call(op, input, weight, bias=None, stride=1, padding=0, groups=1):
    """Normalises the Python arguments and runs `op` (this op's schema) on them."""
    tensor(input, "input", _OP)
    tensor(weight, "weight", _OP)
    if bias is not None:
        tensor(bias, "bias", _OP)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"fastalex.{_OP}: groups must be an int, got {groups!r}")
    stride, padding = pair(stride, "stride", _OP), pair(padding, "padding", _OP)
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    out = op(input, weight, bias, stride, padding, groups)
    return out.squeeze(0) if unbatched else out


@torch.library.register_fake("fastalex::conv2d_relu")
def _(input, weight, bias, stride, padding, groups):
    if input.dim() != 4:
        raise ValueError(f"fastalex.{_OP}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
    if weight.dim() != 4:
        raise ValueError(f"fastalex.{_OP}: weight must be 4-D, got {weight.dim()}-D")
    n, c, h, w = input.shape
    oc, cg, kh, kw = weight.shape
    torch._check(cg * groups == c, lambda: f"fastalex.{_OP}: weight expects {cg * groups} input channels, but input has {c}")
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (w + 2 * padding[1] - kw) // stride[1] + 1
    fmt = suggest_memory_format(input)
    return torch.empty((n, oc, oh, ow), dtype=input.dtype, device=input.device, memory_format=fmt)


def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, groups = inputs
    ctx.has_bias = bias is not None
    ctx.stride, ctx.padding, ctx.groups = stride, padding, groups
    ctx.save_for_backward(input, weight, output)


def _backward(ctx, grad):
    # Backward runs torch's convolution_backward on the ReLU-masked gradient (the fused
    # kernel is forward-only); torch.where keeps a NaN/inf gradient out of the masked lanes.
    input, weight, output = ctx.saved_tensors
    grad = torch.where(output > 0, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    gi, gw, gb = torch.ops.aten.convolution_backward(
        grad, input, weight, [weight.shape[0]] if ctx.has_bias else None,
        ctx.stride, ctx.padding, [1, 1], False, [0, 0], ctx.groups, mask,
    )
    return gi, gw, gb if ctx.has_bias else None, None, None, None


torch.library.register_autograd("fastalex::conv2d_relu", _backward, setup_context=_setup_context)
