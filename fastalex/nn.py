"""Modules over fastalex.ops, constructed like their torch.nn counterparts (same parameter
names and initialisation, so state_dicts interchange)."""
from __future__ import annotations

import torch
from torch import nn

from fastalex import ops

__all__ = ["Conv2dReLU", "LocalResponseNorm", "MaxPool2d"]


class Conv2dReLU(nn.Conv2d):
    """``nn.Conv2d`` followed by ReLU, run as one fused kernel (dilation 1, zero padding)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 bias=True, device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError(f"fastalex.nn.Conv2dReLU: padding must be an int or a pair, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=1, groups=groups, bias=bias, padding_mode="zeros",
                         device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.conv2d_relu(input, self.weight, self.bias, self.stride, self.padding, self.groups)


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (alpha divided by size, as torch and Caffe do)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.local_response_norm(input, self.size, self.alpha, self.beta, self.k)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with dilation 1 and no indices."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__(kernel_size, stride=stride, padding=padding, dilation=1,
                         return_indices=False, ceil_mode=ceil_mode)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode)
