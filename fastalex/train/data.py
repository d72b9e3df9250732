"""Data for training: the ImageFolder checks, the training set's colour statistics, the
papers' augmentations and the per-rank samplers.

Pixel units are 0..255 throughout (the papers and Caffe train on raw pixel values minus the
mean); the torchvision variants then divide by the channel standard deviation as well.
"""
from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Sampler
from torchvision import datasets, transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

SPLITS = ("train", "val")


class DataError(ValueError):
    """A missing or malformed data folder; the message names the path and what was expected."""


def _has_image(folder: str) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            return True
    return False


def check_folder(root) -> list[str]:
    """Checks the ImageFolder layout root/{train,val}/<class>/<image> and returns the classes
    (sorted, as ImageFolder numbers them). Raises DataError naming what is wrong."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"--data {root}: no such directory (expected an ImageFolder with train/ and val/)")
    if not root.is_dir():
        raise DataError(f"--data {root}: not a directory (expected an ImageFolder with train/ and val/)")
    found = {}
    for split in SPLITS:
        d = root / split
        if not d.is_dir():
            raise DataError(f"--data {root}: no {split}/ folder (expected {d}/<class>/<image>)")
        classes = sorted(e.name for e in os.scandir(d) if e.is_dir())
        if not classes:
            raise DataError(f"--data {root}: {d} has no class folders (expected {d}/<class>/<image>)")
        for c in classes:
            if not _has_image(str(d / c)):
                raise DataError(f"--data {root}: class folder {d / c} holds no images "
                                f"(expected files ending in {', '.join(IMG_EXTENSIONS)})")
        found[split] = classes
    if found["train"] != found["val"]:
        only_train = sorted(set(found["train"]) - set(found["val"]))
        only_val = sorted(set(found["val"]) - set(found["train"]))
        raise DataError(f"--data {root}: train/ and val/ must hold the same class folders; "
                        f"only in train/: {only_train}, only in val/: {only_val}")
    if len(found["train"]) < 2:
        raise DataError(f"--data {root}: needs at least 2 classes, found {found['train']}")
    return found["train"]


def load_rgb(path: str) -> Image.Image:
    """ImageFolder's loader, with an error that names the file."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"--data: cannot read image {path}: {e}") from None


# ------------------------------------------------------------------ colour statistics
def image_stats(paths: list[str], max_images: int = 10000, seed: int = 0, side: int = 64) -> dict:
    """Channel mean, standard deviation and the RGB covariance's eigen-decomposition over the
    training pixels, in 0..255 units. The AlexNet paper uses all training pixels; here at most
    `max_images` images (a seeded sample), each shrunk to about `side` pixels, since the 3x3
    covariance of a colour distribution hardly depends on resolution."""
    if len(paths) > max_images:
        paths = random.Random(seed).sample(paths, max_images)
    total = np.zeros(3)
    outer = np.zeros((3, 3))
    count = 0
    for p in paths:
        img = load_rgb(p)
        img.thumbnail((side, side))
        px = np.asarray(img, dtype=np.float64).reshape(-1, 3)
        total += px.sum(0)
        outer += px.T @ px
        count += px.shape[0]
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    return {"mean": mean.tolist(), "std": np.sqrt(np.clip(np.diag(cov), 1e-6, None)).tolist(),
            "eigval": eigval.tolist(), "eigvec": eigvec.tolist(), "images": len(paths)}


class Lighting:
    """The AlexNet paper's PCA colour augmentation: add sum_i p_i * alpha_i * lambda_i to every
    pixel of an image, alpha_i ~ N(0, std) drawn once per image and presentation, p_i / lambda_i
    the eigenvectors / eigenvalues of the training set's RGB covariance. We take lambda_i as
    the principal components' standard deviations (the square roots of the covariance's
    eigenvalues), as the widely used implementations do: with the eigenvalues themselves on
    0..255 pixels, a shift of one standard deviation of alpha would be hundreds of grey levels."""

    def __init__(self, eigval, eigvec, std: float = 0.1):
        self.scale = torch.tensor(eigval, dtype=torch.float32).clamp_min(0).sqrt()
        self.eigvec = torch.tensor(eigvec, dtype=torch.float32)  # columns are the eigenvectors
        self.std = std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.std
        return x + (self.eigvec @ (alpha * self.scale)).view(3, 1, 1)


