"""LRN and overlapping max-pooling as one op, in both orders the networks use:

    lrn_max_pool2d(x, ...) == F.max_pool2d(F.local_response_norm(x, size, alpha, beta, k), kernel_size, stride, padding, ceil_mode=ceil_mode)
    max_pool2d_lrn(x, ...) == F.local_response_norm(F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode), size, alpha, beta, k)

Each is one pass over memory: the input read once, only the pooled result written (CPU:
csrc/cpu/lrn_pool_cpu.cpp, row groups of one sample per task so batch 1 uses every thread;
CUDA: csrc/cuda/lrn_max_pool2d_cuda.cu, max_pool2d_lrn_cuda.cu, one launch each). NaN and
infinities as torch's unfused pair gives them. The gradient runs the two backward ops
(local_response_norm_backward, max_pool2d_backward) in turn.
"""
from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from fastalex.ops._args import lrn_params, pool_params, pooled_size, tensor
from fastalex.ops._dispatch import invoke


def lrn_max_pool2d(input, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
    """``max_pool2d(local_response_norm(input, size, alpha, beta, k), kernel_size, stride, padding,
    ceil_mode=ceil_mode)`` (AlexNet: ReLU -> LRN -> pool). input (N, C, H, W)."""
    return call(torch.ops.fastalex.lrn_max_pool2d, "lrn_max_pool2d", input, size, alpha, beta, k, kernel_size, stride,
                padding, ceil_mode)


def max_pool2d_lrn(input, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
    """``local_response_norm(max_pool2d(input, kernel_size, stride, padding, ceil_mode=ceil_mode),
    size, alpha, beta, k)`` (GoogLeNet's stem: pool -> LRN). input (N, C, H, W)."""
    return call(torch.ops.fastalex.max_pool2d_lrn, "max_pool2d_lrn", input, size, alpha, beta, k, kernel_size, stride,
                padding, ceil_mode)


def call(op, name, input, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
    """Normalises the Python arguments and runs `op` (the op's schema) on them."""
    tensor(input, "input", name)
    return invoke(op, input, *lrn_params(size, alpha, beta, k, name),
                  *pool_params(kernel_size, stride, padding, ceil_mode, name))


def _fake(name):
    def fake(input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode):
        if input.dim() != 4:
            raise ValueError(f"fastalex.{name}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
        n, c, h, w = input.shape
        oh = pooled_size(h, kernel_size[0], padding[0], stride[0], ceil_mode)
        ow = pooled_size(w, kernel_size[1], padding[1], stride[1], ceil_mode)
        return torch.empty((n, c, oh, ow), dtype=input.dtype, device=input.device,
                           memory_format=suggest_memory_format(input))
    return fake


def _setup_context(ctx, inputs, output):
    ctx.args = inputs[1:]
    ctx.save_for_backward(inputs[0])


def _backward_for(lrn_first):
    # The two unfused gradients in turn, the intermediate map recomputed by fastalex's forward op
    # (each backward op takes its forward's input; the LRN's also its output). Every op here has
    # an autograd formula, so the result is differentiable again (double backward).
    ops = torch.ops.fastalex

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        size, alpha, beta, k, kernel_size, stride, padding, ceil_mode = ctx.args
        pool = (kernel_size, stride, padding, [1, 1], ceil_mode)
        if lrn_first:  # y = pool(lrn(x))
            z = ops.local_response_norm(x, size, alpha, beta, k)
            gz = ops.max_pool2d_backward(grad, z, *pool)
            gx = ops.local_response_norm_backward(gz, x, z, size, alpha, beta, k)
        else:  # y = lrn(pool(x))
            z = ops.max_pool2d(x, *pool)
            y = ops.local_response_norm(z, size, alpha, beta, k)
            gz = ops.local_response_norm_backward(grad, z, y, size, alpha, beta, k)
            gx = ops.max_pool2d_backward(gz, x, *pool)
        return (gx,) + (None,) * 8
    return backward


for _name, _lrn_first in (("lrn_max_pool2d", True), ("max_pool2d_lrn", False)):
    torch.library.register_fake(f"fastalex::{_name}")(_fake(_name))
    torch.library.register_autograd(f"fastalex::{_name}", _backward_for(_lrn_first), setup_context=_setup_context)
