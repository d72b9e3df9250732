"""AlexNet (Krizhevsky, Sutskever, Hinton, 2012) from fastalex ops, in two variants.

"paper": the paper's network -- 3x227x227 input, conv1 96@11x11/4, LRN, overlapping 3x3/2
pool, conv2 256@5x5 in 2 groups, LRN, pool, conv3 384@3x3, conv4 384@3x3 in 2 groups, conv5
256@3x3 in 2 groups, pool, FC 4096 - 4096 - classes with dropout before FC6 and FC7;
60,965,224 parameters at 1000 classes; the paper's initialisation.
Each LRN and the overlapping pool after it run as one op (``fastalex.nn.LrnMaxPool2d``), at
the LRN's index in ``features``, with an ``nn.Identity`` at the pool's: the indices, and so the
state_dict keys, are those of the unfused LRN, pool sequence.

"torchvision": torchvision's AlexNet (64/192/384/256/256, no LRN, no groups, adaptive 6x6
average pool) with its parameter names, so torchvision's state_dict loads as it is.

On CUDA the input is converted to channels_last once and every feature map stays
channels_last up to the flatten before the classifier (fastalex.models._layout); on other
devices the input's layout runs through unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastalex.models._layout import flatten_for_classifier, input_layout
from fastalex.nn import Conv2dReLU, Linear, LrnMaxPool2d, MaxPool2d, use_reference

VARIANTS = ("paper", "torchvision")

# The paper's LRN: k=2, n=5, alpha=1e-4 (not divided by n), beta=0.75. fastalex and torch
# divide alpha by n, so alpha here is n * 1e-4.
PAPER_LRN = dict(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)


def _pool5_size(s: int) -> int:
    """Spatial size after conv1 .. pool5 of the paper's network for an s x s input."""
    s = (s - 11) // 4 + 1  # conv1 11x11/4
    for _ in range(3):  # pool1, pool2, pool5: 3x3/2 (conv2-5 keep the size)
        s = (s - 3) // 2 + 1
    return s


class AlexNet(nn.Module):
    def __init__(self, variant: str = "paper", num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"fastalex.models.alexnet: variant must be one of {VARIANTS}, got {variant!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"fastalex.models.alexnet: num_classes must be a positive int, got {num_classes!r}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"fastalex.models.alexnet: dropout must be in [0, 1], got {dropout!r}")
        self.variant = variant
        if variant == "paper":
            self.features = nn.Sequential(
                Conv2dReLU(3, 96, 11, stride=4),
                LrnMaxPool2d(**PAPER_LRN, kernel_size=3, stride=2),
                nn.Identity(),  # where the pool was (fused with the LRN before it): same indices
                Conv2dReLU(96, 256, 5, padding=2, groups=2),
                LrnMaxPool2d(**PAPER_LRN, kernel_size=3, stride=2),
                nn.Identity(),
                Conv2dReLU(256, 384, 3, padding=1),
                Conv2dReLU(384, 384, 3, padding=1, groups=2),
                Conv2dReLU(384, 256, 3, padding=1, groups=2),
                MaxPool2d(3, 2),
            )
        else:
            # torchvision's indices: conv 0, 3, 6, 8, 10 (Identity where its ReLUs were, since
            # the ReLU is fused into the conv), pools 2, 5, 12.
            self.features = nn.Sequential(
                Conv2dReLU(3, 64, 11, stride=4, padding=2), nn.Identity(), MaxPool2d(3, 2),
                Conv2dReLU(64, 192, 5, padding=2), nn.Identity(), MaxPool2d(3, 2),
                Conv2dReLU(192, 384, 3, padding=1), nn.Identity(),
                Conv2dReLU(384, 256, 3, padding=1), nn.Identity(),
                Conv2dReLU(256, 256, 3, padding=1), nn.Identity(), MaxPool2d(3, 2),
            )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            Linear(256 * 6 * 6, 4096, relu=True),
            nn.Identity(),  # where torchvision's ReLU is (fused into the linear): same indices
            nn.Dropout(dropout),
            Linear(4096, 4096, relu=True),
            nn.Identity(),
            Linear(4096, num_classes),
        )
        if variant == "paper":
            self._paper_init()

    @torch.no_grad()
    def _paper_init(self):
        # Weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers (gives
        # the ReLUs positive inputs early in training), 0 elsewhere.
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        fcs = [m for m in self.classifier if isinstance(m, nn.Linear)]
        for i, m in enumerate(convs + fcs):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)

    def _check(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"fastalex.models.AlexNet: input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"fastalex.models.AlexNet: input must be (N, 3, H, W), got shape {tuple(x.shape)}")
        if self.variant == "paper":
            h, w = x.shape[2], x.shape[3]
            if min(h, w) < 11 or _pool5_size(h) != 6 or _pool5_size(w) != 6:
                raise ValueError(
                    f"fastalex.models.AlexNet (paper): input must be 227x227 (227 to 234 give the 6x6 pool5 "
                    f"that FC6 expects; the paper's '224' gives 5x5), got {h}x{w}")
        elif min(x.shape[2], x.shape[3]) < 63:
            raise ValueError(f"fastalex.models.AlexNet (torchvision): input must be at least 63x63, got "
                             f"{x.shape[2]}x{x.shape[3]}")

    def forward(self, x):
        # On CUDA: channels_last from the input conversion to the flatten (models._layout);
        # no host synchronisation (shape checks only, no tensor values read on the host).
        self._check(x)
        x = self.features(input_layout(x))
        if self.variant == "torchvision":
            x = F.adaptive_avg_pool2d(x, (6, 6))
        return self.classifier(flatten_for_classifier(x))


def alexnet(variant: str = "paper", num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet on fastalex ops. ``variant``: "paper" or "torchvision" (loads torchvision's
    ``alexnet().state_dict()``)."""
    return AlexNet(variant, num_classes, dropout)


def reference_alexnet(variant: str = "paper", num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """The same network (same parameters and state_dict keys) computed with plain torch ops."""
    return use_reference(AlexNet(variant, num_classes, dropout))