def _to_float(img) -> torch.Tensor:
    return transforms.functional.pil_to_tensor(img).float()  # 0..255


class Normalize:
    """(x - mean) / std per channel on 0..255 tensors (std 1: the papers' mean subtraction)."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, x):
        return (x - self.mean) / self.std


def normalizer(stats: dict, mode: str) -> Normalize:
    return Normalize(stats["mean"], stats["std"] if mode == "mean_std" else [1.0, 1.0, 1.0])


def train_transform(recipe, image_size: int, resize: int, stats: dict, lighting: bool):
    if recipe.train_crop == "random":
        # AlexNet: short side to `resize`, the centre square, a random crop and its mirror image.
        crop = [transforms.Resize(resize), transforms.CenterCrop(resize), transforms.RandomCrop(image_size)]
    else:
        # GoogLeNet: 8%-100% of the image area, aspect ratio 3/4..4/3, resized to the crop size.
        crop = [transforms.RandomResizedCrop(image_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))]
    steps = crop + [transforms.RandomHorizontalFlip(), _to_float]
    if lighting:
        steps.append(Lighting(stats["eigval"], stats["eigvec"], recipe.lighting_std))
    steps.append(normalizer(stats, recipe.normalize))
    return transforms.Compose(steps)


class TenCropStack:
    """The AlexNet paper's test patches: the 4 corners and the centre of the resize x resize
    image and their horizontal reflections, as one (10, 3, size, size) tensor."""

    def __init__(self, image_size: int, norm: Normalize):
        self.crop = transforms.TenCrop(image_size)
        self.norm = norm

    def __call__(self, img):
        return torch.stack([self.norm(_to_float(c)) for c in self.crop(img)])


def eval_transform(recipe, image_size: int, resize: int, stats: dict, ten_crop: bool):
    norm = normalizer(stats, recipe.normalize)
    head = [transforms.Resize(resize), transforms.CenterCrop(resize)]
    if ten_crop:
        return transforms.Compose(head + [TenCropStack(image_size, norm)])
    return transforms.Compose(head + [transforms.CenterCrop(image_size), _to_float, norm])


# ------------------------------------------------------------------ sampling
class ShardSampler(Sampler):
    """One process's share of an epoch: the epoch's order (a permutation seeded by (seed, epoch)
    when shuffling) dealt round-robin to the `world` ranks, so that step i's batches of all ranks
    together are exactly step i's batch of a single process with the combined batch size.
    With `pad` the order wraps around until every rank has the same count (DDP needs equal
    step counts); `skip` drops the first samples of this rank's share (resuming mid-epoch)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1, shuffle: bool = True, seed: int = 0, pad: bool = True):
        self.n, self.rank, self.world, self.shuffle, self.seed, self.pad = n, rank, world, shuffle, seed, pad
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0):
        self.epoch, self.skip = epoch, skip

    def order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.pad:
            total = math.ceil(self.n / self.world) * self.world
            while len(order) < total:
                order += order[: total - len(order)]
        return order[self.rank::self.world]

    def __iter__(self):
        return iter(self.order()[self.skip:])

    def __len__(self):
        return max(0, len(self.order()) - self.skip)


def image_folder(root, split: str, transform) -> datasets.ImageFolder:
    return datasets.ImageFolder(str(Path(root) / split), transform=transform, loader=load_rgb)


def loader(dataset, sampler: ShardSampler, batch_size: int, workers: int, seed: int, pin: bool) -> DataLoader:
    # The generator fixes the workers' seeds per (seed, rank, epoch), so a run resumed at an
    # epoch boundary draws the same augmentations with any --workers (with --workers 0 the
    # transforms use the main process's RNG, which checkpoints restore).
    g = torch.Generator().manual_seed(hash((seed, sampler.rank, sampler.epoch)) & (2**62 - 1))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
                      generator=g, persistent_workers=False, drop_last=False)
