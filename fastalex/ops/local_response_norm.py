"""Cross-channel local response normalisation, with exactly the semantics of
``torch.nn.functional.local_response_norm``:

    y[c] = x[c] / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} x[c']^2) ** beta

(zero padding across the channel edges). Note the paper's AlexNet alpha is not divided by
size: AlexNet's LRN is ``local_response_norm(x, 5, alpha=5 * 1e-4, beta=0.75, k=2.0)``.
"""
from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from fastalex.ops._args import lrn_params, tensor
from fastalex.ops._dispatch import invoke

_OP = "local_response_norm"
_OP_BACKWARD = "local_response_norm_backward"


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Same signature and defaults as ``F.local_response_norm``; input (N, C, ...) with N >= 1 dims
    after C. Output in the input's memory format."""
    return call(torch.ops.fastalex.local_response_norm, input, size, alpha, beta, k)


def call(op, input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalises the Python arguments and runs `op` (this op's schema) on them."""
    tensor(input, "input", _OP)
    return invoke(op, input, *lrn_params(size, alpha, beta, k, _OP))


@torch.library.register_fake("fastalex::local_response_norm")
def _(input, size, alpha, beta, k):
    if input.dim() < 3:
        raise ValueError(f"fastalex.{_OP}: input must be 3-D or more (N, C, ...), got {input.dim()}-D")
    if size <= 0:
        raise ValueError(f"fastalex.{_OP}: size must be positive, got {size}")
    fmt = suggest_memory_format(input) if input.dim() == 4 else torch.contiguous_format
    return torch.empty(input.shape, dtype=input.dtype, device=input.device, memory_format=fmt)


def _window_sum(t, before: int, after: int):
    """out[:, c] = sum of t[:, c - before .. c + after] along dim 1, zeros outside."""
    n, c = t.shape[0], t.shape[1]
    rest = tuple(t.shape[2:])
    padded = torch.cat([t.new_zeros((n, before) + rest), t, t.new_zeros((n, after) + rest)], dim=1)
    out = padded.narrow(1, 0, c)
    for d in range(1, before + after + 1):
        out = out + padded.narrow(1, d, c)
    return out


def backward_call(op, grad_output, input, output, size, alpha=1e-4, beta=0.75, k=1.0):
    """Checks the Python arguments of `op` (local_response_norm_backward's schema) and runs it."""
    for name, t in (("grad_output", grad_output), ("input", input), ("output", output)):
        tensor(t, name, _OP_BACKWARD)
    return op(grad_output, input, output, *lrn_params(size, alpha, beta, k, _OP_BACKWARD))


def local_response_norm_backward(grad_output, input, output, size, alpha=1e-4, beta=0.75, k=1.0):
    """The gradient of ``local_response_norm(input, size, alpha, beta, k)`` (which gave `output`)
    with respect to `input`, for the incoming gradient `grad_output`; in the input's memory format."""
    return backward_call(torch.ops.fastalex.local_response_norm_backward, grad_output, input, output, size, alpha,
                         beta, k)



@torch.library.register_fake("fastalex::local_response_norm_backward")
def _(grad_output, input, output, size, alpha, beta, k):
    if input.dim() < 3:
        raise ValueError(f"fastalex.{_OP_BACKWARD}: input must be 3-D or more (N, C, ...), got {input.dim()}-D")
    if size <= 0:
        raise ValueError(f"fastalex.{_OP_BACKWARD}: size must be positive, got {size}")
    for name, t in (("grad_output", grad_output), ("output", output)):
        if t.shape != input.shape:
            raise ValueError(f"fastalex.{_OP_BACKWARD}: {name} must have the input's shape {tuple(input.shape)}, "
                             f"got {tuple(t.shape)}")
        if t.dtype != input.dtype:
            raise TypeError(f"fastalex.{_OP_BACKWARD}: {name} has dtype {t.dtype} but input has dtype {input.dtype}")
    fmt = suggest_memory_format(input) if input.dim() == 4 else torch.contiguous_format
    return torch.empty(input.shape, dtype=input.dtype, device=input.device, memory_format=fmt)


def _setup_context(ctx, inputs, output):
    input, size, alpha, beta, k = inputs
    ctx.size, ctx.alpha, ctx.beta, ctx.k = size, alpha, beta, k
    ctx.save_for_backward(input, output)


def _backward_composite(grad, x, y, n, a, b, k):
    """The gradient as torch ops (the double backward differentiates it).

    y = x * D^-b with D = k + a/n * W(x^2), W the window sum over [c - n//2, c + (n-1)//2]:
    dx = g * D^-b - 2ab/n * x * W'(g * y / D), W' the transposed window. The kernels compute
    the same formula in the same order."""
    pre, post = n // 2, (n - 1) // 2
    d = k + (a / n) * _window_sum(x * x, pre, post)
    t = grad * y / d
    return grad * d.pow(-b) - (2.0 * a * b / n) * x * _window_sum(t, post, pre)


def _backward(ctx, grad):
    x, y = ctx.saved_tensors
    gx = torch.ops.fastalex.local_response_norm_backward(grad, x, y, ctx.size, ctx.alpha, ctx.beta, ctx.k)
    return gx, None, None, None, None


torch.library.register_autograd("fastalex::local_response_norm", _backward, setup_context=_setup_context)


def _backward_setup_context(ctx, inputs, output):
    grad, input, output_, size, alpha, beta, k = inputs
    ctx.args = (size, alpha, beta, k)
    ctx.save_for_backward(grad, input, output_)


def _backward_backward(ctx, gg):
    # Double backward: the vector-Jacobian product of the same formula as torch ops (y taken as
    # an input of its own: its gradient reaches x through the forward's formula), differentiable
    # again in turn.
    grad, x, y = ctx.saved_tensors
    _, vjp = torch.func.vjp(lambda g_, x_, y_: _backward_composite(g_, x_, y_, *ctx.args), grad, x, y)
    return (*vjp(gg), None, None, None, None)


torch.library.register_autograd("fastalex::local_response_norm_backward", _backward_backward,
                                setup_context=_backward_setup_context)
