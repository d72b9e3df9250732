"""Fused conv2d + bias + ReLU: ``relu(conv2d(input, weight, bias, stride, padding, dilation, groups))``,
with ``F.conv2d``'s arguments in ``F.conv2d``'s order."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch._prims_common import suggest_memory_format

from fastalex.ops import conv_backend
from fastalex.ops._args import integer, pair, tensor
from fastalex.ops._dispatch import invoke

_OP = "conv2d_relu"


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``F.relu(F.conv2d(input, weight, bias, stride, padding, dilation, groups))`` in one kernel.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (OC, C / groups, kH, kW); bias: (OC,)
    or None. stride, dilation: an int or a pair; padding: an int, a pair, ``"valid"`` or
    ``"same"`` (stride 1 only, zeros added to the right and bottom when the total padding is
    odd, as ``F.conv2d`` does). The output keeps the input's memory format (NCHW or
    channels_last).

    CPU tensors run the CPU kernel. CUDA tensors run the CUDA tensor-core kernel or the Triton
    kernel, whichever ``fastalex.ops.conv_backend`` picks for the layer
    (``FASTALEX_CONV_BACKEND=cuda|triton|auto``; timed once per layer while
    ``torch.backends.cudnn.benchmark`` is set, a documented heuristic otherwise).
    """
    return call(_run, input, weight, bias, stride, padding, dilation, groups)


@torch.compiler.allow_in_graph
def _run(input, weight, bias, stride, padding, dilation, groups):
    """The op on normalised arguments: on CUDA tensors, the implementation the selector picks.
    torch.compile does not trace this function's bytecode (allow_in_graph): AOTAutograd runs it
    on fake tensors, so the selector sees the tensors (symbolic sizes included) and the graph
    gets the chosen op."""
    if conv_backend.selects_for(input) and conv_backend.choose(input, weight, bias, stride, padding, dilation,
                                                               groups) == "triton":
        return torch.ops.fastalex.conv2d_relu_triton(input, weight, bias, stride, padding, dilation, groups)
    return torch.ops.fastalex.conv2d_relu(input, weight, bias, stride, padding, dilation, groups)


def _same_padding(input, weight, stride, dilation, name=_OP):
    """F.conv2d's padding="same": total = dilation * (k - 1) per dim, split evenly with the odd
    element on the right/bottom. Returns (input, padding) with any asymmetric part applied."""
    if stride != [1, 1]:
        raise ValueError(f"fastalex.{name}: padding='same' is not supported for strided convolutions "
                         f"(stride={tuple(stride)}), as in F.conv2d")
    if weight.dim() != 4:
        raise ValueError(f"fastalex.{name}: weight must be 4-D, got {weight.dim()}-D")
    totals = [dilation[i] * (weight.shape[2 + i] - 1) for i in range(2)]
    padding = [t // 2 for t in totals]
    extra = [t - 2 * p for t, p in zip(totals, padding)]  # 0 or 1 per dim
    if any(extra):
        fmt = suggest_memory_format(input) if input.dim() == 4 else torch.contiguous_format
        input = F.pad(input, (0, extra[1], 0, extra[0])).contiguous(memory_format=fmt)
    return input, padding


def call(op, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, name=_OP):
    """Normalises the Python arguments and runs `op` (this op's schema) on them; `name`: the op
    the messages name (conv2d_bn_relu normalises its convolution's arguments here too)."""
    tensor(input, "input", name)
    tensor(weight, "weight", name)
    if bias is not None:
        tensor(bias, "bias", name)
    groups = integer(groups, "groups", name)
    stride, dilation = pair(stride, "stride", name), pair(dilation, "dilation", name)
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = [0, 0]
        elif padding == "same":
            input, padding = _same_padding(input, weight, stride, dilation, name)
        else:
            raise ValueError(f"fastalex.{name}: padding must be 'valid', 'same', an int or a pair of ints, "
                             f"got {padding!r}")
    else:
        padding = pair(padding, "padding", name)
    out = invoke(op, input, weight, bias, stride, padding, dilation, groups)
    return out.squeeze(0) if unbatched else out


@torch.library.register_fake("fastalex::conv2d_relu")
def fake(input, weight, bias, stride, padding, dilation, groups):
    """The output's shape, dtype and memory format (also fastalex::conv2d_relu_triton's fake)."""
    return empty_output(input, weight, stride, padding, dilation, groups)


def empty_output(input, weight, stride, padding, dilation, groups, name=_OP):
    """An empty tensor of the convolution's output: shape, dtype and memory format (the fake
    kernels' result; `name` names the op in the messages)."""
    if input.dim() != 4:
        raise ValueError(f"fastalex.{name}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
    if weight.dim() != 4:
        raise ValueError(f"fastalex.{name}: weight must be 4-D, got {weight.dim()}-D")
    n, c, h, w = input.shape
    oc, cg, kh, kw = weight.shape
    torch._check(cg * groups == c, lambda: f"fastalex.{name}: weight expects {cg * groups} input channels, but input has {c}")
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    fmt = suggest_memory_format(input)
    return torch.empty((n, oc, oh, ow), dtype=input.dtype, device=input.device, memory_format=fmt)


def setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups = inputs
    ctx.has_bias = bias is not None
    ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
    ctx.save_for_backward(input, weight, output)


def backward(ctx, grad):
    """Also fastalex::conv2d_relu_triton's backward."""
    # Backward runs torch's convolution_backward on the ReLU-masked gradient (the fused
    # kernel is forward-only); torch.where keeps a NaN/inf gradient out of the masked lanes.
    input, weight, output = ctx.saved_tensors
    grad = torch.where(output > 0, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    gi, gw, gb = torch.ops.aten.convolution_backward(
        grad, input, weight, [weight.shape[0]] if ctx.has_bias else None,
        ctx.stride, ctx.padding, ctx.dilation, False, [0, 0], ctx.groups, mask,
    )
    return gi, gw, gb if ctx.has_bias else None, None, None, None, None


torch.library.register_autograd("fastalex::conv2d_relu", backward, setup_context=setup_context)
