"""Modules over fastalex.ops, constructed like their torch.nn counterparts (same parameter
names and initialisation, so state_dicts interchange).

Each has a ``reference`` attribute (False by default): when True it computes with plain torch
ops instead, which is how the networks' reference twins (``fastalex.models.reference_*``)
share one architecture and one state_dict with the fastalex ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastalex import ops

__all__ = ["Conv2dReLU", "Linear", "LocalResponseNorm", "LrnMaxPool2d", "MaxPool2d", "MaxPool2dLrn", "ReferenceSwitch",
           "use_reference"]


class ReferenceSwitch:
    """Mixin for modules that can compute with plain torch ops instead (``reference = True``);
    ``use_reference`` flips every such module in a network."""

    reference = False


class Conv2dReLU(ReferenceSwitch, nn.Conv2d):
    """``nn.Conv2d`` followed by ReLU, run as one fused kernel. Same constructor as
    ``nn.Conv2d`` (argument order, names, defaults, parameters and initialisation): padding an
    int, a pair, ``"valid"`` or ``"same"``; ``padding_mode`` other than ``"zeros"`` pads the input
    first, as ``nn.Conv2d`` does."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                         device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return F.relu(self._conv_forward(input, self.weight, self.bias))
        if self.padding_mode != "zeros":
            # nn.Conv2d's rule: pad with the mode, then convolve without padding.
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return ops.conv2d_relu(input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return ops.conv2d_relu(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Linear(ReferenceSwitch, nn.Linear):
    """``nn.Linear``, followed by ReLU in the same kernel when ``relu=True``."""

    def __init__(self, in_features, out_features, bias=True, relu=False, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.relu = relu

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            y = F.linear(input, self.weight, self.bias)
            return F.relu(y) if self.relu else y
        return ops.linear(input, self.weight, self.bias, self.relu)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", relu={self.relu}"


class LocalResponseNorm(ReferenceSwitch, nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (alpha divided by size, as torch and Caffe do)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)
        return ops.local_response_norm(input, self.size, self.alpha, self.beta, self.k)


class MaxPool2d(ReferenceSwitch, nn.MaxPool2d):
    """``nn.MaxPool2d``: same constructor (kernel_size, stride, padding, dilation, return_indices,
    ceil_mode); the indices, when asked for, are torch's (see ``ops.max_pool2d``)."""

    def forward(self, input: torch.Tensor):
        if self.reference:
            return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                self.return_indices)
        return ops.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                              self.return_indices)


class _LrnPool2d(ReferenceSwitch, nn.Module):
    """LRN and max-pooling as one op, in the order ``lrn_first`` says; the arguments are the
    ops' (``ops.lrn_max_pool2d`` / ``ops.max_pool2d_lrn``), in their order. No parameters or
    buffers, so a network that fuses a pair keeps its state_dict."""

    lrn_first: bool

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        lrn_args = (self.size, self.alpha, self.beta, self.k)
        pool_args = (self.kernel_size, self.stride, self.padding)
        if self.reference:
            # torch's unfused pair (the fused op's definition).
            if self.lrn_first:
                return F.max_pool2d(F.local_response_norm(input, *lrn_args), *pool_args, ceil_mode=self.ceil_mode)
            return F.local_response_norm(F.max_pool2d(input, *pool_args, ceil_mode=self.ceil_mode), *lrn_args)
        op = ops.lrn_max_pool2d if self.lrn_first else ops.max_pool2d_lrn
        return op(input, *lrn_args, *pool_args, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, ceil_mode={self.ceil_mode}")


class LrnMaxPool2d(_LrnPool2d):
    """``nn.LocalResponseNorm`` then ``nn.MaxPool2d`` as one op (``ops.lrn_max_pool2d``):
    AlexNet's LRN -> pool, GoogLeNet's lrn2 -> maxpool2."""

    lrn_first = True


class MaxPool2dLrn(_LrnPool2d):
    """``nn.MaxPool2d`` then ``nn.LocalResponseNorm`` as one op (``ops.max_pool2d_lrn``):
    GoogLeNet's maxpool1 -> lrn1."""

    lrn_first = False


def use_reference(module: nn.Module, reference: bool = True) -> nn.Module:
    """Switches every fastalex module inside `module` (itself included) to plain torch ops
    (or back). Returns `module`."""
    from fastalex.models.inception import Inception

    for m in module.modules():
        if isinstance(m, ReferenceSwitch):
            m.reference = reference
        elif isinstance(m, Inception):
            m.backend = "reference" if reference else "auto"
    return module
