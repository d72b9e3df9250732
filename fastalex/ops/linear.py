"""Fully-connected layer with an optional fused ReLU: ``F.linear(input, weight, bias)``, then
``F.relu`` when ``relu=True``."""
from __future__ import annotations

import torch

from fastalex.ops._args import tensor
from fastalex.ops._dispatch import invoke

_OP = "linear"


def linear(input, weight, bias=None, relu=False):
    """``F.linear(input, weight, bias)`` (then ReLU if ``relu``) in one kernel.

    input: (..., in_features); weight: (out_features, in_features); bias: (out_features,) or
    None. The CPU kernel reads each weight once from memory (the FC layers of AlexNet and
    GoogLeNet are weight-streaming at inference batch sizes); other devices use the vendor GEMM
    through ``at::addmm`` / ``at::mm``, the calls ``F.linear`` makes: on CUDA, cuBLAS multiplies
    float32 in TF32 exactly when ``torch.backends.cuda.matmul.allow_tf32`` is set (off by
    default), as for ``F.linear``.
    """
    return call(torch.ops.fastalex.linear, input, weight, bias, relu)


def call(op, input, weight, bias=None, relu=False):
    """Normalises the Python arguments and runs `op` (this op's schema) on them."""
    tensor(input, "input", _OP)
    tensor(weight, "weight", _OP)
    if bias is not None:
        tensor(bias, "bias", _OP)
    if not isinstance(relu, bool):
        raise TypeError(f"fastalex.{_OP}: relu must be a bool, got {relu!r}")
    if input.dim() < 1:
        raise ValueError(f"fastalex.{_OP}: input must have at least 1 dimension (..., in_features), got 0-D")
    lead = input.shape[:-1]
    rows = 1
    for d in lead:
        rows *= d
    out = invoke(op, input.reshape(rows, input.shape[-1]), weight, bias, relu)
    return out.reshape(*lead, out.shape[-1])


@torch.library.register_fake("fastalex::linear")
def _(input, weight, bias, relu):
    if input.dim() != 2:
        raise ValueError(f"fastalex.{_OP}: input must be 2-D (N, in_features), got {input.dim()}-D")
    if weight.dim() != 2:
        raise ValueError(f"fastalex.{_OP}: weight must be 2-D (out_features, in_features), got {weight.dim()}-D")
    torch._check(
        weight.shape[1] == input.shape[1],
        lambda: f"fastalex.{_OP}: weight expects {weight.shape[1]} input features, but input has {input.shape[1]}",
    )
    return input.new_empty((input.shape[0], weight.shape[0]))


def _setup_context(ctx, inputs, output):
    input, weight, bias, relu = inputs
    ctx.has_bias, ctx.relu = bias is not None, relu
    ctx.save_for_backward(input, weight, output if relu else None)


def _backward(ctx, grad):
    input, weight, output = ctx.saved_tensors
    if ctx.relu:  # torch.where keeps a NaN/inf gradient out of the clamped outputs
        grad = torch.where(output > 0, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))
    gi = grad @ weight if ctx.needs_input_grad[0] else None
    gw = grad.t() @ input if ctx.needs_input_grad[1] else None
    gb = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return gi, gw, gb, None


torch.library.register_autograd("fastalex::linear", _backward, setup_context=_setup_context)
