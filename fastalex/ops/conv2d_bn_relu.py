"""torchvision's conv + BatchNorm + ReLU in eval mode as one op:
``relu(batch_norm(conv2d(input, weight, bias, stride, padding, dilation, groups), running_mean,
running_var, bn_weight, bn_bias, training=False, eps=eps))``, ``F.conv2d``'s arguments then
``F.batch_norm``'s, each in torch's order.

On the CPU (float32 NCHW on AVX-512, no conv bias: torchvision's BasicConv2d) the BatchNorm's
per-channel scale and shift are applied where the convolution stores its output, as torch's
fused x * alpha + beta, so no folded copy of the weights is written, cached or ever stale: both
are recomputed from the tensors on every call. Everything else runs torch's own composition
(``at::convolution``, ``at::batch_norm``, ``at::relu``). The gradient differentiates the
composition in torch ops (the kernel is forward-only), running_mean and running_var included
(torch treats them as constants: they get gradients here only if they require them)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fastalex.ops._args import real, tensor
from fastalex.ops.conv2d_relu import call, empty_output

_OP = "conv2d_bn_relu"
_BN = ("running_mean", "running_var", "bn_weight", "bn_bias")


def conv2d_bn_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, running_mean=None,
                   running_var=None, bn_weight=None, bn_bias=None, eps=1e-5):
    """``F.relu(F.batch_norm(F.conv2d(input, weight, bias, stride, padding, dilation, groups),
    running_mean, running_var, bn_weight, bn_bias, False, 0.0, eps))`` in one kernel.

    The convolution's arguments as ``fastalex.ops.conv2d_relu`` takes them (input 4-D only); running_mean and
    running_var (required) and bn_weight, bn_bias (None: 1 and 0) of shape (out_channels,), in
    the input's dtype and on its device. The output keeps the input's memory format."""
    for name, t in zip(_BN, (running_mean, running_var, bn_weight, bn_bias)):
        if t is not None or name in ("running_mean", "running_var"):
            tensor(t, name, _OP)
    eps = real(eps, "eps", _OP)
    if isinstance(input, torch.Tensor) and input.dim() != 4:
        # (an unbatched (C, H, W) input has no batch_norm equivalent: torch would take H as channels)
        raise ValueError(f"fastalex.{_OP}: input must be 4-D (N, C, H, W), got {input.dim()}-D of shape "
                         f"{tuple(input.shape)}")

    def op(input, weight, bias, stride, padding, dilation, groups):
        return torch.ops.fastalex.conv2d_bn_relu(input, weight, bias, stride, padding, dilation, groups, running_mean,
                                                 running_var, bn_weight, bn_bias, eps)

    return call(op, input, weight, bias, stride, padding, dilation, groups, name=_OP)


def composed(input, weight, bias, stride, padding, dilation, groups, running_mean, running_var, bn_weight, bn_bias,
             eps):
    """The op in differentiable torch ops (schema arguments): the convolution, then the
    BatchNorm's affine form written out so that every tensor argument gets a gradient."""
    y = F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    scale = torch.rsqrt(running_var + eps)
    if bn_weight is not None:
        scale = scale * bn_weight
    shift = -running_mean * scale
    if bn_bias is not None:
        shift = shift + bn_bias
    return F.relu(y * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))


@torch.library.register_fake("fastalex::conv2d_bn_relu")
def fake(input, weight, bias, stride, padding, dilation, groups, running_mean, running_var, bn_weight, bn_bias, eps):
    for name, t in zip(_BN, (running_mean, running_var, bn_weight, bn_bias)):
        if t is not None:
            torch._check(t.dim() == 1 and t.shape[0] == weight.shape[0],
                         lambda name=name: f"fastalex.{_OP}: {name} must be 1-D of size {weight.shape[0]} "
                                           f"(weight's output channels)")
    return empty_output(input, weight, stride, padding, dilation, groups, _OP)


def _setup_context(ctx, inputs, output):
    tensors = [inputs[i] for i in (0, 1, 2, 7, 8, 9, 10)]
    ctx.present = [t is not None for t in tensors]
    ctx.conv = inputs[3:7]
    ctx.eps = inputs[11]
    ctx.save_for_backward(*[t for t in tensors if t is not None])


def _backward(ctx, grad):
    saved = iter(ctx.saved_tensors)
    tensors = [next(saved) if p else None for p in ctx.present]
    needs = [ctx.needs_input_grad[i] for i in (0, 1, 2, 7, 8, 9, 10)]
    leaves = [t.detach().requires_grad_(n) if t is not None else None for t, n in zip(tensors, needs)]
    wanted = [t for t in leaves if t is not None and t.requires_grad]
    with torch.enable_grad():
        input, weight, bias, mean, var, bn_w, bn_b = leaves
        out = composed(input, weight, bias, *ctx.conv, mean, var, bn_w, bn_b, ctx.eps)
        grads = iter(torch.autograd.grad(out, wanted, grad))
    g = [next(grads) if t is not None and t.requires_grad else None for t in leaves]
    return g[0], g[1], g[2], None, None, None, None, g[3], g[4], g[5], g[6], None


torch.library.register_autograd("fastalex::conv2d_bn_relu", _backward, setup_context=_setup_context)
