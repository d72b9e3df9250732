"""Max-pooling with ``F.max_pool2d``'s arguments, order and semantics (-inf padding, floor or
ceil mode, dilation, NaN propagates)."""
from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from fastalex.ops._args import pair, pool_params, pooled_size, tensor
from fastalex.ops._dispatch import invoke

_OP = "max_pool2d"
_OP_BACKWARD = "max_pool2d_backward"


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)``.

    input: (N, C, H, W) or unbatched (C, H, W); kernel_size, stride (default: kernel_size),
    padding and dilation: an int or a pair. Output in the input's memory format. The kernel
    writes no indices: with ``return_indices=True`` the pooled values come from fastalex's kernel
    and the indices from torch's ``max_pool2d_with_indices`` (a second pass over the input), so
    both are torch's.
    """
    return call(torch.ops.fastalex.max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode,
                return_indices)


def call(op, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Normalises the Python arguments and runs `op` (this op's schema) on them."""
    tensor(input, "input", _OP)
    kernel_size, stride, padding, ceil_mode = pool_params(kernel_size, stride, padding, ceil_mode, _OP)
    dilation = pair(dilation, "dilation", _OP)
    if not isinstance(return_indices, bool):
        raise TypeError(f"fastalex.{_OP}: return_indices must be a bool, got {return_indices!r}")
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    out = invoke(op, input, kernel_size, stride, padding, dilation, ceil_mode)
    if return_indices:
        _, indices = torch.ops.aten.max_pool2d_with_indices(input.detach(), kernel_size, stride, padding, dilation,
                                                            ceil_mode)
        if unbatched:
            out, indices = out.squeeze(0), indices.squeeze(0)
        return out, indices
    return out.squeeze(0) if unbatched else out


@torch.library.register_fake("fastalex::max_pool2d")
def _(input, kernel_size, stride, padding, dilation, ceil_mode):
    if input.dim() != 4:
        raise ValueError(f"fastalex.{_OP}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
    n, c, h, w = input.shape
    oh = pooled_size(h, kernel_size[0], padding[0], stride[0], ceil_mode, dilation[0])
    ow = pooled_size(w, kernel_size[1], padding[1], stride[1], ceil_mode, dilation[1])
    fmt = suggest_memory_format(input)
    return torch.empty((n, c, oh, ow), dtype=input.dtype, device=input.device, memory_format=fmt)


def backward_call(op, grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Normalises the Python arguments and runs `op` (max_pool2d_backward's schema) on them."""
    tensor(grad_output, "grad_output", _OP_BACKWARD)
    tensor(input, "input", _OP_BACKWARD)
    kernel_size, stride, padding, ceil_mode = pool_params(kernel_size, stride, padding, ceil_mode, _OP_BACKWARD)
    return op(grad_output, input, kernel_size, stride, padding, pair(dilation, "dilation", _OP_BACKWARD), ceil_mode)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """The gradient of ``max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)`` with
    respect to 4-D `input`, for the incoming gradient `grad_output`: each window's gradient goes to
    its argmax, chosen as torch's ``max_pool2d_with_indices`` chooses it (the first of equal
    maxima; NaN wins, the last NaN in the window), found again from the input. Output in the
    input's memory format."""
    return backward_call(torch.ops.fastalex.max_pool2d_backward, grad_output, input, kernel_size, stride, padding,
                         dilation, ceil_mode)


@torch.library.register_fake("fastalex::max_pool2d_backward")
def _(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode):
    if input.dim() != 4:
        raise ValueError(f"fastalex.{_OP_BACKWARD}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
    n, c, h, w = input.shape
    pooled = (n, c, pooled_size(h, kernel_size[0], padding[0], stride[0], ceil_mode, dilation[0]),
              pooled_size(w, kernel_size[1], padding[1], stride[1], ceil_mode, dilation[1]))
    if tuple(grad_output.shape) != pooled:
        raise ValueError(f"fastalex.{_OP_BACKWARD}: grad_output must have the pooled shape {list(pooled)}, got "
                         f"{list(grad_output.shape)}")
    if grad_output.dtype != input.dtype:
        raise TypeError(f"fastalex.{_OP_BACKWARD}: grad_output has dtype {grad_output.dtype} but input has dtype "
                        f"{input.dtype}")
    return torch.empty(input.shape, dtype=input.dtype, device=input.device,
                       memory_format=suggest_memory_format(input))


def _setup_context(ctx, inputs, output):
    input, kernel_size, stride, padding, dilation, ceil_mode = inputs
    ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
    ctx.save_for_backward(input)


def _backward(ctx, grad):
    # Gradients go to the argmax of each window, found again from the saved input.
    (input,) = ctx.saved_tensors
    return torch.ops.fastalex.max_pool2d_backward(grad, input, *ctx.args), None, None, None, None, None


torch.library.register_autograd("fastalex::max_pool2d", _backward, setup_context=_setup_context)


def _backward_setup_context(ctx, inputs, output):
    grad_output, input, kernel_size, stride, padding, dilation, ceil_mode = inputs
    ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
    ctx.save_for_backward(input)


def _backward_backward(ctx, gg):
    # The backward is linear in grad_output (each output takes gg at its window's argmax) and
    # piecewise constant in input (no gradient).
    (input,) = ctx.saved_tensors
    _, indices = torch.ops.aten.max_pool2d_with_indices(input, *ctx.args)
    n, c = indices.shape[:2]
    picked = gg.reshape(n, c, -1).gather(2, indices.reshape(n, c, -1)).view(indices.shape)
    return picked, None, None, None, None, None, None


torch.library.register_autograd("fastalex::max_pool2d_backward", _backward_backward,
                                setup_context=_backward_setup_context)
