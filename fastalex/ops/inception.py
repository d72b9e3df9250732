"""GoogLeNet's Inception module (no BatchNorm) as one op, ``torch.ops.fastalex.inception``:
``cat([relu(conv1x1(x)), relu(convk(relu(conv1x1(x)))), relu(convk(relu(conv1x1(x)))),
relu(conv1x1(max_pool2d(x, 3, 1, 1)))], 1)`` with every weight and bias in the module's order.

On the CPU, float32 NCHW on AVX-512 CPUs runs a kernel whose branches write their slices of
the output (no cat, no stacked-weight copy); everything else composes fastalex's conv2d_relu
and max_pool2d. Its backward differentiates that composition (recomputing the forward), so
``fastalex.models.Inception`` calls the composition itself when gradients are needed and this
op when they are not."""
from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from fastalex.ops._args import tensor
from fastalex.ops._dispatch import invoke
from fastalex.ops.conv2d_relu import conv2d_relu
from fastalex.ops.max_pool2d import max_pool2d

_OP = "inception"
NAMES = ("input", "w1", "b1", "w3_reduce", "b3_reduce", "w3", "b3", "w5_reduce", "b5_reduce", "w5", "b5", "w_pool",
         "b_pool")


def inception(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5, w_pool, b_pool):
    """The Inception module's forward. input: (N, C, H, W); w1, w3_reduce, w5_reduce, w_pool:
    (out, C, 1, 1); w3: (c3, c3_reduce, k, k), w5: (c5, c5_reduce, k, k) with k odd (padding
    k // 2); biases (out,). Returns (N, c1 + c3 + c5 + pool_proj, H, W) in the input's memory
    format."""
    args = (input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5, w_pool, b_pool)
    for name, t in zip(NAMES, args):
        tensor(t, name, _OP)
    return invoke(torch.ops.fastalex.inception, *args)


def composed(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5, w_pool, b_pool):
    """The same computation from fastalex's differentiable ops and one cat."""
    return torch.cat([
        conv2d_relu(input, w1, b1),
        conv2d_relu(conv2d_relu(input, w3_reduce, b3_reduce), w3, b3, 1, w3.shape[-1] // 2),
        conv2d_relu(conv2d_relu(input, w5_reduce, b5_reduce), w5, b5, 1, w5.shape[-1] // 2),
        conv2d_relu(max_pool2d(input, 3, 1, 1), w_pool, b_pool),
    ], 1)


@torch.library.register_fake("fastalex::inception")
def fake(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5, w_pool, b_pool):
    if input.dim() != 4:
        raise ValueError(f"fastalex.{_OP}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
    for name, w in (("w1", w1), ("w3_reduce", w3_reduce), ("w5_reduce", w5_reduce), ("w_pool", w_pool)):
        torch._check(w.dim() == 4 and w.shape[1] == input.shape[1],
                     lambda name=name: f"fastalex.{_OP}: {name} must be (out_channels, C, 1, 1)")
    n, _, h, w = input.shape
    ctot = w1.shape[0] + w3.shape[0] + w5.shape[0] + w_pool.shape[0]
    return torch.empty((n, ctot, h, w), dtype=input.dtype, device=input.device,
                       memory_format=suggest_memory_format(input))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    # The kernel is forward-only: differentiate the composition of the differentiable ops.
    leaves = [t.detach().requires_grad_(need) for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad)]
    wanted = [t for t in leaves if t.requires_grad]
    with torch.enable_grad():
        out = composed(*leaves)
        grads = iter(torch.autograd.grad(out, wanted, grad))
    return tuple(next(grads) if t.requires_grad else None for t in leaves)


torch.library.register_autograd("fastalex::inception", _backward, setup_context=_setup_context)
