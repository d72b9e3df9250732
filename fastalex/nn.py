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

__all__ = ["Conv2dReLU", "Linear", "LocalResponseNorm", "MaxPool2d", "ReferenceSwitch", "use_reference"]


class ReferenceSwitch:
    """Mixin for modules that can compute with plain torch ops instead (``reference = True``);
    ``use_reference`` flips every such module in a network."""

    reference = False


class Conv2dReLU(ReferenceSwitch, nn.Conv2d):
    """``nn.Conv2d`` followed by ReLU, run as one fused kernel (dilation 1, zero padding)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 bias=True, device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError(f"fastalex.nn.Conv2dReLU: padding must be an int or a pair, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=1, groups=groups, bias=bias, padding_mode="zeros",
                         device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return F.relu(F.conv2d(input, self.weight, self.bias, self.stride, self.padding, 1, self.groups))
        return ops.conv2d_relu(input, self.weight, self.bias, self.stride, self.padding, self.groups)


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
    """``nn.MaxPool2d`` with dilation 1 and no indices."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__(kernel_size, stride=stride, padding=padding, dilation=1,
                         return_indices=False, ceil_mode=ceil_mode)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)
        return ops.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode)


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
