"""torchvision's Inception block in eval mode as one op, ``torch.ops.fastalex.inception_bn``:
the Inception op's six convolutions (no bias), each followed by its eval-mode BatchNorm and a
ReLU. ``weights``, ``running_means``, ``running_vars``, ``bn_weights`` and ``bn_biases`` each
hold six tensors in the module's order: branch1 (1x1), branch2's 1x1 reduce and 3x3, branch3's
1x1 reduce and k x k (3x3 in torchvision), branch4's 1x1 projection after a 3x3/1 max-pool.

On the CPU (float32 NCHW on AVX-512) it runs the Inception kernel with each BatchNorm as a
per-channel scale and shift where its convolution stores (no folded weights, recomputed on
every call); elsewhere it composes ``conv2d_bn_relu`` (torch's own composition off the CPU
kernel), ``max_pool2d`` and one cat. The gradient differentiates the composition in torch ops
(the kernel is forward-only)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch._prims_common import suggest_memory_format

from fastalex.ops._args import real, tensor
from fastalex.ops._dispatch import invoke
from fastalex.ops.conv2d_bn_relu import composed as conv_bn_relu

_OP = "inception_bn"
LISTS = ("weights", "running_means", "running_vars", "bn_weights", "bn_biases")


def _tensor_list(value, name):
    if not isinstance(value, (list, tuple)) or len(value) != 6:
        raise TypeError(f"fastalex.{_OP}: {name} must be a list of 6 torch.Tensors (the module's convolutions in "
                        f"order), got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else ""))
    for i, t in enumerate(value):
        tensor(t, f"{name}[{i}]", _OP)
    return list(value)


def inception_bn(input, weights, running_means, running_vars, bn_weights, bn_biases, eps=1e-5):
    """The block's eval-mode forward. input: (N, C, H, W); weights: (c1, C, 1, 1),
    (c3r, C, 1, 1), (c3, c3r, k, k), (c5r, C, 1, 1), (c5, c5r, k, k), (cp, C, 1, 1) with k odd
    (padding k // 2); each BatchNorm tensor (out_channels,) of its convolution. Returns
    (N, c1 + c3 + c5 + cp, H, W) in the input's memory format."""
    tensor(input, "input", _OP)
    lists = [_tensor_list(v, n) for n, v in zip(LISTS, (weights, running_means, running_vars, bn_weights, bn_biases))]
    return invoke(torch.ops.fastalex.inception_bn, input, *lists, real(eps, "eps", _OP))


def composed(input, weights, running_means, running_vars, bn_weights, bn_biases, eps):
    """The same computation in differentiable torch ops."""
    def cbr(x, i):
        k = weights[i].shape[-1]
        return conv_bn_relu(x, weights[i], None, [1, 1], [k // 2, k // 2], [1, 1], 1, running_means[i], running_vars[i],
                            bn_weights[i], bn_biases[i], eps)

    return torch.cat([cbr(input, 0), cbr(cbr(input, 1), 2), cbr(cbr(input, 3), 4),
                      cbr(F.max_pool2d(input, 3, 1, 1), 5)], 1)


@torch.library.register_fake("fastalex::inception_bn")
def fake(input, weights, running_means, running_vars, bn_weights, bn_biases, eps):
    if input.dim() != 4:
        raise ValueError(f"fastalex.{_OP}: input must be 4-D (N, C, H, W), got {input.dim()}-D")
    for name, lst in zip(LISTS, (weights, running_means, running_vars, bn_weights, bn_biases)):
        torch._check(len(lst) == 6, lambda name=name: f"fastalex.{_OP}: {name} must hold 6 tensors")
    for i in (0, 1, 3, 5):
        torch._check(weights[i].dim() == 4 and weights[i].shape[1] == input.shape[1],
                     lambda i=i: f"fastalex.{_OP}: weights[{i}] must be (out_channels, C, 1, 1)")
    n, _, h, w = input.shape
    ctot = weights[0].shape[0] + weights[2].shape[0] + weights[4].shape[0] + weights[5].shape[0]
    return torch.empty((n, ctot, h, w), dtype=input.dtype, device=input.device,
                       memory_format=suggest_memory_format(input))


def _setup_context(ctx, inputs, output):
    input, *lists, eps = inputs
    ctx.eps = eps
    ctx.save_for_backward(input, *[t for lst in lists for t in lst])


def _backward(ctx, grad):
    # The kernel is forward-only: differentiate the composition.
    saved = ctx.saved_tensors
    # (a list argument's entry is a list, one flag per tensor; a single flag is taken for all six)
    flags = [ctx.needs_input_grad[1 + j] for j in range(5)]
    needs = [ctx.needs_input_grad[0]] + [n for f in flags for n in (f if isinstance(f, (list, tuple)) else [f] * 6)]
    leaves = [t.detach().requires_grad_(bool(n)) for t, n in zip(saved, needs)]
    wanted = [t for t in leaves if t.requires_grad]
    with torch.enable_grad():
        lists = [leaves[1 + 6 * j:7 + 6 * j] for j in range(5)]
        out = composed(leaves[0], *lists, ctx.eps)
        grads = iter(torch.autograd.grad(out, wanted, grad))
    g = [next(grads) if t.requires_grad else None for t in leaves]
    return (g[0], *[g[1 + 6 * j:7 + 6 * j] for j in range(5)], None)


torch.library.register_autograd("fastalex::inception_bn", _backward, setup_context=_setup_context)
