"""The networks' memory layout: channels_last through the whole network on CUDA.

fastalex's CUDA conv, LRN and max-pool kernels and the Inception module's Triton kernels take
channels_last and return channels_last (the tensor-core conv copies an NCHW input to
channels_last first), so a network converts its input once, at the start of its forward, and
every intermediate stays channels_last. The one other layout change is explicit: the flatten
before a classifier, whose weights expect features in (c, h, w) order. On other devices
nothing is converted: the input's layout runs through, as before.
"""
from __future__ import annotations

import torch


def input_layout(x: torch.Tensor) -> torch.Tensor:
    """The network input in its kernels' layout: channels_last on CUDA (one copy, none when it
    already is), unchanged elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


def flatten_for_classifier(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C*H*W) in (c, h, w) order, the order a classifier's weights expect
    (torch's and torchvision's). A channels_last map is copied to NCHW here, explicitly; an
    NCHW map, or a 1x1 one (the same memory in both layouts), is only viewed."""
    return torch.flatten(x.contiguous(), 1)
