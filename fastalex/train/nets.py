"""Building the network a run trains, and the input sizes each one accepts."""
from __future__ import annotations

import math

from torch import nn

from fastalex import models
from fastalex.models.alexnet import _pool5_size


def _googlenet_4a_size(s: int) -> int:
    """Spatial size of GoogLeNet's inception 4a output (where the first auxiliary head reads)
    for an s x s input: conv1 7x7/2 pad 3, then three 3x3/2 ceil-mode pools."""
    s = (s - 1) // 2 + 1
    for _ in range(3):
        s = math.ceil((s - 3) / 2) + 1
    return s


def image_size_error(arch: str, variant: str, size: int, aux: bool) -> str | None:
    """Why the network cannot take size x size crops, or None when it can."""
    if arch == "alexnet" and variant == "paper":
        if size < 11 or _pool5_size(size) != 6:
            return (f"paper AlexNet takes 227 to 234 (FC6 expects pool5's 6x6 map), got {size}; "
                    f"--variant torchvision pools adaptively and takes 63 or more")
    elif arch == "alexnet":
        if size < 63:
            return f"torchvision AlexNet takes 63 or more, got {size}"
    else:
        if size < 15:
            return f"GoogLeNet takes 15 or more, got {size}"
        if variant == "paper" and aux and _googlenet_4a_size(size) != 14:
            return (f"paper GoogLeNet's auxiliary classifiers need the 14x14 maps of a 224 input "
                    f"(223 to 238 give them), got {size}; pass --no-aux to train without them")
    return None


def build(arch: str, variant: str, num_classes: int, aux: bool = True) -> nn.Module:
    if arch == "alexnet":
        return models.alexnet(variant, num_classes=num_classes)
    return models.googlenet(variant, num_classes=num_classes, aux_logits=aux)
