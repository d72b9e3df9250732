"""The training recipes: each architecture's defaults, from its paper.

Sources are the papers as summarised in ../shared/papers.md (beside the project root); where a
paper is silent the value is marked as our choice or as the reference implementation's. Both
variants of an architecture train with its paper's recipe; the torchvision variants differ only
in their input size (224) and input normalisation (torchvision's models expect (x/255 - mean) /
std; the paper networks take raw 0..255 pixels minus the mean, as the papers and Caffe did).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recipe:
    arch: str
    variant: str
    image_size: int          # the crop the network sees
    resize: int              # images are scaled to this short side (and centre-cropped square)
    batch_size: int          # global: split across processes under torchrun
    lr: float
    momentum: float
    weight_decay: float
    epochs: int
    schedule: str            # "plateau": lr x factor when validation error stops improving;
                             # "step": lr x gamma every step_epochs epochs
    plateau_factor: float = 0.1
    plateau_patience: int = 5
    plateau_reductions: int = 3
    step_epochs: int = 8
    step_gamma: float = 0.96
    train_crop: str = "random"   # "random": a random image_size crop of the resize x resize image;
                                 # "random_resized": 8%-100% of the area, aspect 3/4..4/3
    pca_lighting: bool = False
    lighting_std: float = 0.1
    ten_crop: bool = False
    aux_weight: float = 0.0
    normalize: str = "mean"      # "mean": 0..255 minus the channel mean; "mean_std": torchvision's

    def as_dict(self) -> dict:
        return asdict(self)


def _alexnet(variant: str) -> Recipe:
    # AlexNet paper, sections 3-5 (papers.md "Training", "Data", "PCA colour augmentation"):
    # SGD, batch 128, momentum 0.9, weight decay 5e-4; lr 0.01 divided by 10 when the validation
    # error stops improving (three times over ~90 epochs); short side rescaled to 256, centre
    # 256x256, random 227x227 crops (the text's "224" gives 5x5 at pool5; only 227 gives the
    # 6x6 FC6 expects) and their horizontal reflections; PCA lighting with alpha ~ N(0, 0.1);
    # test on 10 patches (4 corners + centre, and their reflections), softmax averaged.
    # Our choices where the paper is silent: the plateau patience (5 epochs) and the mean
    # subtracted per channel instead of per pixel (the "mean image").
    return Recipe(arch="alexnet", variant=variant, image_size=227 if variant == "paper" else 224, resize=256,
                  batch_size=128, lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=90, schedule="plateau",
                  train_crop="random", pca_lighting=True, ten_crop=True,
                  normalize="mean" if variant == "paper" else "mean_std")


def _googlenet(variant: str) -> Recipe:
    # GoogLeNet paper, section 6 (papers.md "Training"): momentum 0.9, learning rate decreased
    # by 4% every 8 epochs, crops of 8%-100% of the image area with aspect ratio in [3/4, 4/3];
    # the auxiliary classifiers' losses added with weight 0.3 (section 5). Not in the paper:
    # initial lr 0.01, weight decay 2e-4 and batch 32 are Caffe's bvlc_googlenet solver's; the
    # epoch count (90) is ours. Left out: asynchronous SGD (DDP is synchronous), Polyak
    # averaging, and the 144-crop test (--ten-crop gives AlexNet's 10 crops instead).
    return Recipe(arch="googlenet", variant=variant, image_size=224, resize=256, batch_size=32, lr=0.01,
                  momentum=0.9, weight_decay=2e-4, epochs=90, schedule="step", step_epochs=8, step_gamma=0.96,
                  train_crop="random_resized", pca_lighting=False, ten_crop=False, aux_weight=0.3,
                  normalize="mean" if variant == "paper" else "mean_std")


ARCHS = ("alexnet", "googlenet")
VARIANTS = ("paper", "torchvision")


def recipe(arch: str, variant: str) -> Recipe:
    if arch not in ARCHS:
        raise ValueError(f"--arch must be one of {ARCHS}, got {arch!r}")
    if variant not in VARIANTS:
        raise ValueError(f"--variant must be one of {VARIANTS}, got {variant!r}")
    return _alexnet(variant) if arch == "alexnet" else _googlenet(variant)


def default_resize(image_size: int, recipe_: Recipe) -> int:
    """The short side images are scaled to: the paper's 256 at the paper's crop sizes, else the
    same 256:224 ratio (so a smoke run at 32 px crops from 37 px images)."""
    if image_size == recipe_.image_size:
        return recipe_.resize
    return max(image_size, round(image_size * 256 / 224))
