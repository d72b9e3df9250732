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
