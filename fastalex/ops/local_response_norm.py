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

_OP = "local_response_norm"


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Same signature and defaults as ``F.local_response_norm``; input (N, C, ...) with N >= 1 dims
    after C. Output in the input's memory format."""
    return call(torch.ops.fastalex.local_response_norm, input, size, alpha, beta, k)


def call(op, input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalises the Python arguments and runs `op` (this op's schema) on them."""
    tensor(input, "input", _OP)
    return op(input, *lrn_params(size, alpha, beta, k, _OP))


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


def _setup_context(ctx, inputs, output):
    input, size, alpha, beta, k = inputs
    ctx.size, ctx.alpha, ctx.beta, ctx.k = size, alpha, beta, k
    ctx.save_for_backward(input, output)


def _backward(ctx, grad):
    # y = x * D^-b with D = k + a/n * W(x^2), W the window sum over [c - n//2, c + (n-1)//2]:
    # dx = g * D^-b - 2ab/n * x * W'(g * y / D), W' the transposed window.
    x, y = ctx.saved_tensors
    n, a, b = ctx.size, ctx.alpha, ctx.beta
    pre, post = n // 2, (n - 1) // 2
    d = ctx.k + (a / n) * _window_sum(x * x, pre, post)
    t = grad * y / d
    gx = grad * d.pow(-b) - (2.0 * a * b / n) * x * _window_sum(t, post, pre)
    return gx, None, None, None, None


torch.library.register_autograd("fastalex::local_response_norm", _backward, setup_context=_setup_context)
